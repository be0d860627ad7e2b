use kafka_listener::after_commit;

#[after_commit]
struct CouponIssued {
    coupon_id: String,
}

fn main() {}
