//! Request/reply over Kafka, compatible with Spring for Apache Kafka:
//! [`ReplyingKafkaTemplate`] sends a request and awaits its reply (Spring's
//! `ReplyingKafkaTemplate.sendAndReceive`), and a listener with a reply
//! destination (`reply = true` / `send_to = "topic"`, Spring's `@SendTo`)
//! sends its return value back.
//!
//! # Headers (Spring's names and encodings)
//!
//! | header | encoding | written by |
//! |---|---|---|
//! | `kafka_replyTopic` | UTF-8 topic name (Spring: `topic.getBytes(UTF_8)`) | the requester |
//! | `kafka_replyPartition` | 4-byte big-endian int (Spring: `ByteBuffer.putInt`, read with `ByteBuffer.wrap(..).getInt()`) | the requester, when it reads one partition of its reply topic |
//! | `kafka_correlationId` | opaque bytes: 16 bytes of a random (version 4) UUID, most significant long first, as Spring's `ReplyingKafkaTemplate.createCorrelationId` | the requester; the replier copies it unchanged |
//!
//! Sources: `org.springframework.kafka.support.KafkaHeaders` (`REPLY_TOPIC`,
//! `REPLY_PARTITION`, `CORRELATION_ID`),
//! `org.springframework.kafka.requestreply.ReplyingKafkaTemplate`
//! (`sendAndReceive` adds the headers; `onMessage` matches a reply by the
//! bytes of its `kafka_correlationId`), and
//! `org.springframework.kafka.listener.adapter.MessagingMessageListenerAdapter`
//! (`@SendTo`: copies the correlation id, sends to the partition of
//! `kafka_replyPartition` if present, keys the reply with the request's key).

mod listener;
mod template;

pub(crate) use self::listener::bind;
pub use self::template::{ReplyingKafkaTemplate, ReplyingTemplateBuilder};
