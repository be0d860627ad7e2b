//! Code generation for `#[after_commit]` and `#[derive(OutboxEvent)]`.
//! Generated code names only `<krate>::__private::after_commit::*` (and
//! `core`), so a renamed dependency works with `crate = "..."`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{LitStr, Path, ReturnType, Type};

use super::Handler;

/// `<krate>::__private::after_commit::<name>`, every token spanned at
/// `span` (so that a trait error of an assertion points at the user's type).
pub(crate) fn private(krate: &Path, name: &str, span: Span) -> TokenStream {
    crate::util::private(krate, &["after_commit", name], span)
}

/// `const _: () = <krate>::__private::after_commit::<assert>::<ty>();`
/// spanned at `ty`.
pub(crate) fn assertion(krate: &Path, assert: &str, ty: &Type) -> TokenStream {
    let span = ty.span();
    let assert = private(krate, assert, span);
    let underscore = format_ident!("_", span = span);
    quote_spanned! {span=>
        const #underscore: () = #assert::<#ty>();
    }
}

/// The function unchanged, then an anonymous `const` block with the
/// assertions (first, so that their precise errors come first), the
/// type-erased entry point and the `inventory` registration.
pub(crate) fn handler(handler: &Handler, item: TokenStream) -> TokenStream {
    let krate = &handler.krate;
    let p = |name: &str| private(krate, name, Span::call_site());
    let (op, outcome, registration) = (p("Op"), p("Outcome"), p("AfterCommitRegistration"));
    let inventory = crate::util::private(krate, &["inventory"], Span::call_site());
    let event = &handler.event;
    let args = &handler.args;
    let name = &handler.func.sig.ident;
    let name_str = LitStr::new(&name.to_string(), name.span());
    let fallback = handler.fallback_execution;

    let mut assertions = assertion(krate, "assert_event", event);
    for ty in args {
        assertions.extend(assertion(krate, "assert_from_event_context", ty));
    }
    if let ReturnType::Type(_, ty) = &handler.func.sig.output {
        assertions.extend(assertion(krate, "assert_handler_result", ty));
    }
    // Spanned at the function's name: a future that is not `Send` is
    // reported there. Naming the argument tuple selects the one
    // `AfterCommitHandler` impl that applies.
    let entry_fn = private(krate, "entry", name.span());
    let entry = quote_spanned!(name.span()=> #entry_fn::<#event, (#(#args,)*), _>(#name, op));
    let cfgs = handler
        .func
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    quote! {
        #item

        #(#cfgs)*
        const _: () = {
            #assertions

            fn __after_commit_entry(op: #op<'_>) -> #outcome {
                #entry
            }

            #inventory::submit! {
                #registration::new::<#event>(
                    ::core::concat!(::core::module_path!(), "::", #name_str),
                    #fallback,
                    __after_commit_entry,
                )
            }
        };
    }
}
