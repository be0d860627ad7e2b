//! The dead-letter header parser: Spring's `kafka_dlt-*` headers (4- and
//! 8-byte big-endian numbers, UTF-8 text) as another client may have
//! written them. The input is a list of headers: one byte picks the key
//! (a dead-letter header name, or a key read from the input), one byte the
//! value's length, then the value.
#![no_main]

use kafka_listener::record::headers::{self, be_i32, be_i64, Original};
use kafka_listener::ConsumerRecord;
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    headers::ORIGINAL_TOPIC,
    headers::ORIGINAL_PARTITION,
    headers::ORIGINAL_OFFSET,
    headers::ORIGINAL_TIMESTAMP,
    headers::ORIGINAL_CONSUMER_GROUP,
    headers::EXCEPTION_FQCN,
    headers::EXCEPTION_MESSAGE,
    headers::ATTEMPTS,
];

fuzz_target!(|data: &[u8]| {
    let mut record = ConsumerRecord::new("orders-dlt", 0, 0);
    let mut rest = data;
    while let [pick, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (value, after) = tail.split_at(n);
        let key = KEYS
            .get(usize::from(*pick))
            .map(|k| (*k).to_owned())
            .unwrap_or_else(|| String::from_utf8_lossy(value).into_owned());
        record = record.with_header(&key, value.to_vec());
        rest = after;
    }
    let h = record.headers();
    if let Some(original) = Original::from_headers(h) {
        // What was parsed is what the headers say.
        assert_eq!(Some(original.topic.as_str()), h.get_str(headers::ORIGINAL_TOPIC));
        assert_eq!(
            Some(original.partition),
            h.get(headers::ORIGINAL_PARTITION).and_then(be_i32)
        );
        assert_eq!(
            Some(original.offset),
            h.get(headers::ORIGINAL_OFFSET).and_then(be_i64)
        );
    }
    for key in KEYS {
        let _ = h.get_str(key);
    }
});
