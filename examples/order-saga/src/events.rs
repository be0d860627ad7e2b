//! The saga's events: one topic per event type, every record keyed by the
//! order id (so one order's events of a topic stay in order on one
//! partition), the value JSON. Each event is written to its service's
//! outbox in the transaction of the state change that causes it, and sent
//! by that outbox's relay after the commit (header
//! `kafka_listener-event-id`, the same on every resend).

use kafka_listener::after_commit::OutboxEvent;
use serde::{Deserialize, Serialize};

/// Partitions of every topic of the saga: up to this many orders are
/// handled at once per consumer group and topic (more with key ordering).
pub const PARTITIONS: i32 = 3;

/// `orders.created`: an order was accepted ([`OrderCreated`]).
pub const ORDERS_CREATED: &str = "orders.created";
/// `payments.completed`: its amount was captured ([`PaymentCompleted`]).
pub const PAYMENTS_COMPLETED: &str = "payments.completed";
/// `payments.failed`: its payment was declined ([`PaymentFailed`]).
pub const PAYMENTS_FAILED: &str = "payments.failed";
/// `payments.refunded`: the last compensation, the refund ([`PaymentRefunded`]).
pub const PAYMENTS_REFUNDED: &str = "payments.refunded";
/// `inventory.reserved`: its stock was taken ([`InventoryReserved`]).
pub const INVENTORY_RESERVED: &str = "inventory.reserved";
/// `inventory.failed`: some item was out of stock ([`InventoryFailed`]).
pub const INVENTORY_FAILED: &str = "inventory.failed";
/// `inventory.released`: a compensation, its stock given back ([`InventoryReleased`]).
pub const INVENTORY_RELEASED: &str = "inventory.released";
/// `shipping.completed`: it was shipped ([`ShippingCompleted`]).
pub const SHIPPING_COMPLETED: &str = "shipping.completed";
/// `shipping.failed`: it could not be shipped ([`ShippingFailed`]).
pub const SHIPPING_FAILED: &str = "shipping.failed";
/// `orders.completed`: the saga ended well ([`OrderCompleted`]).
pub const ORDERS_COMPLETED: &str = "orders.completed";
/// `orders.cancelled`: the saga ended compensated ([`OrderCancelled`]).
pub const ORDERS_CANCELLED: &str = "orders.cancelled";
/// Where a record that is not the JSON its topic carries goes (after which
/// its order would stay unfinished: a bug, never an expected path).
pub const DLT: &str = "order-saga.dlt";

/// Every topic of the saga, in saga order, with [`DLT`] last.
pub const TOPICS: [&str; 12] = [
    ORDERS_CREATED,
    PAYMENTS_COMPLETED,
    PAYMENTS_FAILED,
    INVENTORY_RESERVED,
    INVENTORY_FAILED,
    SHIPPING_COMPLETED,
    SHIPPING_FAILED,
    INVENTORY_RELEASED,
    PAYMENTS_REFUNDED,
    ORDERS_COMPLETED,
    ORDERS_CANCELLED,
    DLT,
];

/// The step names of the saga, as the order's history and `failedStep`
/// show them.
pub mod step {
    /// The payment step (and its compensation, the refund).
    pub const PAYMENT: &str = "PAYMENT";
    /// The inventory step (and its compensation, the stock release).
    pub const INVENTORY: &str = "INVENTORY";
    /// The shipping step (nothing to compensate: it is the last).
    pub const SHIPPING: &str = "SHIPPING";
    /// The compensation of [`INVENTORY`], as `compensations` lists it.
    pub const STOCK_RELEASED: &str = "STOCK_RELEASED";
    /// The compensation of [`PAYMENT`], as `compensations` lists it.
    pub const PAYMENT_REFUNDED: &str = "PAYMENT_REFUNDED";
}

/// One line of an order: what the client asked for. Prices are in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Item {
    /// A product of the catalogue (`ITEM-001`, ...).
    pub product_id: String,
    /// Its name, as the client gave it.
    pub name: String,
    /// The unit price, in cents.
    pub price_cents: i64,
    /// How many (at least 1).
    pub quantity: i64,
}

/// Declares an outbox event type: its fields, its topic, and its outbox
/// name (the topic, which is stable).
macro_rules! saga_event {
    ($(#[$doc:meta])* $name:ident = $topic:literal
        { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, OutboxEvent, schemars::JsonSchema)]
        #[outbox(topic = $topic, key = "order_id", name = $topic)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

/// Declares a shape (a struct) and event types of that shape, one per
/// topic, each `From` the shape: consumers read any of them as the shape.
macro_rules! shaped_events {
    ($(#[$sdoc:meta])* $shape:ident $fields:tt
        => $($(#[$doc:meta])* $name:ident = $topic:literal),+ $(,)?) => {
        shaped_events!(@shape $(#[$sdoc])* $shape $fields);
        $(
            saga_event!($(#[$doc])* $name = $topic $fields);
            shaped_events!(@from $shape $name $fields);
        )+
    };
    (@shape $(#[$sdoc:meta])* $shape:ident
        { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$sdoc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        pub struct $shape {
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
    (@from $shape:ident $name:ident
        { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        impl From<$shape> for $name {
            fn from(s: $shape) -> Self {
                Self { $($field: s.$field,)* }
            }
        }
    };
}

saga_event! {
    /// An order was accepted: the value of [`ORDERS_CREATED`].
    OrderCreated = "orders.created" {
        /// The order id (UUID); also the record key.
        order_id: String,
        /// Who ordered.
        customer_id: String,
        /// What was ordered.
        items: Vec<Item>,
        /// The sum of price times quantity, in cents.
        total_cents: i64,
        /// When it was accepted, in milliseconds since the Unix epoch.
        at: i64,
    }
}

saga_event! {
    /// The order's amount was captured: the value of [`PAYMENTS_COMPLETED`].
    /// Carries the items, which the inventory step needs.
    PaymentCompleted = "payments.completed" {
        /// The order id; also the record key.
        order_id: String,
        /// The amount captured, in cents.
        amount_cents: i64,
        /// The order's items.
        items: Vec<Item>,
        /// When, in milliseconds since the Unix epoch.
        at: i64,
    }
}

saga_event! {
    /// The order's stock was taken: the value of [`INVENTORY_RESERVED`].
    InventoryReserved = "inventory.reserved" {
        /// The order id; also the record key.
        order_id: String,
        /// The order's items.
        items: Vec<Item>,
        /// When, in milliseconds since the Unix epoch.
        at: i64,
    }
}

saga_event! {
    /// The order was shipped: the value of [`SHIPPING_COMPLETED`].
    ShippingCompleted = "shipping.completed" {
        /// The order id; also the record key.
        order_id: String,
        /// When, in milliseconds since the Unix epoch.
        at: i64,
    }
}

shaped_events! {
    /// A failed step and the compensations done since: the shape of
    /// [`PaymentFailed`], [`InventoryFailed`], [`ShippingFailed`],
    /// [`InventoryReleased`] and [`PaymentRefunded`]. Each compensation
    /// passes the failure on with its own name appended, so the last one
    /// (the refund) tells the order service the whole story.
    Failure {
        /// The order id; also the record key.
        order_id: String,
        /// The step that failed ([`step`]).
        failed_step: String,
        /// Why, for a human.
        reason: String,
        /// The compensations done so far, in order ([`step::STOCK_RELEASED`],
        /// [`step::PAYMENT_REFUNDED`]).
        compensations: Vec<String>,
        /// When this event happened, in milliseconds since the Unix epoch.
        at: i64,
    } =>
    /// The payment was declined: the value of [`PAYMENTS_FAILED`]
    /// (nothing to compensate).
    PaymentFailed = "payments.failed",
    /// Some item was out of stock: the value of [`INVENTORY_FAILED`].
    InventoryFailed = "inventory.failed",
    /// The order could not be shipped: the value of [`SHIPPING_FAILED`].
    ShippingFailed = "shipping.failed",
    /// The stock of a failed order was given back: the value of
    /// [`INVENTORY_RELEASED`].
    InventoryReleased = "inventory.released",
    /// The amount of a failed order was refunded: the value of
    /// [`PAYMENTS_REFUNDED`], the last compensation.
    PaymentRefunded = "payments.refunded",
}

impl Failure {
    /// `failed_step` failed for `reason` at `at`; nothing compensated yet.
    pub fn new(order_id: &str, failed_step: &str, reason: String, at: i64) -> Self {
        Self {
            order_id: order_id.to_owned(),
            failed_step: failed_step.to_owned(),
            reason,
            compensations: Vec::new(),
            at,
        }
    }

    /// This failure with `compensation` done at `at`.
    pub fn compensated(mut self, compensation: &str, at: i64) -> Self {
        self.compensations.push(compensation.to_owned());
        self.at = at;
        self
    }
}

shaped_events! {
    /// How an order ended: the shape of [`OrderCompleted`] and
    /// [`OrderCancelled`], what the analytics service reads.
    Finished {
        /// The order id; also the record key.
        order_id: String,
        /// `COMPLETED` or `CANCELLED`.
        status: String,
        /// The order's total, in cents.
        total_cents: i64,
        /// The step that failed, for a cancelled order.
        failed_step: Option<String>,
        /// When the order was accepted, in milliseconds since the Unix epoch.
        created_at: i64,
        /// When it ended (same unit).
        at: i64,
    } =>
    /// The saga ended well: the value of [`ORDERS_COMPLETED`].
    OrderCompleted = "orders.completed",
    /// The saga ended compensated: the value of [`ORDERS_CANCELLED`].
    OrderCancelled = "orders.cancelled",
}

/// Reads a record's value as `T`.
///
/// # Errors
/// A fatal [`kafka_listener::ListenerError`] (retrying cannot help: the
/// record goes to [`DLT`]) when the value is missing or not a JSON `T`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    record: &kafka_listener::ConsumerRecord,
) -> Result<T, kafka_listener::ListenerError> {
    let bytes = record.value().map(|v| v.as_ref()).unwrap_or_default();
    serde_json::from_slice(bytes).map_err(|e| {
        kafka_listener::ListenerError::fatal(format!(
            "{}-{}@{}: not the JSON this topic carries: {e}",
            record.topic(),
            record.partition(),
            record.offset()
        ))
    })
}
