//! `#[derive(OutboxEvent)]`: the key may be any `Display` field, the keys
//! may be split over several `#[outbox]` attributes, and `crate` renames
//! the runtime; `format = "avro"` takes a type with an Avro schema; `name`
//! sets the stable event name, by default the type's name.
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
#[outbox(key = "order_id", name = "orders.OrderCreated:v2")]
struct OrderCreated {
    order_id: u64,
}

#[derive(serde::Serialize, renamed::OutboxEvent)]
#[outbox(topic = "t", key = "id", crate = "::renamed")]
struct Renamed {
    id: i32,
}

#[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema, OutboxEvent)]
#[outbox(topic = "coupon.issued", key = "coupon_id", format = "avro")]
struct AvroIssued {
    coupon_id: String,
    issued_at: kafka_listener::avro::TimestampMillis,
}

fn main() {
    assert_eq!(AvroIssued::TOPIC, "coupon.issued");
    let avro = AvroIssued {
        coupon_id: "c2".into(),
        issued_at: kafka_listener::avro::TimestampMillis(1),
    };
    assert_eq!(avro.key(), "c2");
    let _ = avro.issued_at;
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
    assert_eq!(CouponIssued::NAME, "CouponIssued");
    assert_eq!(OrderCreated::NAME, "orders.OrderCreated:v2");
    assert_eq!(Renamed::NAME, "Renamed");
}
