//! `#[kafka_listener(...)]`: parse the attribute (`attr`), check it and the
//! function (`check`), generate the registration (`expand`).

mod attr;
mod check;
mod choices;
mod expand;
#[cfg(test)]
mod tests;

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::{ItemFn, LitStr, Path};

use crate::ctxt::Ctxt;
use crate::util::{debug_print, is_fn};

pub(crate) use self::attr::AckMode;
use self::attr::{BackOffKind, DeadLetterAttr};

/// Expands `#[kafka_listener(args)] item`.
///
/// On error the result is the user's item unchanged followed by one
/// `compile_error!` per problem, so that the function still exists for the
/// rest of the crate and for IDEs (as tokio-macros does).
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(expanded) => {
            debug_print("#[kafka_listener]", &expanded);
            expanded
        }
        Err(errors) => {
            let mut tokens = item;
            tokens.extend(errors.into_compile_error());
            tokens
        }
    }
}

/// Parses, checks and expands; every problem found is in the error.
///
/// # Errors
/// All the problems with the attribute and the function, each spanned at
/// the user's tokens.
pub(crate) fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let attrs = attr::ListenerAttrs::parse(&cx, args);
    let listener = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => check::listener(&cx, attrs, func),
        Err(e) => {
            if is_fn(&item) {
                cx.syn_error(e);
            } else {
                cx.error_at(
                    Span::call_site(),
                    "`#[kafka_listener]` can only be applied to an `async fn`",
                );
            }
            None
        }
    };
    cx.check()?;
    let listener = listener.expect("checks passed, so the listener was built");
    Ok(expand::listener(&listener, item))
}

/// A listener that passed every check: what `expand` generates code for.
/// Optional settings are `None` when not given, leaving the runtime's
/// default in place.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The path of the runtime crate (`::kafka_listener` unless `crate = ".."`).
    pub(crate) krate: Path,
    /// The user's function.
    pub(crate) func: ItemFn,
    /// The listener id (default: the function name).
    pub(crate) id: LitStr,
    pub(crate) source: TopicSource,
    pub(crate) group_id: Option<LitStr>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) ack_mode: Option<AckMode>,
    pub(crate) auto_startup: Option<bool>,
    pub(crate) properties: Vec<(LitStr, LitStr)>,
    /// A batch listener (`batch = true`).
    pub(crate) batch: bool,
    pub(crate) retry: Option<Retry>,
    /// `rate_limit = "M/N"`: permits and window.
    pub(crate) rate_limit: Option<(u32, std::time::Duration)>,
    /// `filter = path`: the record filter.
    pub(crate) filter: Option<Path>,
    /// `reply = true` or `send_to = "topic"`: where the return value goes.
    pub(crate) reply: Option<ReplyAttr>,
    /// `transactional = true`.
    pub(crate) transactional: Option<bool>,
    /// `isolation = "..."`.
    pub(crate) isolation: Option<attr::IsolationAttr>,
    /// `seek = "..."`.
    pub(crate) seek: Option<attr::SeekAttr>,
    /// `ordering = "..."`.
    pub(crate) ordering: Option<attr::OrderingAttr>,
    /// `parallelism = N`.
    pub(crate) parallelism: Option<usize>,
    /// `dead_letter = true | "topic"` (`false` is `None`).
    pub(crate) dead_letter: Option<DeadLetterAttr>,
    /// `retry_topics(...)`: the keys given.
    pub(crate) retry_topics: Option<RetryTopics>,
}

/// What the listener subscribes to.
#[derive(Debug)]
pub(crate) enum TopicSource {
    Topics(Vec<LitStr>),
    Pattern(LitStr),
}

/// A checked `retry(...)`: only the keys the user wrote; the runtime's
/// `RetryPolicy::builder()` fills in the rest.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Retry {
    pub(crate) attempts: Option<u32>,
    pub(crate) backoff: Option<BackOffKind>,
    pub(crate) initial: Option<Duration>,
    pub(crate) max: Option<Duration>,
    pub(crate) multiplier: Option<f64>,
    pub(crate) jitter: Option<bool>,
}

/// A checked `retry_topics(...)`: only the keys the user wrote.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RetryTopics {
    pub(crate) attempts: Option<u32>,
    pub(crate) delays: Option<Vec<Duration>>,
}

/// A listener's reply destination.
#[derive(Debug, Clone)]
pub(crate) enum ReplyAttr {
    /// `reply = true`: the request's `kafka_replyTopic` header.
    Request,
    /// `send_to = "topic"`.
    Topic(syn::LitStr),
}
