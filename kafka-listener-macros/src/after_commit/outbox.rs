//! `#[derive(OutboxEvent)]` with `#[outbox(topic = "...", key = "field")]`
//! (and optionally `format = "avro"`, `name = "..."`): implements the
//! runtime's `OutboxEvent` (topic, stable name, key from the field) and
//! registers the type, so that
//! `EventTx::publish` writes it to the outbox and the relay knows how to
//! encode it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, Meta};

use super::attr::{OutboxAttrs, OutboxFormat};
use super::expand::private;
use crate::ctxt::Ctxt;
use crate::meta::{Entry, KeyTable};
use crate::symbol::{KEY, OUTBOX, TOPIC};

/// Expands the derive; on error only the errors (a derive does not emit the
/// item).
pub(crate) fn derive_outbox_event(item: TokenStream) -> TokenStream {
    match try_derive(item) {
        Ok(expanded) => {
            crate::util::debug_print("#[derive(OutboxEvent)]", &expanded);
            expanded
        }
        Err(errors) => errors.into_compile_error(),
    }
}

fn try_derive(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let cx = Ctxt::new();
    let attrs = OutboxAttrs::from_entries(&cx, outbox_entries(&cx, &input.attrs));
    if !input
        .attrs
        .iter()
        .any(|a| a.path().is_ident(OUTBOX.as_str()))
    {
        cx.error_spanned_by(
            &input.ident,
            "`#[derive(OutboxEvent)]` needs `#[outbox(topic = \"...\", key = \"field\")]` on the struct",
        );
    } else {
        for (key, example) in [
            (TOPIC, r#"topic = "coupon.issued""#),
            (KEY, r#"key = "coupon_id""#),
        ] {
            if !attrs.has(key) {
                cx.error_spanned_by(
                    &input.ident,
                    format!("`#[outbox(...)]` needs `{key}`, e.g. `{example}`"),
                );
            }
        }
    }
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "an outbox event cannot be generic: it is registered by its concrete type",
        );
    }
    let key_field = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => attrs.key.as_ref().and_then(|key| {
                let name = key.value.value();
                let field = fields
                    .named
                    .iter()
                    .find(|f| f.ident.as_ref().is_some_and(|i| i == &name));
                if field.is_none() {
                    let names: Vec<String> = fields
                        .named
                        .iter()
                        .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                        .collect();
                    cx.error_spanned_by(
                        &key.value,
                        format!(
                            "no field `{name}` in `{}`; the key names a field, one of: {}",
                            input.ident,
                            names.join(", ")
                        ),
                    );
                }
                field
            }),
            _ => {
                cx.error_spanned_by(
                    &input.ident,
                    "`OutboxEvent` can only be derived for a struct with named fields: the key names a field",
                );
                None
            }
        },
        Data::Enum(data) => {
            cx.error_spanned_by(
                data.enum_token,
                "`OutboxEvent` can only be derived for a struct with named fields: the key names a field",
            );
            None
        }
        Data::Union(data) => {
            cx.error_spanned_by(
                data.union_token,
                "`OutboxEvent` can only be derived for a struct with named fields: the key names a field",
            );
            None
        }
    };
    cx.check()?;
    let (Some(topic), Some(field)) = (attrs.topic, key_field) else {
        unreachable!("checks passed")
    };
    let krate = attrs
        .krate
        .map_or_else(|| syn::parse_quote!(::kafka_listener), |k| k.value);
    let ident = &input.ident;
    let trait_path = private(&krate, "OutboxEvent", Span::call_site());
    let string = private(&krate, "String", Span::call_site());
    // Spanned at the field's type: "`T` doesn't implement `Display`" points there.
    let to_string = private(&krate, "key_to_string", field.ty.span());
    let registration = private(&krate, "OutboxRegistration", Span::call_site());
    let inventory = crate::util::private(&krate, &["inventory"], Span::call_site());
    let schema = crate::util::private(&krate, &["schema"], Span::call_site());
    let field_ident = field.ident.as_ref().expect("named field");
    let topic: LitStr = topic.value;
    // The stable name: `name = "..."`, else the type's name without its
    // module path (the documented default).
    let name = attrs.name.map_or_else(
        || LitStr::new(&ident.unraw().to_string(), ident.span()),
        |k| k.value,
    );
    // `avro` needs `DeserializeOwned + AvroSchema` (and the runtime's `avro`
    // feature): an error there points at the `format` value.
    let register = match attrs.format.as_ref().map(|f| (f.value, &f.key)) {
        Some((OutboxFormat::Avro, key)) => quote_spanned!(key.span()=> avro),
        _ => quote!(of),
    };
    let key_expr = quote_spanned!(field.ty.span()=> #to_string(&self.#field_ident));
    Ok(quote! {
        const _: () = {
            // `Serialize` is a supertrait of `OutboxEvent`: a type that is
            // not is reported at its name by this impl.
            impl #trait_path for #ident {
                const TOPIC: &'static str = #topic;
                const NAME: &'static str = #name;

                fn key(&self) -> #string {
                    #key_expr
                }
            }

            // The event's message schema for the AsyncAPI document: its JSON
            // Schema when it derives `JsonSchema` (feature `asyncapi`).
            fn __outbox_schema() -> ::core::option::Option<#schema::MessageSchema> {
                #[allow(unused_imports)]
                use #schema::{EventHasSchema as _, EventNoSchema as _};
                (&&#schema::Probe::<#ident>::new()).event_schema()
            }

            #inventory::submit! {
                #registration::#register::<#ident>().with_schema(__outbox_schema)
            }
        };
    })
}

/// The entries of every `#[outbox(...)]` attribute, in order.
fn outbox_entries(cx: &Ctxt, attrs: &[Attribute]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident(OUTBOX.as_str())) {
        match &attr.meta {
            Meta::List(list) => entries.extend(crate::meta::entries(cx, list.tokens.clone())),
            other => cx.error_spanned_by(
                other,
                "expected `#[outbox(topic = \"...\", key = \"field\")]`",
            ),
        }
    }
    entries
}
