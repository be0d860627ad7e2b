//! `dead_letter` and `retry_topics` become the spec's dead-letter topic and
//! retry topics.
use kafka_listener::prelude::*;
use kafka_listener::DeadLetter;

#[kafka_listener(topics = ["orders"], dead_letter = true)]
async fn default_topic(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["payments"], dead_letter = "payments.dead")]
async fn named_topic(value: String) {
    let _ = value;
}

#[kafka_listener(topics = ["mails"], dead_letter = false)]
async fn no_dead_letter(value: String) {
    let _ = value;
}

#[kafka_listener(
    topics = ["notifications"],
    retry_topics(attempts = 3, delays = ["1s", "10s"]),
    dead_letter = "notifications.dead"
)]
async fn with_retry_topics(value: String) -> Result<(), ListenerError> {
    let _ = value;
    Ok(())
}

fn main() {
    let specs: Vec<_> = kafka_listener::__private::registered_listeners().collect();
    assert_eq!(specs.len(), 4);
    let debug = |id: &str| format!("{:?}", specs.iter().find(|s| s.id() == id).unwrap());
    assert!(debug("default_topic")
        .contains(&format!("dead_letter: Some({:?})", DeadLetter::suffixed())));
    assert!(debug("named_topic").contains(r#"dead_letter: Some(Topic("payments.dead"))"#));
    assert!(debug("no_dead_letter").contains("dead_letter: None"));
    let rt = debug("with_retry_topics");
    assert!(
        rt.contains("RetryTopics { attempts: 3, backoff: Delays([1s, 10s]) }"),
        "{rt}"
    );
}
