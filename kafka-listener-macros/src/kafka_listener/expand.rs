//! Code generation for a checked [`Listener`].
//!
//! Every path the generated code names is built by [`Exports`], below the
//! runtime's `__private` module (or the `crate = "..."` path), so a renamed
//! dependency works and the user needs no other crate in scope.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Path, ReturnType, Type};

use super::attr::{BackOffKind, DeadLetterAttr};
use super::{Listener, ReplyAttr, Retry, RetryTopics, TopicSource};
use crate::util::private;

/// The table of paths into the runtime crate that generated code uses (as
/// Rocket's `exports.rs`).
struct Exports<'a> {
    krate: &'a Path,
}

impl Exports<'_> {
    /// `<krate>::__private::<name>`, spanned at `span`.
    fn private(&self, name: &str, span: Span) -> TokenStream {
        private(self.krate, &[name], span)
    }

    /// `<krate>::__private::<name>` at the call site.
    fn path(&self, name: &str) -> TokenStream {
        self.private(name, Span::call_site())
    }

    /// `Duration::from_millis(<ms>)`.
    fn duration(&self, d: Duration) -> TokenStream {
        let duration = self.path("Duration");
        let millis =
            Literal::u64_unsuffixed(u64::try_from(d.as_millis()).expect("checked in attr.rs"));
        quote!(#duration::from_millis(#millis))
    }
}

/// The user's function unchanged, then an anonymous `const` block with the
/// trait assertions, the factory and its `inventory` registration. The
/// assertions come first so that their errors, at the user's types, are
/// reported before the less precise one of the `handler(f)` call.
pub(crate) fn listener(listener: &Listener, item: TokenStream) -> TokenStream {
    let exports = Exports {
        krate: &listener.krate,
    };
    let spec = exports.path("ListenerSpec");
    let registration = exports.path("ListenerRegistration");
    let inventory = exports.path("inventory");
    let id = &listener.id;
    let settings = settings(listener, &exports);
    let handler = handler(listener);
    let messages = messages(listener, &exports);
    let assertions = assertions(listener, &exports);
    // The registration exists exactly when the function does.
    let cfgs = listener
        .func
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    quote! {
        #item

        #(#cfgs)*
        const _: () = {
            #assertions

            fn __kafka_listener_factory() -> #spec {
                #spec::new(#id)
                    #settings
                    #handler
                    #messages
            }

            #inventory::submit! {
                #registration::new(__kafka_listener_factory)
            }
        };
    }
}

/// The builder calls for every setting given in the attribute.
fn settings(listener: &Listener, exports: &Exports<'_>) -> TokenStream {
    let mut calls = match &listener.source {
        TopicSource::Topics(topics) => quote!(.topics([#(#topics),*])),
        TopicSource::Pattern(pattern) => quote!(.topic_pattern(#pattern)),
    };
    if let Some(group_id) = &listener.group_id {
        calls.extend(quote!(.group_id(#group_id)));
    }
    if let Some(concurrency) = listener.concurrency {
        let n = Literal::usize_unsuffixed(concurrency);
        calls.extend(quote!(.concurrency(#n)));
    }
    if let Some(mode) = listener.ack_mode {
        let ack_mode = exports.path("AckMode");
        let variant = mode.variant();
        calls.extend(quote!(.ack_mode(#ack_mode::#variant)));
    }
    if let Some(auto_startup) = listener.auto_startup {
        calls.extend(quote!(.auto_startup(#auto_startup)));
    }
    for (key, value) in &listener.properties {
        calls.extend(quote!(.property(#key, #value)));
    }
    if let Some(retry) = &listener.retry {
        let policy = retry_policy(retry, exports);
        calls.extend(quote!(.retry(#policy)));
    }
    if let Some(dead_letter) = &listener.dead_letter {
        let ty = exports.path("DeadLetter");
        calls.extend(match dead_letter {
            DeadLetterAttr::Topic(name) => quote!(.dead_letter(#ty::topic(#name))),
            _ => quote!(.dead_letter(#ty::suffixed())),
        });
    }
    if let Some(retry_topics) = &listener.retry_topics {
        let topics = self::retry_topics(retry_topics, exports);
        calls.extend(quote!(.retry_topics(#topics)));
    }
    if let Some(filter) = &listener.filter {
        calls.extend(quote!(.filter(#filter)));
    }
    match &listener.reply {
        Some(ReplyAttr::Request) => calls.extend(quote!(.reply_to_request())),
        Some(ReplyAttr::Topic(topic)) => calls.extend(quote!(.send_to(#topic))),
        None => {}
    }
    if let Some(transactional) = listener.transactional {
        calls.extend(quote!(.transactional(#transactional)));
    }
    if let Some(isolation) = listener.isolation {
        let ty = exports.path("IsolationLevel");
        let variant = isolation.variant();
        calls.extend(quote!(.isolation_level(#ty::#variant)));
    }
    if let Some(seek) = listener.seek {
        let ty = exports.path("SeekPosition");
        let variant = seek.variant();
        calls.extend(quote!(.seek_on_assignment(#ty::#variant)));
    }
    if let Some(ordering) = listener.ordering {
        let ty = exports.path("Ordering");
        let variant = ordering.variant();
        calls.extend(quote!(.ordering(#ty::#variant)));
    }
    if let Some(parallelism) = listener.parallelism {
        let n = Literal::usize_unsuffixed(parallelism);
        calls.extend(quote!(.parallelism(#n)));
    }
    if let Some((permits, per)) = listener.rate_limit {
        let rate_limit = exports.path("RateLimit");
        let permits = Literal::u32_unsuffixed(permits);
        let per = exports.duration(per);
        calls.extend(quote!(.rate_limit(#rate_limit::new(#permits, #per))));
    }
    calls
}

/// `RetryPolicy::builder()` with one call per key given, then `.build()`:
/// the runtime fills in the defaults.
fn retry_policy(retry: &Retry, exports: &Exports<'_>) -> TokenStream {
    let policy = exports.path("RetryPolicy");
    let mut calls = TokenStream::new();
    if let Some(attempts) = retry.attempts {
        let attempts = Literal::u32_unsuffixed(attempts);
        calls.extend(quote!(.attempts(#attempts)));
    }
    match retry.backoff {
        Some(BackOffKind::Fixed) => calls.extend(quote!(.fixed())),
        Some(BackOffKind::Exponential) => calls.extend(quote!(.exponential())),
        None => {}
    }
    if let Some(initial) = retry.initial {
        let initial = exports.duration(initial);
        calls.extend(quote!(.initial(#initial)));
    }
    if let Some(max) = retry.max {
        let max = exports.duration(max);
        calls.extend(quote!(.max(#max)));
    }
    if let Some(multiplier) = retry.multiplier {
        let multiplier = Literal::f64_unsuffixed(multiplier);
        calls.extend(quote!(.multiplier(#multiplier)));
    }
    if let Some(jitter) = retry.jitter {
        calls.extend(quote!(.jitter(#jitter)));
    }
    quote!(#policy::builder() #calls .build())
}

/// `RetryTopics::builder()` with one call per key given, then `.build()`.
fn retry_topics(topics: &RetryTopics, exports: &Exports<'_>) -> TokenStream {
    let ty = exports.path("RetryTopics");
    let mut calls = TokenStream::new();
    if let Some(attempts) = topics.attempts {
        let attempts = Literal::u32_unsuffixed(attempts);
        calls.extend(quote!(.attempts(#attempts)));
    }
    if let Some(delays) = &topics.delays {
        let delays = delays.iter().map(|d| exports.duration(*d));
        calls.extend(quote!(.delays([#(#delays),*])));
    }
    quote!(#ty::builder() #calls .build())
}

/// `.handler::<_, (A1, A2, ..)>(f)` or `.batch_handler::<_, (..)>(f)`,
/// the function named with the user's own identifier. Naming the argument
/// tuple selects the one `Handler` impl that applies, so that a failure
/// (a future that is not `Send`, an argument that is not an extractor) is
/// reported as its cause rather than as "`Handler<_>` is not implemented".
fn handler(listener: &Listener) -> TokenStream {
    let name = &listener.func.sig.ident;
    let args = listener.func.sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(arg) => Some(&arg.ty),
        FnArg::Receiver(_) => None,
    });
    let method = if listener.batch {
        quote!(batch_handler)
    } else {
        quote!(handler)
    };
    // Spanned at the function's name: a future that is not `Send` is
    // reported there.
    quote_spanned!(name.span()=> .#method::<_, (#(#args,)*)>(#name))
}

/// `.__message(..)` per argument: the argument's message schema when it
/// is a payload (`Json<T>` with `T: JsonSchema`, `Avro<T>`), found by
/// autoref specialization (`crate::schema::probe` in the runtime), for the
/// AsyncAPI document.
fn messages(listener: &Listener, exports: &Exports<'_>) -> TokenStream {
    let schema = exports.path("schema");
    let mut calls = TokenStream::new();
    for arg in &listener.func.sig.inputs {
        if let FnArg::Typed(arg) = arg {
            let ty = &arg.ty;
            calls.extend(quote! {
                .__message({
                    #[allow(unused_imports)]
                    use #schema::{HasSchema as _, Named as _, NoSchema as _};
                    (&&#schema::Probe::<#ty>::new()).message_schema()
                })
            });
        }
    }
    calls
}

/// One `const` assertion per argument type and one for the return type,
/// each spanned at the user's type so that "`Foo` cannot be a listener
/// argument" or "`Foo: Deserialize` is not satisfied" points there rather
/// than at the attribute.
fn assertions(listener: &Listener, exports: &Exports<'_>) -> TokenStream {
    let assert_arg = if listener.batch {
        "assert_from_batch"
    } else {
        "assert_from_record"
    };
    let mut tokens = TokenStream::new();
    for arg in &listener.func.sig.inputs {
        if let FnArg::Typed(arg) = arg {
            tokens.extend(assertion(exports, assert_arg, &arg.ty));
        }
    }
    if let ReturnType::Type(_, ty) = &listener.func.sig.output {
        let check = if listener.reply.is_some() {
            "assert_reply"
        } else {
            "assert_no_reply"
        };
        tokens.extend(assertion(exports, check, ty));
    }
    tokens
}

fn assertion(exports: &Exports<'_>, name: &str, ty: &Type) -> TokenStream {
    let span = ty.span();
    let assert = exports.private(name, span);
    let underscore = format_ident!("_", span = span);
    quote_spanned! {span=>
        const #underscore: () = #assert::<#ty>();
    }
}
