//! Expansion snapshots of the main forms, and error collection.
//!
//! Each snapshot test expands token input, pretty-prints it and compares it
//! with `tests/snapshots/<name>.expanded.rs`; `BLESS=1 cargo test -p
//! kafka-listener-macros` rewrites the files instead (review the diff).

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

use super::try_expand;

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion is a valid file");
    prettyplease::unparse(&file)
}

/// Compares the expansion of `#[kafka_listener(args)] item` with the
/// snapshot `name`, or rewrites it under `BLESS=1`.
fn snapshot(name: &str, args: TokenStream, item: TokenStream) {
    let expanded = match try_expand(args, item) {
        Ok(tokens) => pretty(tokens),
        Err(e) => panic!("expansion of {name} failed: {e}"),
    };
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "snapshots",
        &format!("{name}.expanded.rs"),
    ]
    .iter()
    .collect();
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expanded).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with BLESS=1 to create it", path.display()));
    if expected != expanded {
        panic!(
            "the expansion of `{name}` differs from {}; run with BLESS=1 to accept it\n--- expected\n{expected}\n--- actual\n{expanded}",
            path.display()
        );
    }
}

/// The messages of every error `try_expand` reports.
fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    match try_expand(args, item) {
        Ok(tokens) => panic!("expected errors, got:\n{}", pretty(tokens)),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn plain_listener() {
    snapshot(
        "plain",
        quote!(
            topics = ["coupon.issue.requested", "coupon.issue.retried"],
            group_id = "coupon-issuer",
            concurrency = 3,
            ack_mode = "record",
            auto_startup = false,
            properties = [("max.poll.interval.ms", "300000"), ("fetch.min.bytes", "1")],
        ),
        quote! {
            /// Issues a coupon.
            pub async fn issue(
                req: Json<IssueRequested>,
                meta: RecordMeta,
                app: State<App>,
            ) -> Result<(), ListenerError> {
                Ok(())
            }
        },
    );
}

#[test]
fn batch_listener() {
    snapshot(
        "batch",
        quote!(
            topics = ["audit"],
            id = "audit-writer",
            batch = true,
            ack_mode = "batch"
        ),
        quote! {
            async fn write_audit(events: Vec<Json<AuditEvent>>, db: State<Db>) {}
        },
    );
}

#[test]
fn manual_ack_with_retry() {
    snapshot(
        "manual_ack_retry",
        quote!(
            topics = ["payments"],
            ack_mode = "manual_immediate",
            retry(
                attempts = 5,
                backoff = "exponential",
                initial = "100ms",
                max = "10s",
                multiplier = 1.5,
                jitter = false
            ),
        ),
        quote! {
            async fn settle(payment: Json<Payment>, key: Key<String>, ack: Acknowledgment) -> Result<(), ListenerError> {
                ack.acknowledge();
                Ok(())
            }
        },
    );
}

#[test]
fn topic_pattern_with_fixed_backoff_and_renamed_crate() {
    snapshot(
        "topic_pattern",
        quote!(
            topic_pattern = "^coupon\\..*",
            retry(attempts = 2, backoff = "fixed", initial = "250ms"),
            crate = "::kl",
        ),
        quote! {
            async fn any_coupon_event(record: ConsumerRecord) {}
        },
    );
}

#[test]
fn only_the_retry_keys_written_are_emitted() {
    let expand = |args: TokenStream| {
        try_expand(
            args,
            quote!(
                async fn f() {}
            ),
        )
        .unwrap()
        .to_string()
    };
    // `retry()`: the runtime's defaults, nothing copied here.
    let expanded = expand(quote!(topics = ["t"], retry()));
    let policy = quote!(.retry(::kafka_listener::__private::RetryPolicy::builder().build()));
    assert!(expanded.contains(&policy.to_string()), "{expanded}");
    // One key: one builder call.
    let expanded = expand(quote!(topics = ["t"], retry(attempts = 5)));
    let policy =
        quote!(.retry(::kafka_listener::__private::RetryPolicy::builder().attempts(5).build()));
    assert!(expanded.contains(&policy.to_string()), "{expanded}");
    for absent in [
        "initial",
        "max",
        "multiplier",
        "jitter",
        "exponential",
        "Duration",
    ] {
        assert!(!expanded.contains(absent), "{absent} in {expanded}");
    }
    // No struct literal of a runtime type anywhere.
    assert!(!expanded.contains("attempts :"), "{expanded}");
}

#[test]
fn renamed_crate_leaves_no_default_path() {
    let expanded = try_expand(
        quote!(
            topics = ["t"],
            ack_mode = "manual",
            retry(),
            crate = "crate::kl"
        ),
        quote!(
            async fn f(ack: Acknowledgment) -> Result<(), E> {
                Ok(())
            }
        ),
    )
    .unwrap()
    .to_string();
    assert!(!expanded.contains("kafka_listener ::"), "{expanded}");
    assert!(
        expanded.contains("crate :: kl :: __private :: ListenerSpec"),
        "{expanded}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors(
        quote!(
            topics = [],
            concurrency = 0,
            ack_mode = "auto",
            colour = "red",
            concurrency = 2,
            retry(attempts = "3", backoff = "fixed", multiplier = 2.0)
        ),
        quote!(
            fn f<T>(ack: Acknowledgment) {}
        ),
    );
    let expected = [
        "`topics` is empty",
        "`concurrency` must be at least 1",
        "unknown ack mode `auto`",
        "unknown attribute `colour`; expected one of: `topics`, `topic_pattern`, `group_id`, `id`, `concurrency`, `ack_mode`, `auto_startup`, `properties`, `batch`, `retry`, `rate_limit`, `filter`, `reply`, `send_to`, `transactional`, `isolation`, `seek`, `ordering`, `parallelism`, `dead_letter`, `retry_topics`, `crate`",
        "`concurrency` is specified more than once",
        "`attempts` expects an integer, found a string",
        "a listener must be an `async fn`",
        "a listener cannot be generic",
        "`multiplier` applies to backoff = \"exponential\" only",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "no error contains {want:?} in {errors:#?}"
        );
    }
    // Nothing else: no "needs `topics`" for a `topics` with a bad value,
    // nothing for the second `concurrency`'s value, and no guess about
    // `Acknowledgment` under an invalid ack mode.
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn unknown_retry_key_lists_retry_keys() {
    let errors = errors(
        quote!(topics = ["t"], retry(attempt = 5)),
        quote!(
            async fn f() {}
        ),
    );
    assert_eq!(
        errors,
        ["unknown attribute `attempt` in `retry(...)`; expected one of: `attempts`, `backoff`, `initial`, `max`, `multiplier`, `jitter`"]
    );
}

#[test]
fn topic_source_is_required_and_exclusive() {
    assert_eq!(
        errors(
            quote!(group_id = "g"),
            quote!(
                async fn f() {}
            )
        ),
        ["a listener needs `topics = [\"...\"]` or `topic_pattern = \"...\"`"]
    );
    assert_eq!(
        errors(
            quote!(topics = ["a"], topic_pattern = "b.*"),
            quote!(
                async fn f() {}
            )
        ),
        ["`topics` and `topic_pattern` cannot both be given; subscribe with one of them"]
    );
}

#[test]
fn durations_are_validated() {
    let errors = errors(
        quote!(topics = ["t"], retry(initial = "5 parsecs", max = "1500us")),
        quote!(
            async fn f() {}
        ),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("invalid duration `5 parsecs` for `initial`"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "`max` must be a whole number of milliseconds, not `1500us`"
    );
}

#[test]
fn acknowledgment_needs_a_manual_ack_mode() {
    let item = quote!(
        async fn f(ack: kafka_listener::Acknowledgment) {}
    );
    assert_eq!(
        errors(quote!(topics = ["t"]), item.clone()),
        ["`Acknowledgment` needs ack_mode = \"manual\" or \"manual_immediate\", but this listener's ack mode is \"batch\" (the default)"]
    );
    assert_eq!(
        errors(quote!(topics = ["t"], ack_mode = "record"), item.clone()),
        ["`Acknowledgment` needs ack_mode = \"manual\" or \"manual_immediate\", but this listener's ack mode is \"record\""]
    );
    for mode in ["manual", "manual_immediate", "MANUAL-IMMEDIATE"] {
        assert!(
            try_expand(quote!(topics = ["t"], ack_mode = #mode), item.clone()).is_ok(),
            "{mode}"
        );
    }
}

#[test]
fn negative_numbers_are_refused() {
    let errors = errors(
        quote!(topics = ["t"], concurrency = -2, retry(multiplier = -1.5)),
        quote!(
            async fn f() {}
        ),
    );
    assert_eq!(
        errors,
        [
            "`concurrency` cannot be negative",
            "`multiplier` must be at least 1.0 (each delay is at least the one before), not -1.5"
        ]
    );
}

#[test]
fn cfg_attributes_apply_to_the_registration_too() {
    let expanded = pretty(
        try_expand(
            quote!(topics = ["t"]),
            quote! {
                #[cfg(feature = "orders")]
                #[allow(unused)]
                async fn f() {}
            },
        )
        .unwrap(),
    );
    assert!(
        expanded.contains("#[cfg(feature = \"orders\")]\nconst _: () = {"),
        "{expanded}"
    );
    assert_eq!(
        expanded.matches("#[allow(unused)]").count(),
        1,
        "{expanded}"
    );
}

#[test]
fn dead_letter_and_retry_topics_become_builder_calls() {
    let expanded = try_expand(
        quote!(
            topics = ["t"],
            dead_letter = "t.dead",
            retry_topics(attempts = 4, delays = ["1s", "1m"])
        ),
        quote!(
            async fn f() {}
        ),
    )
    .unwrap()
    .to_string();
    let calls = quote! {
        .dead_letter(::kafka_listener::__private::DeadLetter::topic("t.dead"))
        .retry_topics(::kafka_listener::__private::RetryTopics::builder()
            .attempts(4)
            .delays([
                ::kafka_listener::__private::Duration::from_millis(1000),
                ::kafka_listener::__private::Duration::from_millis(60000)
            ])
            .build())
    };
    assert!(expanded.contains(&calls.to_string()), "{expanded}");
    let default = try_expand(
        quote!(
            topics = ["t"],
            dead_letter = true,
            retry_topics(attempts = 2)
        ),
        quote!(
            async fn f() {}
        ),
    )
    .unwrap()
    .to_string();
    let calls = quote! {
        .dead_letter(::kafka_listener::__private::DeadLetter::suffixed())
        .retry_topics(::kafka_listener::__private::RetryTopics::builder().attempts(2).build())
    };
    assert!(default.contains(&calls.to_string()), "{default}");
    let off = try_expand(
        quote!(topics = ["t"], dead_letter = false),
        quote!(
            async fn f() {}
        ),
    )
    .unwrap()
    .to_string();
    assert!(!off.contains("dead_letter"), "{off}");
}

#[test]
fn bad_dead_letter_and_retry_topics_values() {
    let errors = errors(
        quote!(
            topic_pattern = "^t",
            dead_letter = 3,
            retry_topics(attempts = 0, delays = [], backoff = "fixed")
        ),
        quote!(
            async fn f() {}
        ),
    );
    let expected = [
        "`dead_letter` expects `true`, `false` or a topic name, found an integer",
        "`attempts` must be at least 1",
        "`delays` is empty",
        "unknown attribute `backoff` in `retry_topics(...)`; expected one of: `attempts`, `delays`",
        "`retry_topics` needs `topics`",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "no error contains {want:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn values_the_runtime_would_refuse_are_compile_errors() {
    let item = quote!(
        async fn f() {}
    );
    let found = errors(
        quote!(
            topics = ["t"],
            retry(initial = "0ms", max = "0s"),
            dead_letter = "no spaces"
        ),
        item.clone(),
    );
    let expected = [
        "`initial` of an exponential back-off must be longer than zero",
        "`max` of an exponential back-off must be longer than zero",
        "invalid topic name `no spaces`: ` ` is not allowed",
    ];
    for want in expected {
        assert!(
            found.iter().any(|e| e.contains(want)),
            "no error contains {want:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    assert_eq!(
        errors(
            quote!(topics = ["t"], retry(initial = "2s", max = "1s")),
            item.clone()
        ),
        ["`initial` (2s) is longer than `max` (1s); the first delay must not exceed the cap"]
    );
    // A fixed back-off may have no pause.
    assert!(try_expand(
        quote!(topics = ["t"], retry(backoff = "fixed", initial = "0ms")),
        item
    )
    .is_ok());
}

#[test]
fn ordering_and_parallelism_are_checked_at_their_keys() {
    let item = quote!(
        async fn f(v: String) {}
    );
    assert_eq!(
        errors(quote!(topics = ["t"], ordering = "keys"), item.clone()),
        ["unknown ordering `keys`; expected one of: `partition`, `key`, `none`"]
    );
    assert_eq!(
        errors(
            quote!(topics = ["t"], ordering = "key", parallelism = 0),
            item.clone()
        ),
        ["`parallelism` must be at least 1, e.g. `parallelism = 64`"]
    );
    assert_eq!(
        errors(quote!(topics = ["t"], parallelism = 8), item.clone()),
        ["`parallelism = 8` needs `ordering = \"key\"` or `ordering = \"none\"`: with `ordering = \"partition\"` (the default) one partition's records run one at a time"]
    );
    let batch = quote!(
        async fn f(v: Vec<String>) {}
    );
    assert_eq!(
        errors(quote!(topics = ["t"], batch = true, ordering = "none"), batch),
        ["`ordering = \"none\"` is for record listeners; a batch listener (`batch = true`) gets one partition's records in offset order"]
    );
    let expanded = try_expand(
        quote!(topics = ["t"], ordering = "key", parallelism = 64),
        item,
    )
    .unwrap()
    .to_string();
    assert!(
        expanded.contains(":: Ordering :: Key") && expanded.contains(". parallelism (64)"),
        "{expanded}"
    );
}
