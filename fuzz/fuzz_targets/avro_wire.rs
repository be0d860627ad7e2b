//! The Confluent wire format (magic byte 0, 4-byte big-endian schema id,
//! Avro body) and the Avro decoding path of `Avro<T>`: framing, the
//! writer schema from the codec's cache, schema resolution to the reader's
//! schema, and serde. Any bytes may be refused with a `DecodeError`; none
//! may panic, and a frame that decodes must re-encode to the same body.
#![no_main]

use std::sync::OnceLock;

use kafka_listener::avro::{wire, AvroCodec, AvroSchema, Schema};
use kafka_listener::KafkaConfig;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The writer's schema registered under id 1: every Avro type once.
const WRITER: &str = r#"{"type":"record","name":"Order","namespace":"fuzz","fields":[
  {"name":"id","type":"string"},
  {"name":"qty","type":"int"},
  {"name":"total","type":"long"},
  {"name":"price","type":["null","double"],"default":null},
  {"name":"tags","type":{"type":"array","items":"string"}},
  {"name":"attrs","type":{"type":"map","values":"bytes"}},
  {"name":"state","type":{"type":"enum","name":"State","symbols":["NEW","PAID"]}},
  {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
  {"name":"ok","type":"boolean"},
  {"name":"ratio","type":"float"}
]}"#;

/// The reader: a subset of the writer's fields, one added with a default.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: String,
    qty: i32,
    total: i64,
    price: Option<f64>,
    tags: Vec<String>,
    note: String,
}

impl AvroSchema for Order {
    fn get_schema() -> Schema {
        Schema::parse_str(
            r#"{"type":"record","name":"Order","namespace":"fuzz","fields":[
              {"name":"id","type":"string"},
              {"name":"qty","type":"int"},
              {"name":"total","type":"long"},
              {"name":"price","type":["null","double"],"default":null},
              {"name":"tags","type":{"type":"array","items":"string"}},
              {"name":"note","type":"string","default":""}
            ]}"#,
        )
        .expect("the reader schema")
    }
}

/// A codec whose cache holds the writer schema as id 1 (fetched once
/// from an embedded registry), so that decoding needs no network.
fn codec() -> &'static AvroCodec {
    static CODEC: OnceLock<AvroCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        let url = kafka_listener_fuzz::registry_url();
        kafka_listener_fuzz::runtime().block_on(async {
            let codec = AvroCodec::from_config(&KafkaConfig::new(), url).expect("codec");
            let id = codec
                .client()
                .register("fuzz-value", WRITER)
                .await
                .expect("register");
            assert_eq!(id, 1);
            codec.schema(1).await.expect("fetch the writer schema");
            codec
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let codec = codec();
    if let Ok((id, body)) = wire::decode(data) {
        assert_eq!(wire::encode(id, body), data, "a frame re-encodes to itself");
    }
    let _ = codec.decode_cached::<Order>(data);
    // The same body behind the known id, so that most inputs reach Avro.
    let _ = codec.decode_cached::<Order>(&wire::encode(1, data));
});
