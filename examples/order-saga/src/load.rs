//! The load generator: `order-saga load --orders N --rate R` sends orders
//! at a constant rate (an open loop: latency is measured from each order's
//! intended send time, so a stall of the service counts), then waits until
//! every accepted order is completed or cancelled, and reports orders per
//! second end to end, the order-to-final-state latency (from the intended
//! send time to the order's `finalAt`) and the orders by final status.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use example_support::load::{
    client, fan_out, get_json, per_second, post_retrying, Fired, HttpError,
};
use example_support::open_loop::{fire_at_rate, LatencySummary};

use crate::http::{CreateOrder, OrderAccepted, OrderLine, OrderView};
use crate::order::status;

/// Options of `order-saga load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// Base URL of the running service, without a trailing slash.
    #[arg(long, env = "ORDER_SAGA_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Orders to send.
    #[arg(long, default_value_t = 1_000)]
    pub orders: usize,
    /// Orders per second to send them at.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// HTTP requests in flight at most; an order due while this many are
    /// unanswered waits, and its wait counts in its latency.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Every this many orders, one asks for `ITEM-005`, which has no stock
    /// (so it is paid, then refunded); 0: none.
    #[arg(long, default_value_t = 20)]
    pub sold_out_every: usize,
    /// Seconds to wait, after the last order was sent, for every order to
    /// end.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout_secs: u64,
}

/// What a load run came to.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Orders sent.
    pub sent: usize,
    /// Orders answered 202.
    pub accepted: usize,
    /// Orders by final status (`COMPLETED`, `CANCELLED`), and those still
    /// not final at the drain timeout under their status.
    pub by_status: BTreeMap<String, usize>,
    /// Accepted orders not final at the drain timeout.
    pub unfinished: usize,
    /// From the first order's intended send time to the last order's end.
    pub elapsed: Duration,
    /// Finished orders per second over [`Self::elapsed`].
    pub orders_per_second: f64,
    /// From each finished order's intended send time to its `finalAt`.
    pub latency: LatencySummary,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sent {}, accepted {}, unfinished {}; by status: {:?}",
            self.sent, self.accepted, self.unfinished, self.by_status
        )?;
        writeln!(
            f,
            "end to end: {:.1} orders/s over {:.2} s",
            self.orders_per_second,
            self.elapsed.as_secs_f64()
        )?;
        write!(f, "order to final state: {}", self.latency)
    }
}

/// The body of order `i`: one laptop, a mouse every third order, and every
/// `sold_out_every`th order a line of `ITEM-005` (no stock).
pub fn order_body(i: usize, sold_out_every: usize) -> CreateOrder {
    let line = |id: &str, price: f64| OrderLine {
        product_id: id.to_owned(),
        name: None,
        price,
        quantity: 1,
    };
    let mut items = vec![line("ITEM-001", 1500.0)];
    if i % 3 == 0 {
        items.push(line("ITEM-002", 25.0));
    }
    if sold_out_every > 0 && i % sold_out_every == sold_out_every - 1 {
        items.push(line("ITEM-005", 99.0));
    }
    CreateOrder {
        customer_id: format!("customer-{}", i % 97),
        items,
    }
}

/// Places one order and waits (60 s at most) for its end: the listeners
/// of a service that just started join their groups first, and orders sent
/// before that would measure the start, not the saga.
async fn warm_up(http: &reqwest::Client, base: &str) -> Result<(), HttpError> {
    let accepted = match post_retrying(
        http,
        &format!("{base}/api/orders"),
        &order_body(1, 0),
        "warm-up",
    )
    .await
    {
        Fired::Accepted { value, .. } => value.json::<OrderAccepted>().await?,
        Fired::Rejected { .. } => {
            return Err(HttpError::Unexpected {
                what: "the warm-up order".into(),
                status: 0,
                body: "not accepted".into(),
            })
        }
    };
    let url = format!("{base}/api/orders/{}", accepted.order_id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json::<OrderView>(http, &url).await?.final_at.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs the load against `opts.url` (after one warm-up order) and waits
/// for every order to end.
///
/// # Errors
/// [`HttpError`] when the service cannot be reached or answers a status
/// read with an error.
pub async fn run(opts: &LoadOptions) -> Result<LoadReport, HttpError> {
    let http = client(opts.max_in_flight)?;
    let url = format!("{}/api/orders", opts.url);
    warm_up(&http, &opts.url).await?;
    let duration = Duration::from_secs_f64(opts.orders as f64 / opts.rate);
    let sold_out_every = opts.sold_out_every;
    let fired = fire_at_rate(opts.rate, duration, opts.max_in_flight.max(1), |i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = order_body(i, sold_out_every);
            match post_retrying(&http, &url, &body, "order").await {
                Fired::Accepted { value, .. } => value.json::<OrderAccepted>().await.ok(),
                Fired::Rejected { .. } => None,
            }
        }
    })
    .await;
    let first_ms = fired.first().map_or(0.0, |f| f.intended_epoch_ms);
    // Each accepted order's intended send time, in ms since the epoch.
    let intended: HashMap<String, f64> = fired
        .iter()
        .filter_map(|f| Some((f.value.as_ref()?.order_id.clone(), f.intended_epoch_ms)))
        .collect();
    let accepted = intended.len();
    let mut waiting: Vec<String> = intended.keys().cloned().collect();
    let mut finished: Vec<(OrderView, f64)> = Vec::with_capacity(accepted);
    let mut last: Vec<OrderView> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout_secs);
    while !waiting.is_empty() {
        let views = fan_out(waiting.len(), 32, |i| {
            let (http, base, id) = (http.clone(), opts.url.clone(), waiting[i].clone());
            async move { get_json::<OrderView>(&http, &format!("{base}/api/orders/{id}")).await }
        })
        .await;
        let (done, still): (Vec<OrderView>, Vec<OrderView>) = views
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .partition(|v| v.final_at.is_some());
        finished.extend(done.into_iter().map(|v| {
            let at = intended.get(&v.order_id).copied().unwrap_or(first_ms);
            (v, at)
        }));
        waiting = still.iter().map(|v| v.order_id.clone()).collect();
        last = still;
        if waiting.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut by_status = BTreeMap::new();
    for v in finished.iter().map(|(v, _)| v).chain(&last) {
        *by_status.entry(v.status.clone()).or_insert(0) += 1;
    }
    let last_final = finished
        .iter()
        .filter_map(|(v, _)| v.final_at)
        .max()
        .unwrap_or(0) as f64;
    let elapsed = Duration::from_secs_f64(((last_final - first_ms) / 1000.0).max(0.0));
    Ok(LoadReport {
        sent: fired.len(),
        accepted,
        unfinished: waiting.len(),
        orders_per_second: per_second(finished.len() as u64, elapsed),
        elapsed,
        latency: LatencySummary::of(
            finished
                .iter()
                .filter_map(|(v, intended)| Some(v.final_at? as f64 - intended)),
        ),
        by_status,
    })
}

/// Whether the run ended well: every accepted order final, and all of them
/// either completed or cancelled.
pub fn all_final(report: &LoadReport) -> bool {
    report.unfinished == 0
        && report
            .by_status
            .keys()
            .all(|s| s == status::COMPLETED || s == status::CANCELLED)
}
