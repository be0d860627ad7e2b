//! The `#[kafka_listener]` keys whose value names one of a fixed set:
//! `ack_mode`, `ordering`, `isolation`, `seek`, each with the runtime
//! variant it expands to.

use proc_macro2::Span;
use syn::Ident;

use crate::ctxt::Ctxt;
use crate::meta::Entry;
use crate::symbol::{self, Symbol, *};

/// The runtime's `AckMode`, by the name of its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMode {
    Record,
    Batch,
    Manual,
    ManualImmediate,
}

impl AckMode {
    /// Every ack mode: its spelling in the attribute and its variant in the
    /// runtime's `AckMode`.
    const ALL: [(Symbol, AckMode, &'static str); 4] = [
        (RECORD, AckMode::Record, "Record"),
        (BATCH_ACK, AckMode::Batch, "Batch"),
        (MANUAL, AckMode::Manual, "Manual"),
        (
            MANUAL_IMMEDIATE,
            AckMode::ManualImmediate,
            "ManualImmediate",
        ),
    ];

    fn entry(self) -> &'static (Symbol, AckMode, &'static str) {
        Self::ALL
            .iter()
            .find(|(_, mode, _)| *mode == self)
            .expect("every ack mode is in ALL")
    }

    /// Whether the handler acknowledges (and so may take `Acknowledgment`).
    pub(crate) fn is_manual(self) -> bool {
        matches!(self, AckMode::Manual | AckMode::ManualImmediate)
    }

    /// The spelling in `ack_mode = "..."`.
    pub(crate) fn name(self) -> &'static str {
        self.entry().0.as_str()
    }

    /// The variant of `AckMode` in the runtime crate.
    pub(crate) fn variant(self) -> Ident {
        Ident::new(self.entry().2, Span::call_site())
    }

    /// Parses a spelling accepted by the runtime's `AckMode::from_str`
    /// (case-insensitive, `-` for `_`).
    fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .iter()
            .find(|(symbol, _, _)| symbol.as_str() == name)
            .map(|(_, mode, _)| *mode)
    }
}

/// The runtime's `Ordering`, by the name of its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderingAttr {
    Partition,
    Key,
    None,
}

impl OrderingAttr {
    /// Every spelling with its value and the runtime's variant.
    pub(crate) const ALL: [(Symbol, OrderingAttr, &'static str); 3] = [
        (ORDER_PARTITION, OrderingAttr::Partition, "Partition"),
        (ORDER_KEY, OrderingAttr::Key, "Key"),
        (ORDER_NONE, OrderingAttr::None, "None"),
    ];

    /// The variant of `Ordering` in the runtime crate.
    pub(crate) fn variant(self) -> proc_macro2::Ident {
        variant_in(&Self::ALL, &self)
    }

    /// The spelling in `ordering = "..."`.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, o, _)| *o == self)
            .map(|(s, _, _)| s.as_str())
            .expect("listed")
    }
}

/// The value of a `key = "name"` whose name is one of `all`'s spellings
/// (case-insensitive), or `None` after reporting the valid ones: `what`
/// names the value in the message, `hint` follows the list.
fn choice<T: Copy>(
    cx: &Ctxt,
    entry: &Entry,
    example: &str,
    what: &str,
    all: &[(Symbol, T, &'static str)],
    hint: &str,
) -> Option<T> {
    let lit = entry.string(cx, example)?;
    let value = lit.value().to_ascii_lowercase();
    let found = all
        .iter()
        .find(|(symbol, _, _)| symbol.as_str() == value)
        .map(|(_, v, _)| *v);
    if found.is_none() {
        cx.error_spanned_by(
            &lit,
            format!(
                "unknown {what} `{}`; expected one of: {}{hint}",
                lit.value(),
                symbol::one_of(all.iter().map(|(symbol, _, _)| symbol))
            ),
        );
    }
    found
}

/// The runtime crate's variant for `value`, as `all` names it.
fn variant_in<T: PartialEq>(all: &[(Symbol, T, &'static str)], value: &T) -> proc_macro2::Ident {
    let name = all
        .iter()
        .find(|(_, v, _)| v == value)
        .map(|(_, _, n)| *n)
        .expect("every value is listed");
    proc_macro2::Ident::new(name, proc_macro2::Span::call_site())
}

/// `isolation = "read_committed" | "read_uncommitted"`: the consumer's
/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsolationAttr {
    ReadCommitted,
    ReadUncommitted,
}

impl IsolationAttr {
    /// Every spelling with its value and the runtime's variant.
    pub(crate) const ALL: [(Symbol, IsolationAttr, &'static str); 2] = [
        (
            READ_COMMITTED,
            IsolationAttr::ReadCommitted,
            "ReadCommitted",
        ),
        (
            READ_UNCOMMITTED,
            IsolationAttr::ReadUncommitted,
            "ReadUncommitted",
        ),
    ];

    /// The variant of `IsolationLevel` in the runtime crate.
    pub(crate) fn variant(self) -> proc_macro2::Ident {
        variant_in(&Self::ALL, &self)
    }
}

pub(super) fn isolation(cx: &Ctxt, entry: &Entry) -> Option<IsolationAttr> {
    let example = r#"isolation = "read_committed""#;
    choice(
        cx,
        entry,
        example,
        "isolation level",
        &IsolationAttr::ALL,
        "",
    )
}

/// `seek = "beginning" | "end"`: where each assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekAttr {
    Beginning,
    End,
}

impl SeekAttr {
    /// Every spelling with its value and the runtime's variant.
    pub(crate) const ALL: [(Symbol, SeekAttr, &'static str); 2] = [
        (SEEK_BEGINNING, SeekAttr::Beginning, "Beginning"),
        (SEEK_END, SeekAttr::End, "End"),
    ];

    /// The variant of `SeekPosition` in the runtime crate.
    pub(crate) fn variant(self) -> proc_macro2::Ident {
        variant_in(&Self::ALL, &self)
    }
}

pub(super) fn seek(cx: &Ctxt, entry: &Entry) -> Option<SeekAttr> {
    let hint = " (an offset or a timestamp: `ListenerContainer::seek` at run time)";
    choice(
        cx,
        entry,
        r#"seek = "beginning""#,
        "seek position",
        &SeekAttr::ALL,
        hint,
    )
}

/// `ordering = "partition" | "key" | "none"`.
pub(super) fn ordering(cx: &Ctxt, entry: &Entry) -> Option<OrderingAttr> {
    choice(
        cx,
        entry,
        r#"ordering = "key""#,
        "ordering",
        &OrderingAttr::ALL,
        "",
    )
}

pub(super) fn ack_mode(cx: &Ctxt, entry: &Entry) -> Option<AckMode> {
    let lit = entry.string(cx, r#"ack_mode = "manual""#)?;
    let mode = AckMode::from_name(&lit.value());
    if mode.is_none() {
        cx.error_spanned_by(
            &lit,
            format!(
                "unknown ack mode `{}`; expected one of: {}",
                lit.value(),
                symbol::one_of(AckMode::ALL.iter().map(|(symbol, _, _)| symbol))
            ),
        );
    }
    mode
}
