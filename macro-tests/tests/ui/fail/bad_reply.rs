use kafka_listener::prelude::*;

#[kafka_listener(topics = ["a"], reply = "yes")]
async fn not_a_bool(text: String) -> String {
    text
}

#[kafka_listener(topics = ["b"], send_to = "")]
async fn empty_topic(text: String) -> String {
    text
}

#[kafka_listener(topics = ["c"], send_to = "no spaces")]
async fn bad_topic(text: String) -> String {
    text
}

#[kafka_listener(topics = ["d"], send_to = true)]
async fn not_a_topic(text: String) -> String {
    text
}

#[kafka_listener(topics = ["e"], reply = true, send_to = "replies")]
async fn both(text: String) -> String {
    text
}

#[kafka_listener(topics = ["f"], batch = true, reply = true)]
async fn batch(texts: Vec<String>) -> String {
    texts.concat()
}

#[kafka_listener(topics = ["g"], reply = true)]
async fn returns_nothing(text: String) {
    let _ = text;
}

fn main() {}
