//! Every handler shape: the event alone, with `State<T>` and `EventMeta`,
//! returning `()` or a `Result`, with `fallback_execution`; then a commit
//! on an in-memory SQLite database runs all of them.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_listener::after_commit::{EventMeta, TransactionalEvents};
use kafka_listener::{after_commit, ListenerError, State};

#[derive(Clone)]
struct Counter(Arc<AtomicUsize>);

#[derive(Clone)]
struct CouponIssued {
    coupon_id: String,
}

#[after_commit]
async fn alone(event: CouponIssued) {
    assert_eq!(event.coupon_id, "c1");
}

#[after_commit]
async fn with_state(
    _event: CouponIssued,
    counter: State<Counter>,
    meta: EventMeta,
) -> Result<(), ListenerError> {
    assert!(meta.in_transaction);
    counter.0 .0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[after_commit(fallback_execution = true)]
async fn fallback(_event: CouponIssued, counter: State<Counter>) -> Result<(), std::io::Error> {
    counter.0 .0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[after_commit(fallback_execution = false)]
async fn r#strict(CouponIssued { coupon_id }: CouponIssued) {
    let _ = coupon_id;
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let counter = Counter(Arc::default());
        let events = TransactionalEvents::builder(pool)
            .state(counter.clone())
            .build()
            .await
            .unwrap();
        let mut tx = events.begin().await.unwrap();
        tx.publish(CouponIssued {
            coupon_id: "c1".into(),
        })
        .await
        .unwrap();
        let committed = tx.commit().await.unwrap();
        assert_eq!(committed.handlers.succeeded, 4);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    });
}
