//! Helpers both macros use: paths into the runtime's `__private` module,
//! respanning, the `KAFKA_LISTENER_MACROS_DEBUG` printout, type names in
//! messages, and the `Keyed` constructor of the key tables.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{GenericArgument, Ident, Path, PathArguments, Type};

use crate::meta::{Entry, Keyed};

/// The environment variable that prints every expansion to stderr at
/// compile time when set to `1`.
pub(crate) const DEBUG_ENV: &str = "KAFKA_LISTENER_MACROS_DEBUG";

/// Prints `expanded` to stderr when [`DEBUG_ENV`] is `1`; `what` names the
/// macro, e.g. `#[kafka_listener]`.
pub(crate) fn debug_print(what: &str, expanded: &TokenStream) {
    if std::env::var_os(DEBUG_ENV).is_some_and(|v| v == "1") {
        eprintln!("// {DEBUG_ENV}: {what} expansion\n{expanded}\n");
    }
}

/// `<krate>::__private::<segments>::...`, every token spanned at `span` (so
/// that a trait error of an assertion points at the user's type).
pub(crate) fn private(krate: &Path, segments: &[&str], span: Span) -> TokenStream {
    let krate = respan(krate.to_token_stream(), span);
    let segments = segments.iter().map(|s| Ident::new(s, span));
    quote_spanned!(span=> #krate::__private #(::#segments)*)
}

/// Gives every token of `tokens` the span `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut g = Group::new(group.delimiter(), respan(group.stream(), span));
                g.set_span(span);
                tree = g.into();
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// `Json<Vec<u8>>` rather than `Json < Vec < u8 > >`, for path types.
pub(crate) fn type_string(ty: &Type) -> String {
    quote::quote!(#ty)
        .to_string()
        .replace(' ', "")
        .replace(',', ", ")
}

/// The last path segment's name and its first generic type argument:
/// `("Json", Some(T))` for `kafka_listener::Json<T>`.
pub(crate) fn last_segment(ty: &Type) -> Option<(String, Option<&Type>)> {
    let Type::Path(path) = ty else {
        return None;
    };
    let segment = path.path.segments.last()?;
    let generic = match &segment.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    };
    Some((segment.ident.unraw().to_string(), generic))
}

/// `value` with the key of `entry`.
pub(crate) fn keyed<T>(entry: &Entry, value: T) -> Keyed<T> {
    Keyed {
        key: entry.key.clone(),
        value,
    }
}

/// Whether `item` looks like a function (so that a parse error is worth
/// showing as it is).
pub(crate) fn is_fn(item: &TokenStream) -> bool {
    item.clone()
        .into_iter()
        .any(|t| matches!(t, TokenTree::Ident(ref i) if i == "fn"))
}

/// Why `name` is not a valid Kafka topic name, if it is not: 1 to 249 of
/// `[a-zA-Z0-9._-]`, not `.` or `..` (the broker's own rule,
/// `org.apache.kafka.common.internals.Topic`, which the runtime's
/// `DeadLetter::try_topic` applies too).
pub(crate) fn topic_name_error(name: &str) -> Option<String> {
    let bad = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if let Some(c) = bad {
        Some(format!(
            "invalid topic name `{name}`: `{c}` is not allowed; a topic name uses ASCII letters, digits, `.`, `_` and `-`"
        ))
    } else if name.len() > 249 {
        Some(format!(
            "invalid topic name: {} characters, at most 249",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some(format!("invalid topic name `{name}`"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_paths_are_spanned_and_nested() {
        let krate: Path = syn::parse_quote!(crate::kl);
        let path = private(&krate, &["after_commit", "Op"], Span::call_site());
        assert_eq!(
            path.to_string(),
            "crate :: kl :: __private :: after_commit :: Op"
        );
    }

    #[test]
    fn type_strings_are_compact() {
        let ty: Type = syn::parse_quote!(Json<HashMap<String, u8>>);
        assert_eq!(type_string(&ty), "Json<HashMap<String, u8>>");
        let (name, generic) = last_segment(&ty).unwrap();
        assert_eq!(name, "Json");
        assert_eq!(type_string(generic.unwrap()), "HashMap<String, u8>");
    }
}
