//! `crate = "..."` when the runtime is reached under another name: through
//! a re-export and through an `extern crate` alias.
extern crate kafka_listener as renamed;

mod rt {
    pub(crate) use kafka_listener as kl;
}

#[rt::kl::kafka_listener(topics = ["a"], ack_mode = "manual", retry(), crate = "crate::rt::kl")]
async fn through_reexport(value: String, ack: rt::kl::Acknowledgment) {
    let _ = value;
    ack.acknowledge();
}

#[renamed::kafka_listener(topics = ["b"], crate = "::renamed")]
async fn through_alias(_value: renamed::Json<u64>) {}

fn main() {
    assert_eq!(renamed::__private::registered_listeners().count(), 2);
}
