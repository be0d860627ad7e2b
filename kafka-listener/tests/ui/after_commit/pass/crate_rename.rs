//! `crate = "..."` when the runtime is reached under another name.
extern crate kafka_listener as renamed;

#[derive(Clone)]
struct Event;

#[renamed::after_commit(crate = "::renamed")]
async fn through_alias(_event: Event, _meta: renamed::after_commit::EventMeta) {}

fn main() {}
