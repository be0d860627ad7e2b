//! An AsyncAPI 3.0 document of an app (feature `asyncapi`): what it
//! receives and sends, generated from the app itself.
//!
//! - **Channels** are topics: every topic the app created or subscribes to
//!   (declared with [`KafkaAppBuilder::topic`](crate::KafkaAppBuilder::topic),
//!   its listeners' topics, their dead-letter and retry topics, the outbox
//!   events' topics), with the Kafka channel binding's partition count when
//!   the app declared it. A listener of a topic pattern gets a channel whose
//!   address is `null` (the AsyncAPI way of saying "not known in advance"),
//!   described by the pattern.
//! - **Operations**: `receive` for each listener (with the Kafka operation
//!   binding's `groupId`), `send` for each outbox event type, for a
//!   listener's `send_to` replies, for each topic the app declared and no
//!   listener of it reads (the app declares it to write to it), and for
//!   what [`AsyncApi::sends`] adds.
//! - **Messages** carry their payload schema ([`crate::schema`]): a JSON
//!   Schema for `Json<T>` whose `T` derives `schemars::JsonSchema`, the
//!   Avro schema for `Avro<T>` and Avro outbox events (AsyncAPI's
//!   multi-format schema object, `application/vnd.apache.avro+json;version=1.9.0`).
//!   A payload of unknown shape (`ConsumerRecord`, bytes, a `T` without
//!   `JsonSchema`) is a message without `payload`.
//!
//! The document validates against the AsyncAPI 3.0.0 JSON Schema
//! (`kafka-listener/tests/asyncapi.rs` checks it). Kafka bindings follow the
//! AsyncAPI Kafka bindings 0.5.0. FastStream and RustStream generate the
//! same from their apps; Spring Kafka needs a third-party project
//! (Springwolf).
//!
//! ```rust,ignore
//! let app = KafkaApp::builder()./* ... */.build().await?;
//! let doc = AsyncApi::new("coupon-service", "1.0.0").document(&app);
//! // serve it: the console does, at /console/asyncapi.json
//! ```

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::app::KafkaApp;
use crate::schema::{MessageSchema, SchemaFormat};

/// The Kafka bindings' version the document uses.
const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// The Avro schema format of AsyncAPI's multi-format schema object.
const AVRO_SCHEMA_FORMAT: &str = "application/vnd.apache.avro+json;version=1.9.0";

/// The document's `info` and what the app sends that it cannot see.
#[derive(Debug, Clone)]
pub struct AsyncApi {
    title: String,
    version: String,
    description: Option<String>,
    sends: Vec<(String, MessageSchema)>,
}

impl AsyncApi {
    /// `info.title` and `info.version` (the app's name and version).
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: version.into(),
            description: None,
            sends: Vec::new(),
        }
    }

    /// `info.description` (CommonMark).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The app sends `message` to `topic` (through its `KafkaTemplate`,
    /// which the document cannot see).
    pub fn sends(mut self, topic: impl Into<String>, message: MessageSchema) -> Self {
        self.sends.push((topic.into(), message));
        self
    }

    /// The AsyncAPI 3.0.0 document of `app`, as JSON.
    pub fn document(&self, app: &KafkaApp) -> Value {
        let (listeners, topics) = app.declared();
        let mut doc = Doc::default();
        for t in topics {
            doc.channel(&t.name, Some(t.partitions));
        }
        for l in listeners {
            let messages: Vec<&MessageSchema> = l.messages().iter().collect();
            let channels: Vec<String> = match &l.topic_pattern {
                Some(pattern) => vec![doc.pattern_channel(pattern)],
                None => l.topics.iter().map(|t| doc.channel(t, None)).collect(),
            };
            for (i, channel) in channels.iter().enumerate() {
                let id = suffixed(&format!("receive-{}", l.id), i);
                let group = l.configured_group_id().to_owned();
                doc.operation(&id, "receive", channel, &messages, Some(&group));
            }
            if let Some(crate::handler::ReplyTo::Topic(topic)) = &l.reply_to {
                let channel = doc.channel(topic, None);
                doc.operation(&format!("reply-{}", l.id), "send", &channel, &[], None);
            }
        }
        #[cfg(feature = "after-commit")]
        for (name, topic, schema) in crate::after_commit::outbox_events() {
            let channel = doc.channel(topic, None);
            let message = schema.unwrap_or_else(|| MessageSchema {
                name: name.to_owned(),
                format: SchemaFormat::Json,
                schema: None,
            });
            doc.operation(
                &format!("publish-{name}"),
                "send",
                &channel,
                &[&message],
                None,
            );
        }
        for (topic, message) in &self.sends {
            let channel = doc.channel(topic, None);
            doc.operation(&format!("send-{topic}"), "send", &channel, &[message], None);
        }
        // A declared topic nobody here reads: the app writes to it.
        for t in topics {
            let channel = doc.channel(&t.name, None);
            if !doc.has_operation_on(&channel) {
                doc.operation(&format!("send-{}", t.name), "send", &channel, &[], None);
            }
        }
        let mut info = json!({ "title": self.title, "version": self.version });
        if let Some(d) = &self.description {
            info["description"] = json!(d);
        }
        json!({
            "asyncapi": "3.0.0",
            "info": info,
            "defaultContentType": "application/json",
            "servers": {
                "kafka": {
                    "host": app.bootstrap_servers().split(',').next().unwrap_or_default(),
                    "protocol": "kafka",
                    "description": "The bootstrap servers the app was started with."
                }
            },
            "channels": doc.channels,
            "operations": doc.operations,
            "components": { "messages": doc.messages },
        })
    }
}

/// What the document is built up in.
#[derive(Default)]
struct Doc {
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
    /// Channel id → the messages it carries.
    channel_messages: BTreeMap<String, Vec<String>>,
}

impl Doc {
    /// The channel of `topic` (made if new); its id.
    fn channel(&mut self, topic: &str, partitions: Option<i32>) -> String {
        let id = component_id(topic);
        let channel = self.channels.entry(id.clone()).or_insert_with(|| {
            json!({
                "address": topic,
                "messages": {},
                "bindings": { "kafka": { "topic": topic, "bindingVersion": KAFKA_BINDING_VERSION } }
            })
        });
        if let Some(p) = partitions {
            channel["bindings"]["kafka"]["partitions"] = json!(p);
        }
        id
    }

    /// The channel of a topic pattern: no address.
    fn pattern_channel(&mut self, pattern: &str) -> String {
        let id = component_id(&format!("pattern-{pattern}"));
        self.channels.entry(id.clone()).or_insert_with(|| {
            json!({
                "address": null,
                "description": format!("The topics matching the regular expression `{pattern}`."),
                "messages": {}
            })
        });
        id
    }

    /// Adds operation `id` on `channel` with `messages` (also added to the
    /// channel and to the components).
    fn operation(
        &mut self,
        id: &str,
        action: &str,
        channel: &str,
        messages: &[&MessageSchema],
        group: Option<&str>,
    ) {
        let mut refs = Vec::new();
        for m in messages {
            let message_id = component_id(&m.name);
            self.messages
                .entry(message_id.clone())
                .or_insert_with(|| message(m));
            let on_channel = self.channel_messages.entry(channel.to_owned()).or_default();
            if !on_channel.contains(&message_id) {
                on_channel.push(message_id.clone());
                self.channels[channel]["messages"][&message_id] =
                    json!({ "$ref": format!("#/components/messages/{message_id}") });
            }
            refs.push(json!({ "$ref": format!("#/channels/{channel}/messages/{message_id}") }));
        }
        let mut op = json!({
            "action": action,
            "channel": { "$ref": format!("#/channels/{channel}") },
            "messages": refs,
        });
        if let Some(group) = group {
            op["bindings"] = json!({ "kafka": {
                "groupId": { "type": "string", "enum": [group] },
                "bindingVersion": KAFKA_BINDING_VERSION
            }});
        }
        let mut key = component_id(id);
        let mut n = 1;
        while self.operations.contains_key(&key) {
            n += 1;
            key = component_id(&format!("{id}-{n}"));
        }
        self.operations.insert(key, op);
    }

    fn has_operation_on(&self, channel: &str) -> bool {
        let target = format!("#/channels/{channel}");
        self.operations
            .values()
            .any(|op| op["channel"]["$ref"] == target.as_str())
    }
}

/// A message object of the components.
fn message(m: &MessageSchema) -> Value {
    let mut msg = json!({
        "name": m.name,
        "title": m.name,
        "contentType": m.format.content_type(),
    });
    match (&m.schema, m.format) {
        (Some(schema), SchemaFormat::Avro) => {
            msg["payload"] = json!({ "schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema });
        }
        (Some(schema), _) => msg["payload"] = schema.clone(),
        (None, _) => {}
    }
    msg
}

/// An id AsyncAPI accepts as a key of `channels`, `operations` and
/// `components` (`^[\w\d.\-_]+$`): other characters become `_`.
fn component_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `base`, then `base-2`, `base-3` for the second and third of a kind.
fn suffixed(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_owned()
    } else {
        format!("{base}-{}", i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_what_asyncapi_allows() {
        assert_eq!(
            component_id("coupon.issue.requested-dlt"),
            "coupon.issue.requested-dlt"
        );
        assert_eq!(component_id("Vec<Order>"), "Vec_Order_");
        assert_eq!(suffixed("receive-a", 0), "receive-a");
        assert_eq!(suffixed("receive-a", 1), "receive-a-2");
    }
}
