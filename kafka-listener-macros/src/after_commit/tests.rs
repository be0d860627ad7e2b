//! Unit tests of the checks and the expansion (the UI tests in the runtime
//! crate compile the result).

use quote::quote;

use super::try_expand;

fn errors(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Vec<String> {
    match try_expand(args, item) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn minimal_handler_expands_to_a_registration() {
    let out = try_expand(
        quote!(),
        quote!(
            async fn on(e: Ev) {}
        ),
    )
    .expect("valid")
    .to_string();
    assert!(
        out.contains("AfterCommitRegistration :: new :: < Ev >"),
        "{out}"
    );
    assert!(out.contains("false"), "{out}");
    assert!(out.contains("assert_event :: < Ev >"), "{out}");
}

#[test]
fn fallback_and_crate_are_emitted() {
    let out = try_expand(
        quote!(fallback_execution = true, crate = "kl"),
        quote!(
            async fn on(e: Ev, s: State<App>) {}
        ),
    )
    .expect("valid")
    .to_string();
    assert!(
        out.contains("kl :: __private :: after_commit :: AfterCommitRegistration"),
        "{out}"
    );
    assert!(
        out.contains("assert_from_event_context :: < State < App > >"),
        "{out}"
    );
    assert!(out.contains(", true ,"), "{out}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(
        quote!(fallback = true, fallback_execution = "yes"),
        quote!(
            fn on<T>(e: &Ev, x: impl Sized) {}
        ),
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert!(errs[0].starts_with("unknown attribute `fallback` in `#[after_commit(...)]`; expected one of: `fallback_execution`, `crate`"));
    assert!(errs[1].contains("`fallback_execution` expects `true` or `false`, found a string"));
    assert!(errs[2].contains("must be an `async fn`"));
    assert!(errs[3].contains("cannot be generic"));
    assert!(errs[4].contains("passed by value"));
    assert!(errs[5].contains("cannot be `impl Trait`"));
}

#[test]
fn state_first_is_refused() {
    let errs = errors(
        quote!(),
        quote!(
            async fn on(s: State<App>) {}
        ),
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("is the event; `State` goes after it"),
        "{errs:?}"
    );
}

#[test]
fn an_event_is_required() {
    let errs = errors(
        quote!(),
        quote!(
            async fn on() {}
        ),
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("takes the event as its first argument"),
        "{errs:?}"
    );
}

#[test]
fn derive_reports_a_missing_field_with_the_fields() {
    let out = super::derive_outbox_event(quote! {
        #[outbox(topic = "coupon.issued", key = "coupon")]
        struct CouponIssued { coupon_id: String, user_id: String }
    })
    .to_string();
    assert!(
        out.contains("no field `coupon` in `CouponIssued`; the key names a field, one of: `coupon_id`, `user_id`"),
        "{out}"
    );
}

#[test]
fn derive_implements_the_trait() {
    let out = super::derive_outbox_event(quote! {
        #[outbox(topic = "coupon.issued", key = "coupon_id")]
        struct CouponIssued { coupon_id: u64 }
    })
    .to_string();
    assert!(
        out.contains("const TOPIC : & 'static str = \"coupon.issued\""),
        "{out}"
    );
    assert!(
        out.contains("OutboxRegistration :: of :: < CouponIssued >"),
        "{out}"
    );
    assert!(out.contains("key_to_string (& self . coupon_id)"), "{out}");
    // The default name: the type's name without its module path.
    assert!(
        out.contains("const NAME : & 'static str = \"CouponIssued\""),
        "{out}"
    );
}

#[test]
fn derive_uses_the_explicit_name() {
    let out = super::derive_outbox_event(quote! {
        #[outbox(topic = "coupon.issued", key = "coupon_id")]
        #[outbox(name = "coupon.CouponIssued")]
        struct r#CouponIssued { coupon_id: u64 }
    })
    .to_string();
    assert!(
        out.contains("const NAME : & 'static str = \"coupon.CouponIssued\""),
        "{out}"
    );
}

#[test]
fn derive_refuses_names_with_whitespace_or_empty() {
    for (name, want) in [
        (
            "coupon issued",
            "' ' is not allowed; an event name has no whitespace",
        ),
        ("", "`name` cannot be empty"),
    ] {
        let out = super::derive_outbox_event(quote! {
            #[outbox(topic = "t", key = "id", name = #name)]
            struct E { id: String }
        })
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains(want), "{name:?}: {out}");
    }
}

#[test]
fn derive_with_avro_format_registers_the_avro_encoding() {
    let out = super::derive_outbox_event(quote! {
        #[outbox(topic = "coupon.issued", key = "coupon_id", format = "avro")]
        struct CouponIssued { coupon_id: String }
    })
    .to_string();
    assert!(
        out.contains("OutboxRegistration :: avro :: < CouponIssued >"),
        "{out}"
    );
    let json = super::derive_outbox_event(quote! {
        #[outbox(topic = "coupon.issued", key = "coupon_id", format = "json")]
        struct CouponIssued { coupon_id: String }
    })
    .to_string();
    assert!(
        json.contains("OutboxRegistration :: of :: < CouponIssued >"),
        "{json}"
    );
}

#[test]
fn derive_lists_the_formats_for_an_unknown_one() {
    let out = super::derive_outbox_event(quote! {
        #[outbox(topic = "t", key = "id", format = "protobuf")]
        struct E { id: String }
    })
    .to_string();
    assert!(
        out.contains("unknown outbox format `protobuf`; expected one of: `json`, `avro`"),
        "{out}"
    );
}
