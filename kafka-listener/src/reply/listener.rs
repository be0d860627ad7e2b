//! The answering side: a listener's reply sent to its destination
//! (`reply = true` / `send_to`), routed as Spring's
//! `MessagingMessageListenerAdapter` routes a `@SendTo` reply.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::ListenerError;
use crate::handler::ReplyTo;
use crate::handler::{ErasedHandler, Reply, ReplyValue};
use crate::listener::ListenerSpec;
use crate::producer::{KafkaTemplate, ProducerRecord};
use crate::record::headers::{be_i32, CORRELATION_ID, REPLY_PARTITION, REPLY_TOPIC};
use crate::record::ConsumerRecord;

/// The reply destination of a listener (Spring's `@SendTo`).
impl ListenerSpec {
    /// Sends the handler's return value (a [`crate::IntoReply`]: `Json<T>`,
    /// [`crate::Reply`], `String`, ...) to the topic in the request's
    /// `kafka_replyTopic` header, with the request's `kafka_correlationId`
    /// header copied, on the partition in its `kafka_replyPartition` header
    /// if it has one: Spring's `@SendTo` without a value, answering a
    /// Spring (or our) `ReplyingKafkaTemplate`. The macro's `reply = true`.
    ///
    /// The reply is sent through the app's template before the record
    /// counts as handled; a failed send is a retryable error (the handler
    /// runs again). A request without a `kafka_replyTopic` header fails with
    /// a fatal error (dead-letter topic if there is one), where Spring only
    /// logs at debug level.
    pub fn reply_to_request(mut self) -> Self {
        self.reply_to = Some(ReplyTo::Request);
        self
    }

    /// Sends the handler's return value to `topic` (Spring's
    /// `@SendTo("topic")`), with the request's `kafka_correlationId` header
    /// copied and on the partition in its `kafka_replyPartition` header if
    /// it has one; otherwise as [`Self::reply_to_request`]. The macro's
    /// `send_to = "topic"`. The app does not create the topic.
    pub fn send_to(mut self, topic: impl Into<String>) -> Self {
        self.reply_to = Some(ReplyTo::Topic(topic.into()));
        self
    }

    /// The reply destination, if the listener replies.
    pub fn reply_destination(&self) -> Option<&ReplyTo> {
        self.reply_to.as_ref()
    }
}

/// Where one reply goes, read from its request.
#[derive(Debug)]
struct Route {
    topic: String,
    partition: Option<i32>,
    key: Option<Bytes>,
    correlation_id: Option<Bytes>,
}

/// The reply route of `request`: the destination topic, the partition of
/// `kafka_replyPartition` (both destinations, as Spring's `setPartition`),
/// the request's key and its `kafka_correlationId`.
fn route(request: &ConsumerRecord, to: &ReplyTo) -> std::result::Result<Route, String> {
    let headers = request.headers();
    let topic = match to {
        ReplyTo::Topic(t) => t.clone(),
        ReplyTo::Request => match headers.get(REPLY_TOPIC) {
            None => {
                return Err(format!(
                    "the request has no `{REPLY_TOPIC}` header, so the reply has nowhere to go \
                     (`reply = true` answers a ReplyingKafkaTemplate; use `send_to = \"topic\"` \
                     for a fixed reply topic)"
                ))
            }
            Some(v) => match std::str::from_utf8(v) {
                Ok(t) if !t.is_empty() => t.to_owned(),
                _ => {
                    return Err(format!(
                        "the request's `{REPLY_TOPIC}` header is not a topic name (UTF-8)"
                    ))
                }
            },
        },
    };
    let partition = match headers.get(REPLY_PARTITION) {
        None => None,
        Some(v) => Some(be_i32(v).ok_or_else(|| {
            format!(
                "the request's `{REPLY_PARTITION}` header has {} bytes, not a 4-byte big-endian int",
                v.len()
            )
        })?),
    };
    Ok(Route {
        topic,
        partition,
        key: request.key().cloned(),
        correlation_id: headers.get(CORRELATION_ID).map(Bytes::copy_from_slice),
    })
}

/// The reply record: `value`, `reply`'s key or the request's, the
/// correlation id first and then `reply`'s headers.
fn reply_record(
    route: Route,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Bytes)>,
) -> ProducerRecord {
    let mut record = match key.or(route.key) {
        Some(k) => ProducerRecord::keyed(route.topic, k),
        None => ProducerRecord::keyless(route.topic),
    };
    if let Some(v) = value {
        record = record.value(v);
    }
    if let Some(id) = route.correlation_id {
        record = record.header(CORRELATION_ID, id);
    }
    for (k, v) in headers {
        record = record.header(k, v);
    }
    if let Some(p) = route.partition {
        record = record.partition(p);
    }
    record
}

/// `reply`'s record for `route`, its value encoded now if it waits for
/// the topic (Avro, with the app's `codec`).
async fn encode(
    route: Route,
    reply: Reply,
    codec: Option<Arc<dyn Any + Send + Sync>>,
) -> Result<ProducerRecord, ListenerError> {
    let (key, value, headers) = reply.into_parts();
    let value = match value {
        ReplyValue::Tombstone => None,
        ReplyValue::Bytes(b) => Some(b),
        ReplyValue::Encode(encode) => Some(encode(codec.as_deref(), &route.topic).await?),
    };
    Ok(reply_record(route, key, value, headers))
}

/// Gives a replying record listener its reply destination: its call then
/// sends the handler's reply through `template` (awaiting the broker's
/// acknowledgment) before the record counts as handled. A failed send is a
/// retryable error; a request the reply cannot be routed for (no
/// `kafka_replyTopic` with `reply = true`, a malformed
/// `kafka_replyPartition`) a fatal one. Specs without a destination, or
/// whose handler does not reply, are left as they are (start-up
/// validation reports the mismatch).
pub(crate) fn bind(spec: &mut ListenerSpec, template: &KafkaTemplate) {
    let Some(to) = spec.reply_to.clone() else {
        return;
    };
    let Some(ErasedHandler::Record {
        call,
        replying: Some(replying),
        ..
    }) = &mut spec.handler
    else {
        return;
    };
    let replying = Arc::clone(replying);
    let template = template.clone();
    #[cfg(feature = "avro")]
    let codec = template
        .avro_codec()
        .map(|c| Arc::new(c.clone()) as Arc<dyn Any + Send + Sync>);
    #[cfg(not(feature = "avro"))]
    let codec: Option<Arc<dyn Any + Send + Sync>> = None;
    *call = Box::new(move |request, ctx| {
        let route = route(request, &to);
        let reply = replying(request, ctx);
        let (template, codec) = (template.clone(), codec.clone());
        Box::pin(async move {
            let Some(reply) = reply.await? else {
                return Ok(());
            };
            let record = encode(route.map_err(ListenerError::fatal)?, reply, codec).await?;
            template
                .send(record)
                .await
                .map_err(ListenerError::retryable)?;
            Ok(())
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_follows_springs_headers() {
        let request = ConsumerRecord::new("requests", 0, 7)
            .with_key("k1")
            .with_header(REPLY_TOPIC, "replies")
            .with_header(REPLY_PARTITION, 2i32.to_be_bytes().to_vec())
            .with_header(CORRELATION_ID, vec![1u8, 2, 3]);
        let r = route(&request, &ReplyTo::Request).unwrap();
        assert_eq!(r.topic, "replies");
        assert_eq!(r.partition, Some(2));
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(r.correlation_id.as_deref(), Some(&[1u8, 2, 3][..]));
        let fixed = route(&request, &ReplyTo::Topic("audit".into())).unwrap();
        assert_eq!((fixed.topic.as_str(), fixed.partition), ("audit", Some(2)));
    }

    #[test]
    fn a_request_without_a_reply_topic_or_with_a_bad_partition_has_no_route() {
        let bare = ConsumerRecord::new("requests", 0, 7);
        let e = route(&bare, &ReplyTo::Request).unwrap_err();
        assert!(e.contains("kafka_replyTopic"), "{e}");
        let bad = bare
            .with_header(REPLY_TOPIC, "replies")
            .with_header(REPLY_PARTITION, vec![0u8, 1]);
        let e = route(&bad, &ReplyTo::Request).unwrap_err();
        assert!(e.contains("2 bytes"), "{e}");
    }
}
