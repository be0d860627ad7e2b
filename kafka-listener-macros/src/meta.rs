//! The shape every attribute of these macros shares: a comma-separated list
//! of `key = value` and `key(...)` entries whose values are literals,
//! `[...]` lists and `(...)` tuples.
//!
//! The list is split at its top-level commas before anything is parsed, so
//! a bad entry costs only itself: every other entry is still checked and
//! every error is reported in one compilation. An entry's value is parsed
//! only once its key is known, so an unknown key is reported as such
//! whatever follows it.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{bracketed, parenthesized, token, Ident, Lit, LitBool, LitStr, Path, Token};

use crate::ctxt::Ctxt;
use crate::symbol::{self, Symbol};

/// One `key = value` or `key(...)` entry, its value not parsed yet.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The key as the user spelled it (keywords such as `crate` included).
    pub(crate) key: Ident,
    /// Everything after the key.
    rest: TokenStream,
}

/// A literal value: what may follow `key =`.
#[derive(Debug)]
pub(crate) enum Value {
    /// A string, number, boolean, ...
    Lit(Lit),
    /// A negative number.
    Neg(Token![-], Lit),
    /// `[a, b, ...]`.
    List(token::Bracket, Punctuated<Value, Token![,]>),
    /// `(a, b, ...)`.
    Tuple(token::Paren, Punctuated<Value, Token![,]>),
}

/// Splits `tokens` at its top-level commas and reads the key of each entry.
/// Entries that do not start with a key are reported and skipped.
pub(crate) fn entries(cx: &Ctxt, tokens: TokenStream) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut chunk = TokenStream::new();
    let mut flush = |chunk: TokenStream, comma: Option<&TokenTree>| {
        if chunk.is_empty() {
            // Only a trailing comma may end the list without an entry.
            if let Some(comma) = comma {
                cx.error_spanned_by(
                    comma,
                    "expected an attribute such as `topics = [\"...\"]` before `,`",
                );
            }
            return;
        }
        match Entry::parse.parse2(chunk) {
            Ok(entry) => entries.push(entry),
            Err(e) => cx.syn_error(e),
        }
    };
    for tree in tokens {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => {
                flush(std::mem::take(&mut chunk), Some(&tree))
            }
            _ => chunk.extend([tree]),
        }
    }
    flush(chunk, None);
    entries
}

impl Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !input.peek(Ident::peek_any) {
            return Err(input.error("expected an attribute name such as `topics`"));
        }
        Ok(Entry {
            key: input.call(Ident::parse_any)?,
            rest: input.parse()?,
        })
    }

    /// Records `message` at this entry's key.
    pub(crate) fn error<M: Display>(&self, cx: &Ctxt, message: M) {
        cx.error_spanned_by(&self.key, message);
    }

    /// The value of `key = value`, or `None` after recording why not.
    /// `example` shows a valid entry, e.g. `concurrency = 3`.
    pub(crate) fn value(&self, cx: &Ctxt, example: &str) -> Option<Value> {
        let key = &self.key;
        let parser = |input: ParseStream<'_>| {
            if input.is_empty() {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` needs a value, e.g. `{example}`"),
                ));
            }
            let lookahead = input.lookahead1();
            if lookahead.peek(Token![=]) {
                input.parse::<Token![=]>()?;
            } else if lookahead.peek(token::Paren) {
                return Err(input.error(format!(
                    "`{key}` takes a value, not a list of keys: `{example}`"
                )));
            } else {
                return Err(input.error(format!("expected `=` after `{key}`, e.g. `{example}`")));
            }
            if input.is_empty() {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` needs a value after `=`, e.g. `{example}`"),
                ));
            }
            if input.peek(Ident::peek_any) && !input.peek(LitBool) {
                let expr: syn::Expr = input.parse()?;
                return Err(syn::Error::new_spanned(
                    &expr,
                    format!(
                        "`{key}` takes a literal, as in `{example}`, not `{}`; constants and expressions are not supported",
                        expr.to_token_stream()
                    ),
                ));
            }
            let value: Value = input.parse()?;
            if !input.is_empty() {
                return Err(input.error(format!(
                    "unexpected tokens after the value of `{key}`; separate attributes with `,`"
                )));
            }
            Ok(value)
        };
        parser
            .parse2(self.rest.clone())
            .map_err(|e| cx.syn_error(e))
            .ok()
    }

    /// A path: `key = some::function` (not a literal), or `None` after
    /// recording why not.
    pub(crate) fn path(&self, cx: &Ctxt, example: &str) -> Option<Path> {
        let key = &self.key;
        let parser = |input: ParseStream<'_>| {
            if !input.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` needs a path to a function, e.g. `{example}`"),
                ));
            }
            input.parse::<Token![=]>()?;
            if input.is_empty() {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` needs a path to a function after `=`, e.g. `{example}`"),
                ));
            }
            if !(input.peek(Ident::peek_any) || input.peek(Token![::])) || input.peek(LitBool) {
                let value: TokenStream = input.parse()?;
                return Err(syn::Error::new_spanned(
                    &value,
                    format!("`{key}` takes a path to a function, as in `{example}`, not `{value}`"),
                ));
            }
            let path: Path = input.parse()?;
            if !input.is_empty() {
                return Err(input.error(format!(
                    "unexpected tokens after the path of `{key}`; give the name of a function (closures are not supported: use `ListenerSpec::filter`), and separate attributes with `,`"
                )));
            }
            Ok(path)
        };
        parser
            .parse2(self.rest.clone())
            .map_err(|e| cx.syn_error(e))
            .ok()
    }

    /// The entries inside `key(...)`, or `None` after recording why not.
    pub(crate) fn nested(&self, cx: &Ctxt, example: &str) -> Option<Vec<Entry>> {
        let key = &self.key;
        let parser = |input: ParseStream<'_>| {
            let lookahead = input.lookahead1();
            if input.is_empty() || lookahead.peek(Token![=]) {
                return Err(syn::Error::new_spanned(
                    key,
                    format!("`{key}` takes a list of keys in parentheses, e.g. `{example}`"),
                ));
            }
            if !lookahead.peek(token::Paren) {
                return Err(lookahead.error());
            }
            let content;
            parenthesized!(content in input);
            let inner: TokenStream = content.parse()?;
            if !input.is_empty() {
                return Err(input.error(format!(
                    "unexpected tokens after `{key}(...)`; separate attributes with `,`"
                )));
            }
            Ok(inner)
        };
        let inner = parser
            .parse2(self.rest.clone())
            .map_err(|e| cx.syn_error(e))
            .ok()?;
        Some(entries(cx, inner))
    }

    /// A string: `key = "..."`.
    pub(crate) fn string(&self, cx: &Ctxt, example: &str) -> Option<LitStr> {
        let value = self.value(cx, example)?;
        value.string(cx, &self.key, example)
    }

    /// A string that is not empty.
    pub(crate) fn non_empty_string(&self, cx: &Ctxt, example: &str) -> Option<LitStr> {
        let lit = self.string(cx, example)?;
        if lit.value().trim().is_empty() {
            cx.error_spanned_by(&lit, format!("`{}` cannot be empty", self.key));
            return None;
        }
        Some(lit)
    }

    /// A boolean: `key = true`.
    pub(crate) fn boolean(&self, cx: &Ctxt, example: &str) -> Option<LitBool> {
        match self.value(cx, example)? {
            Value::Lit(Lit::Bool(b)) => Some(b),
            other => other.mismatch(cx, &self.key, "`true` or `false`", example),
        }
    }

    /// A non-negative integer that fits `u64`: `key = 3`; returns it with
    /// the literal's span.
    pub(crate) fn integer(&self, cx: &Ctxt, example: &str) -> Option<(u64, Span)> {
        match self.value(cx, example)? {
            Value::Lit(Lit::Int(int)) if int.base10_digits().starts_with('-') => {
                cx.error_spanned_by(&int, format!("`{}` cannot be negative", self.key));
                None
            }
            Value::Lit(Lit::Int(int)) => match int.base10_parse::<u64>() {
                Ok(n) => Some((n, int.span())),
                Err(e) => {
                    cx.error_spanned_by(&int, format!("`{}`: {e}", self.key));
                    None
                }
            },
            neg @ Value::Neg(_, Lit::Int(_)) => {
                cx.error_spanned_by(&neg, format!("`{}` cannot be negative", self.key));
                None
            }
            other => other.mismatch(cx, &self.key, "an integer", example),
        }
    }

    /// A number, integer or not: `key = 2.0` or `key = 2`.
    pub(crate) fn number(&self, cx: &Ctxt, example: &str) -> Option<(f64, TokenStream)> {
        let value = self.value(cx, example)?;
        let (negative, lit) = match &value {
            Value::Lit(lit) => (false, lit),
            Value::Neg(_, lit) => (true, lit),
            other => return other.mismatch(cx, &self.key, "a number", example),
        };
        let parsed = match lit {
            Lit::Float(f) => f.base10_parse::<f64>(),
            Lit::Int(i) => i.base10_parse::<f64>(),
            _ => return value.mismatch(cx, &self.key, "a number", example),
        };
        match parsed {
            Ok(n) if n.is_finite() => {
                Some((if negative { -n } else { n }, value.to_token_stream()))
            }
            Ok(_) => {
                cx.error_spanned_by(&value, format!("`{}` must be a finite number", self.key));
                None
            }
            Err(e) => {
                cx.error_spanned_by(&value, format!("`{}`: {e}", self.key));
                None
            }
        }
    }

    /// A list of strings: `key = ["a", "b"]`.
    pub(crate) fn string_list(&self, cx: &Ctxt, example: &str) -> Option<Vec<LitStr>> {
        let items = match self.value(cx, example)? {
            Value::List(_, items) => items,
            other => return other.mismatch(cx, &self.key, "a list of strings", example),
        };
        let mut ok = true;
        let strings: Vec<LitStr> = items
            .into_iter()
            .filter_map(|item| {
                let s = item.string(cx, &self.key, example);
                ok &= s.is_some();
                s
            })
            .collect();
        ok.then_some(strings)
    }

    /// A list of string pairs: `key = [("a", "1"), ("b", "2")]`.
    pub(crate) fn string_pairs(&self, cx: &Ctxt, example: &str) -> Option<Vec<(LitStr, LitStr)>> {
        let items = match self.value(cx, example)? {
            Value::List(_, items) => items,
            other => {
                return other.mismatch(
                    cx,
                    &self.key,
                    "a list of (\"key\", \"value\") pairs",
                    example,
                )
            }
        };
        let mut ok = true;
        let mut pairs = Vec::new();
        for item in items {
            let pair = match item {
                Value::Tuple(_, ref parts) if parts.len() == 2 => {
                    let k = parts[0].string(cx, &self.key, example);
                    let v = parts[1].string(cx, &self.key, example);
                    k.zip(v)
                }
                other => other.mismatch(cx, &self.key, "a (\"key\", \"value\") pair", example),
            };
            match pair {
                Some(pair) => pairs.push(pair),
                None => ok = false,
            }
        }
        ok.then_some(pairs)
    }
}

impl Value {
    /// "a string", "an integer", ...: what the user wrote, for messages.
    fn describe(&self) -> &'static str {
        match self {
            Value::Lit(Lit::Str(_)) => "a string",
            Value::Lit(Lit::Int(_)) | Value::Neg(_, Lit::Int(_)) => "an integer",
            Value::Lit(Lit::Float(_)) | Value::Neg(_, Lit::Float(_)) => "a float",
            Value::Lit(Lit::Bool(_)) => "a boolean",
            Value::Lit(Lit::Char(_)) => "a character",
            Value::Lit(Lit::ByteStr(_) | Lit::CStr(_)) => "a byte string",
            Value::Lit(Lit::Byte(_)) => "a byte",
            Value::Lit(_) | Value::Neg(..) => "a literal",
            Value::List(..) => "a list",
            Value::Tuple(..) => "a tuple",
        }
    }

    /// This value as a string, or `None` after recording a mismatch.
    pub(crate) fn string(&self, cx: &Ctxt, key: &Ident, example: &str) -> Option<LitStr> {
        match self {
            Value::Lit(Lit::Str(s)) => Some(s.clone()),
            other => other.mismatch(cx, key, "a string", example),
        }
    }

    /// Records "`key` expects X, found Y" at this value; always `None`.
    pub(crate) fn mismatch<T>(
        &self,
        cx: &Ctxt,
        key: &Ident,
        expected: &str,
        example: &str,
    ) -> Option<T> {
        cx.error_spanned_by(
            self,
            format!(
                "`{key}` expects {expected}, found {}; e.g. `{example}`",
                self.describe()
            ),
        );
        None
    }
}

impl Parse for Value {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(Lit) {
            Ok(Value::Lit(input.parse()?))
        } else if lookahead.peek(Token![-]) {
            let minus = input.parse()?;
            let lit = input.parse()?;
            Ok(Value::Neg(minus, lit))
        } else if lookahead.peek(token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            Ok(Value::List(
                bracket,
                content.parse_terminated(Value::parse, Token![,])?,
            ))
        } else if lookahead.peek(token::Paren) {
            let content;
            let paren = parenthesized!(content in input);
            Ok(Value::Tuple(
                paren,
                content.parse_terminated(Value::parse, Token![,])?,
            ))
        } else if input.peek(Ident::peek_any) && !input.peek(LitBool) {
            let ident = input.call(Ident::parse_any)?;
            Err(syn::Error::new_spanned(
                &ident,
                format!(
                    "expected a literal, found `{ident}`: constants and expressions are not supported, and strings are written in quotes"
                ),
            ))
        } else {
            Err(lookahead.error())
        }
    }
}

impl ToTokens for Value {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Value::Lit(lit) => lit.to_tokens(tokens),
            Value::Neg(minus, lit) => {
                minus.to_tokens(tokens);
                lit.to_tokens(tokens);
            }
            Value::List(bracket, items) => bracket.surround(tokens, |t| items.to_tokens(t)),
            Value::Tuple(paren, items) => paren.surround(tokens, |t| items.to_tokens(t)),
        }
    }
}

/// A parsed key: its value and the key as written, for errors that point
/// at it.
#[derive(Debug, Clone)]
pub(crate) struct Keyed<T> {
    pub(crate) key: Ident,
    pub(crate) value: T,
}

/// Sets the field of one key from its entry; records errors in `Ctxt`.
pub(crate) type Setter<A> = fn(&mut A, &Ctxt, &Entry);

/// A set of attributes parsed from a table of keys.
pub(crate) trait KeyTable: Default + 'static {
    /// Where the keys are, for "unknown attribute `x` in ..." messages;
    /// empty at the top level.
    const CONTEXT: &'static str;
    /// Every key and its setter: the only list of the valid keys.
    const KEYS: &'static [(Symbol, Setter<Self>)];
    /// The keys given so far (valid or not), for duplicate and presence
    /// checks.
    fn seen_mut(&mut self) -> &mut Vec<Ident>;

    /// Parses `entries` into `Self`: each key once, known keys only.
    fn from_entries(cx: &Ctxt, entries: Vec<Entry>) -> Self {
        let mut attrs = Self::default();
        for entry in entries {
            let Some((_, set)) = Self::KEYS.iter().find(|(name, _)| entry.key == *name) else {
                entry.error(
                    cx,
                    format!(
                        "unknown attribute `{}`{}; expected one of: {}",
                        entry.key,
                        Self::CONTEXT,
                        symbol::one_of(Self::KEYS.iter().map(|(name, _)| name)),
                    ),
                );
                continue;
            };
            let seen = attrs.seen_mut();
            if seen.contains(&entry.key) {
                entry.error(cx, format!("`{}` is specified more than once", entry.key));
                continue;
            }
            seen.push(entry.key.clone());
            set(&mut attrs, cx, &entry);
        }
        attrs
    }
}

/// `crate = "path"`: the path generated code uses instead of `::kafka_listener`.
pub(crate) fn crate_path(cx: &Ctxt, entry: &Entry) -> Option<Path> {
    let lit = entry.non_empty_string(cx, r#"crate = "my_kafka_listener""#)?;
    match lit.parse::<Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                format!(
                    "`crate` must be a path such as \"::kafka_listener\", not `{}`",
                    lit.value()
                ),
            );
            None
        }
    }
}
