//! `#[derive(OutboxEvent)]`: the key may be any `Display` field, the keys
//! may be split over several `#[outbox]` attributes, and `crate` renames
//! the runtime.
extern crate kafka_listener as renamed;

use kafka_listener::OutboxEvent;

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "coupon.issued", key = "coupon_id")]
struct CouponIssued {
    coupon_id: String,
    user_id: String,
}

#[derive(serde::Serialize, OutboxEvent)]
#[outbox(topic = "orders_v2-created")]
#[outbox(key = "order_id")]
struct OrderCreated {
    order_id: u64,
}

#[derive(serde::Serialize, renamed::OutboxEvent)]
#[outbox(topic = "t", key = "id", crate = "::renamed")]
struct Renamed {
    id: i32,
}

fn main() {
    let issued = CouponIssued {
        coupon_id: "c1".into(),
        user_id: "u1".into(),
    };
    assert_eq!(CouponIssued::TOPIC, "coupon.issued");
    assert_eq!(issued.key(), "c1");
    let _ = issued.user_id;
    assert_eq!(OrderCreated::TOPIC, "orders_v2-created");
    assert_eq!(OrderCreated { order_id: 42 }.key(), "42");
    assert_eq!(Renamed { id: -1 }.key(), "-1");
}
