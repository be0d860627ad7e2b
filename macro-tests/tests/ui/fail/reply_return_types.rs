use kafka_listener::prelude::*;

// A reply value without a reply destination.
#[kafka_listener(topics = ["a"])]
async fn unsent(text: String) -> Json<String> {
    Json(text)
}

// A reply destination without a reply value.
#[kafka_listener(topics = ["b"], send_to = "replies")]
async fn nothing_to_send(text: String) -> Result<(), ListenerError> {
    let _ = text;
    Ok(())
}

// Not a reply type.
#[kafka_listener(topics = ["c"], reply = true)]
async fn number(text: String) -> u64 {
    text.len() as u64
}

fn main() {}
