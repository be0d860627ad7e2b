//! The embedded Schema Registry's HTTP API (Confluent's REST API: subjects,
//! versions, schemas by id, compatibility, config) as a hostile client
//! uses it: any method, path and body over a real socket. The registry
//! must answer every request with a status below 500 and keep serving.
//! The input is `METHOD-byte path \n body`.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];

/// `host:port` of the registry.
fn registry() -> &'static str {
    kafka_listener_fuzz::registry_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

/// Sends one raw request and returns the status code of the answer.
fn status(request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(registry()).expect("the registry accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?} to {:?}", String::from_utf8_lossy(request)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(m) % METHODS.len()];
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    // A path the HTTP layer itself would refuse (spaces, controls) tests
    // hyper, not the registry: keep to the bytes a URL may hold.
    if path.is_empty()
        || path[0] != b'/'
        || !path.iter().all(|b| b.is_ascii_graphic())
    {
        return;
    }
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        String::from_utf8_lossy(path),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let code = status(&request);
    assert!(
        code < 500,
        "{method} {} answered {code} (body {:?})",
        String::from_utf8_lossy(path),
        String::from_utf8_lossy(body)
    );
});
