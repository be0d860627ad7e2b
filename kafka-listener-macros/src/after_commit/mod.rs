//! `#[after_commit]` on an `async fn` (parse the keys in `attr`, check the
//! signature here, generate the registration in `expand`) and
//! `#[derive(OutboxEvent)]` (`outbox`).

mod attr;
mod expand;
mod outbox;
#[cfg(test)]
mod tests;

use proc_macro2::{Span, TokenStream};
use syn::{FnArg, ItemFn, Path, Type};

use self::attr::AfterCommitAttrs;
use crate::ctxt::Ctxt;
use crate::meta::KeyTable;
use crate::symbol::{EVENT_META, STATE};
use crate::util::{debug_print, is_fn, last_segment, type_string};

pub(crate) use self::outbox::derive_outbox_event;

/// The most arguments after the event (the runtime implements
/// `AfterCommitHandler` for up to 8).
const MAX_EXTRA_ARGS: usize = 8;

/// Expands `#[after_commit(args)] item`; on error the item unchanged
/// followed by the errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => {
            debug_print("#[after_commit]", &expanded);
            expanded
        }
        Err(errors) => {
            let mut tokens = item;
            tokens.extend(errors.into_compile_error());
            tokens
        }
    }
}

/// Parses, checks and expands.
///
/// # Errors
/// Every problem with the attribute and the function, each spanned at the
/// user's tokens.
pub(crate) fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let attrs = AfterCommitAttrs::from_entries(&cx, crate::meta::entries(&cx, args));
    let handler = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => check(&cx, attrs, func),
        Err(e) => {
            if is_fn(&item) {
                cx.syn_error(e);
            } else {
                cx.error_at(
                    Span::call_site(),
                    "`#[after_commit]` can only be applied to an `async fn`; to send an event type to Kafka through the outbox, derive `OutboxEvent` on it",
                );
            }
            None
        }
    };
    cx.check()?;
    let handler = handler.expect("checks passed, so the handler was built");
    Ok(expand::handler(&handler, item))
}

/// A handler that passed every check.
#[derive(Debug)]
pub(crate) struct Handler {
    /// The path of the runtime crate.
    pub(crate) krate: Path,
    pub(crate) func: ItemFn,
    /// The first argument's type.
    pub(crate) event: Type,
    /// The types of the arguments after the event.
    pub(crate) args: Vec<Type>,
    pub(crate) fallback_execution: bool,
}

/// Checks the function; the handler when nothing was wrong.
fn check(cx: &Ctxt, attrs: AfterCommitAttrs, func: ItemFn) -> Option<Handler> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "an `#[after_commit]` handler must be an `async fn`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "an `#[after_commit]` handler cannot be an `unsafe fn`",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            "an `#[after_commit]` handler cannot have an `extern` ABI",
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "an `#[after_commit]` handler cannot be generic: it is registered for one concrete event type",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "an `#[after_commit]` handler cannot be variadic");
    }
    let mut types = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "an `#[after_commit]` handler cannot take `self`: use a free function, and `State<T>` for shared state",
            ),
            FnArg::Typed(arg) => types.push((*arg.ty).clone()),
        }
    }
    let mut types = types.into_iter();
    let event = types.next();
    match &event {
        None if sig.receiver().is_none() => cx.error_spanned_by(
            &sig.ident,
            format!(
                "an `#[after_commit]` handler takes the event as its first argument, e.g. `async fn {}(event: CouponIssued)`",
                sig.ident
            ),
        ),
        None => {}
        Some(ty) => event_type(cx, ty),
    }
    let args: Vec<Type> = types.collect();
    for (i, ty) in args.iter().enumerate() {
        if i == MAX_EXTRA_ARGS {
            cx.error_spanned_by(
                ty,
                format!("an `#[after_commit]` handler takes at most {MAX_EXTRA_ARGS} arguments after the event; group some in a type that implements `FromEventContext`"),
            );
        } else if i < MAX_EXTRA_ARGS {
            extra_argument(cx, ty);
        }
    }
    if cx.has_errors() {
        return None;
    }
    Some(Handler {
        krate: attrs
            .krate
            .map_or_else(|| syn::parse_quote!(::kafka_listener), |k| k.value),
        event: event?,
        args,
        fallback_execution: attrs.fallback_execution.is_some_and(|k| k.value),
        func,
    })
}

/// The event is taken by value, as a concrete type.
fn event_type(cx: &Ctxt, ty: &Type) {
    match ty {
        Type::Reference(reference) => cx.error_spanned_by(
            ty,
            format!(
                "the event is passed by value (each handler gets its own clone): write `{}`, not a reference",
                type_string(&reference.elem)
            ),
        ),
        Type::ImplTrait(_) | Type::Infer(_) => cx.error_spanned_by(
            ty,
            "the event must be a concrete type: handlers are registered by the event's type",
        ),
        _ => {
            if let Some((name, _)) = last_segment(ty) {
                if name == STATE.as_str() || name == EVENT_META.as_str() {
                    let arg = if name == STATE.as_str() { "state" } else { "meta" };
                    cx.error_spanned_by(
                        ty,
                        format!(
                            "the first argument of an `#[after_commit]` handler is the event; `{name}` goes after it, e.g. `async fn on_event(event: MyEvent, {arg}: {})`",
                            type_string(ty)
                        ),
                    );
                }
            }
        }
    }
}

/// An argument after the event: an owned extractor.
fn extra_argument(cx: &Ctxt, ty: &Type) {
    match ty {
        Type::Reference(_) => cx.error_spanned_by(
            ty,
            "an `#[after_commit]` handler argument cannot be a reference: after the event come owned extractors such as `State<T>` or `EventMeta`",
        ),
        Type::ImplTrait(_) => cx.error_spanned_by(
            ty,
            "an `#[after_commit]` handler argument cannot be `impl Trait` (that makes the function generic); name an extractor type such as `State<T>`",
        ),
        _ => {}
    }
}
