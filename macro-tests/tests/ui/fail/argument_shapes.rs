use kafka_listener::prelude::*;

#[kafka_listener(topics = ["orders"])]
async fn borrowed(value: &str, other: impl Into<String>) {
    let _ = (value, other.into());
}

#[kafka_listener(topics = ["orders"], id = "thirteen")]
async fn thirteen(
    a: String, b: String, c: String, d: String, e: String, f: String, g: String,
    h: String, i: String, j: String, k: String, l: String, m: String,
) {
    let _ = (a, b, c, d, e, f, g, h, i, j, k, l, m);
}

fn main() {}
