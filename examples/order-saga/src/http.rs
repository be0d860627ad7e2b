//! The HTTP API (axum), the course's: `POST /api/orders`, `GET
//! /api/orders/{orderId}` (order service) and `GET /api/analytics`
//! (analytics service). Every error answer is JSON `{"error": "..."}`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use example_support::http::{check_id, ApiError, ApiJson, ApiPath};
use kafka_listener::console::Console;
use serde::{Deserialize, Serialize};

use crate::analytics::{self, Analytics};
use crate::config::Service;
use crate::events::Item;
use crate::order::{self, NewOrder};
use crate::saga::Saga;

/// The most lines an order may have.
pub(crate) const MAX_ITEMS: usize = 100;
/// The most of one line.
pub(crate) const MAX_QUANTITY: i64 = 1_000;
/// The highest unit price accepted, in currency units.
pub(crate) const MAX_PRICE: f64 = 1_000_000.0;

/// The routes of the services this process runs, with `/health`, the
/// JSON 404 and 405 (see [`example_support::http::router`]) and the
/// operator `console` at `/console`.
pub(crate) fn router(saga: Saga, console: Console) -> Router {
    let mut routes = Router::new();
    if saga.config.runs(Service::Order) {
        routes = routes
            .route("/api/orders", post(create_order))
            .route("/api/orders/{order_id}", get(get_order));
    }
    if saga.config.runs(Service::Analytics) {
        routes = routes.route("/api/analytics", get(get_analytics));
    }
    routes = routes.merge(console.mount("/console"));
    example_support::http::router(routes, saga, None)
}

/// `POST /api/orders` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrder {
    /// Who orders.
    pub customer_id: String,
    /// At least one line.
    pub items: Vec<OrderLine>,
}

/// One line of [`CreateOrder`], and of [`OrderView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// A product of the catalogue.
    pub product_id: String,
    /// Its name; the catalogue's when left out.
    #[serde(default)]
    pub name: Option<String>,
    /// The unit price in currency units (`1500` or `1500.00`), 0 or more;
    /// kept in cents.
    pub price: f64,
    /// How many, at least 1.
    pub quantity: i64,
}

/// `POST /api/orders` answer (202): the order is stored and its
/// `orders.created` event is in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAccepted {
    /// The new order's id.
    pub order_id: String,
    /// `CREATED`.
    pub status: String,
}

/// `GET /api/orders/{orderId}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// See [`crate::order::status`].
    pub status: String,
    /// The order's total, in currency units.
    pub total: f64,
    /// The lines ordered.
    pub items: Vec<OrderLine>,
    /// For a cancelled (or compensating) order: `PAYMENT`, `INVENTORY` or
    /// `SHIPPING`.
    pub failed_step: Option<String>,
    /// Why that step failed.
    pub reason: Option<String>,
    /// The compensations done, in order (`STOCK_RELEASED`,
    /// `PAYMENT_REFUNDED`).
    pub compensations: Vec<String>,
    /// Every step, oldest first.
    pub history: Vec<HistoryStep>,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was completed or cancelled (same unit); `null` before.
    pub final_at: Option<i64>,
}

/// One step of [`OrderView::history`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryStep {
    /// `CREATED`, `PAYMENT_COMPLETED`, `INVENTORY_RESERVED`, `SHIPPED`,
    /// `COMPLETED`; or `PAYMENT_FAILED`, `INVENTORY_FAILED`,
    /// `SHIPPING_FAILED`, `STOCK_RELEASED`, `PAYMENT_REFUNDED`, `CANCELLED`.
    pub status: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
    /// The reason of a failure.
    pub detail: Option<String>,
}

fn cents(units: f64) -> i64 {
    (units * 100.0).round() as i64
}

/// Checks a `POST /api/orders` body against the catalogue.
///
/// # Errors
/// 400 for an empty or blank id, no items, too many, a quantity below 1 or
/// above [`MAX_QUANTITY`], a negative (or not finite, or above
/// [`MAX_PRICE`]) price; 422 for a product not in the catalogue.
fn validate(saga: &Saga, body: CreateOrder) -> Result<NewOrder, ApiError> {
    check_id("customerId", &body.customer_id)?;
    if body.items.is_empty() {
        return Err(ApiError::bad_request("items must not be empty"));
    }
    if body.items.len() > MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ITEMS} items per order"
        )));
    }
    let mut items = Vec::with_capacity(body.items.len());
    for line in body.items {
        check_id("productId", &line.product_id)?;
        let Some(known) = saga.products.get(&line.product_id) else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown product `{}`", line.product_id),
            ));
        };
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            return Err(ApiError::bad_request(format!(
                "quantity of `{}` must be 1 to {MAX_QUANTITY}, got {}",
                line.product_id, line.quantity
            )));
        }
        if !(line.price.is_finite() && (0.0..=MAX_PRICE).contains(&line.price)) {
            return Err(ApiError::bad_request(format!(
                "price of `{}` must be 0 to {MAX_PRICE}, got {}",
                line.product_id, line.price
            )));
        }
        items.push(Item {
            name: line.name.unwrap_or_else(|| known.clone()),
            product_id: line.product_id,
            price_cents: cents(line.price),
            quantity: line.quantity,
        });
    }
    Ok(NewOrder {
        customer_id: body.customer_id,
        items,
    })
}

async fn create_order(
    State(saga): State<Saga>,
    ApiJson(body): ApiJson<CreateOrder>,
) -> Result<Response, ApiError> {
    let order = validate(&saga, body)?;
    let order_id = order::create(&saga, order).await.map_err(|e| {
        tracing::error!(error = %e, "order not stored");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("order not stored: {e}"),
        )
        .with_retry_after(1)
    })?;
    let location = HeaderValue::try_from(format!("/api/orders/{order_id}")).ok();
    let accepted = OrderAccepted {
        order_id,
        status: order::status::CREATED.to_owned(),
    };
    let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_order(
    State(saga): State<Saga>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<OrderView>, ApiError> {
    let Some(detail) = saga.db.order(&order_id).await? else {
        return Err(ApiError::not_found(format!("no order `{order_id}`")));
    };
    let o = detail.order;
    Ok(Json(OrderView {
        order_id: o.order_id,
        customer_id: o.customer_id,
        status: o.status,
        total: o.total_cents as f64 / 100.0,
        items: detail
            .items
            .into_iter()
            .map(|i| OrderLine {
                product_id: i.product_id,
                name: Some(i.name),
                price: i.price_cents as f64 / 100.0,
                quantity: i.quantity,
            })
            .collect(),
        failed_step: o.failed_step,
        reason: o.reason,
        compensations: o
            .compensations
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default(),
        history: detail
            .history
            .into_iter()
            .map(|h| HistoryStep {
                status: h.step,
                at: h.at,
                detail: h.detail,
            })
            .collect(),
        created_at: o.created_at,
        final_at: o.final_at,
    }))
}

async fn get_analytics(State(saga): State<Saga>) -> Result<Json<Analytics>, ApiError> {
    Ok(Json(analytics::read(&saga.db, crate::now_ms()).await?))
}
