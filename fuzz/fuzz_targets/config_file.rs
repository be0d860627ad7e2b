//! The configuration parser: `.properties` and YAML text (Spring Boot's
//! `application.properties` / `application.yml`) into a `KafkaConfig`.
//! Any input may be refused with an error; none may panic.
#![no_main]

use kafka_listener::KafkaConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = KafkaConfig::from_properties_str(text) {
        // A parsed configuration must print (secrets redacted) without panicking.
        let _ = format!("{config:?}");
    }
    if let Ok(config) = KafkaConfig::from_yaml_str(text) {
        let _ = format!("{config:?}");
    }
});
