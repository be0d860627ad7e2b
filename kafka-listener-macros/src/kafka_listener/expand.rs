//! Code generation for a checked [`Listener`].
//!
//! Every path the generated code names is built by [`Exports`], below the
//! runtime's `__private` module (or the `crate = "..."` path), so a renamed
//! dependency works and the user needs no other crate in scope.

use std::time::Duration;

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, Path, ReturnType, Type};

use super::attr::DeadLetterAttr;
use super::{BackOff, Listener, Retry, TopicSource};

/// The table of paths into the runtime crate that generated code uses (as
/// Rocket's `exports.rs`).
struct Exports<'a> {
    krate: &'a Path,
}

impl Exports<'_> {
    /// `<krate>::__private::<name>`, spanned at `span`.
    fn private(&self, name: &str, span: Span) -> TokenStream {
        let name = syn::Ident::new(name, span);
        let krate = respan(self.krate.to_token_stream(), span);
        quote_spanned!(span=> #krate::__private::#name)
    }

    fn listener_spec(&self) -> TokenStream {
        self.private("ListenerSpec", Span::call_site())
    }
    fn listener_registration(&self) -> TokenStream {
        self.private("ListenerRegistration", Span::call_site())
    }
    fn inventory(&self) -> TokenStream {
        self.private("inventory", Span::call_site())
    }
    fn ack_mode(&self) -> TokenStream {
        self.private("AckMode", Span::call_site())
    }
    fn retry_policy(&self) -> TokenStream {
        self.private("RetryPolicy", Span::call_site())
    }
    fn backoff(&self) -> TokenStream {
        self.private("BackOff", Span::call_site())
    }
    fn duration(&self) -> TokenStream {
        self.private("Duration", Span::call_site())
    }
    /// `assert_from_record`, `assert_from_batch` or
    /// `assert_listener_result`, spanned at the user's type.
    fn assert(&self, name: &str, span: Span) -> TokenStream {
        self.private(name, span)
    }
}

/// Gives every token of `tokens` the span `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut g =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                g.set_span(span);
                tree = g.into();
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// The user's function unchanged, then an anonymous `const` block with the
/// trait assertions, the factory and its `inventory` registration. The
/// assertions come first so that their errors, at the user's types, are
/// reported before the less precise one of the `handler(f)` call.
pub(crate) fn listener(listener: &Listener, item: TokenStream) -> TokenStream {
    let exports = Exports {
        krate: &listener.krate,
    };
    let spec = exports.listener_spec();
    let registration = exports.listener_registration();
    let inventory = exports.inventory();
    let id = &listener.id;
    let settings = settings(listener, &exports);
    let handler = handler(listener);
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
        let ack_mode = exports.ack_mode();
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
        let ty = exports.private("DeadLetter", Span::call_site());
        calls.extend(match dead_letter {
            DeadLetterAttr::Topic(name) => quote!(.dead_letter(#ty::Topic(#name.to_owned()))),
            _ => quote!(.dead_letter(#ty::Default)),
        });
    }
    if let Some((attempts, delays)) = &listener.retry_topics {
        let ty = exports.private("RetryTopics", Span::call_site());
        let duration = exports.duration();
        let attempts = Literal::u32_unsuffixed(*attempts);
        let delays = delays.iter().map(|d| {
            let millis =
                Literal::u64_unsuffixed(u64::try_from(d.as_millis()).expect("checked in attr.rs"));
            quote!(#duration::from_millis(#millis))
        });
        calls.extend(quote!(.retry_topics(#ty::new(#attempts, [#(#delays),*]))));
    }
    if let Some((permits, per)) = listener.rate_limit {
        let rate_limit = exports.private("RateLimit", Span::call_site());
        let duration = exports.duration();
        let permits = Literal::u32_unsuffixed(permits);
        let millis =
            Literal::u64_unsuffixed(u64::try_from(per.as_millis()).expect("checked in attr.rs"));
        calls.extend(
            quote!(.rate_limit(#rate_limit::new(#permits, #duration::from_millis(#millis)))),
        );
    }
    calls
}

/// `RetryPolicy { attempts, backoff }` as a struct literal (both runtime
/// types have public fields).
fn retry_policy(retry: &Retry, exports: &Exports<'_>) -> TokenStream {
    let policy = exports.retry_policy();
    let backoff_ty = exports.backoff();
    let attempts = Literal::u32_unsuffixed(retry.attempts);
    let duration = |d: Duration| {
        let duration = exports.duration();
        let millis =
            Literal::u64_unsuffixed(u64::try_from(d.as_millis()).expect("checked in attr.rs"));
        quote!(#duration::from_millis(#millis))
    };
    let backoff = match &retry.backoff {
        BackOff::Fixed(delay) => {
            let delay = duration(*delay);
            quote!(#backoff_ty::Fixed(#delay))
        }
        BackOff::Exponential {
            initial,
            multiplier,
            max,
            jitter,
        } => {
            let initial = duration(*initial);
            let max = duration(*max);
            let multiplier = Literal::f64_unsuffixed(*multiplier);
            quote! {
                #backoff_ty::Exponential {
                    initial: #initial,
                    multiplier: #multiplier,
                    max: #max,
                    jitter: #jitter,
                }
            }
        }
    };
    quote! {
        #policy {
            attempts: #attempts,
            backoff: #backoff,
        }
    }
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
        tokens.extend(assertion(exports, "assert_listener_result", ty));
    }
    tokens
}

fn assertion(exports: &Exports<'_>, name: &str, ty: &Type) -> TokenStream {
    let span = ty.span();
    let assert = exports.assert(name, span);
    let underscore = format_ident!("_", span = span);
    quote_spanned! {span=>
        const #underscore: () = #assert::<#ty>();
    }
}
