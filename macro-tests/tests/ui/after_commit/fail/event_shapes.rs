use kafka_listener::after_commit::EventMeta;
use kafka_listener::{after_commit, State};

#[derive(Clone)]
struct Event;

#[derive(Clone)]
struct App;

#[after_commit]
async fn by_reference(_event: &Event) {}

#[after_commit]
async fn state_first(_app: State<App>, _event: Event) {}

#[after_commit]
async fn meta_first(_meta: EventMeta) {}

#[after_commit]
async fn impl_trait(_event: impl Clone) {}

#[after_commit]
async fn extra_reference(_event: Event, _app: &State<App>) {}

fn main() {}
