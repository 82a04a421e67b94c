//! Arbitrary token streams given to the macros must come back as tokens — an expansion or a
//! `compile_error!` — never as a panic, which rustc would report as an internal error of the
//! macro instead of pointing at the user's mistake.
//!
//! Each input goes to every attribute twice, as its arguments (with a valid function as the
//! item) and as its item (with valid arguments), to both derives, and to `family!`: the same
//! calls the macros' `lib.rs` makes, on `proc_macro2` tokens.

use std::str::FromStr;

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Kind;
use crate::attr::{self, ExclusionMark};

/// The metric attributes, with arguments each accepts.
fn metric_attributes() -> [(Kind, TokenStream); 4] {
    [
        (Kind::Counter, quote!("fuzz_calls_total", "Calls.")),
        (
            Kind::Histogram,
            quote!("fuzz_call_seconds", "Call time.", buckets = [0.1, 1.0]),
        ),
        (Kind::Summary, quote!("fuzz_call_seconds", "Call time.")),
        (
            Kind::Gauge,
            quote!("fuzz_calls_in_progress", "Calls running.", mode = "livesum"),
        ),
    ]
}

const MARKS: [ExclusionMark; 2] = [ExclusionMark::DoNotTrack, ExclusionMark::ExcludeAll];

/// A function every attribute accepts.
fn valid_item() -> TokenStream {
    quote!(
        async fn handler(id: u64) -> u64 {
            id
        }
    )
}

/// Checks `input` as UTF-8 text; text that is not UTF-8 or does not lex is not a finding (the
/// compiler would reject it before any macro ran).
pub fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(tokens) = TokenStream::from_str(text) else {
        return;
    };
    check_tokens(&tokens);
}

/// Runs every macro on `input` (see the module docs). Panics if a macro does.
pub fn check_tokens(input: &TokenStream) {
    for (kind, args) in metric_attributes() {
        let name = kind.attr_name();
        expect_tokens(name, attr::metric(kind, input.clone(), valid_item()));
        expect_tokens(name, attr::metric(kind, args, input.clone()));
    }
    for mark in MARKS {
        expect_tokens("mark", attr::mark(mark, input.clone(), valid_item()));
        expect_tokens("mark", attr::mark(mark, TokenStream::new(), input.clone()));
    }
    // As lib.rs does for the derives.
    let derive = |expand: fn(syn::DeriveInput) -> TokenStream| match syn::parse2::<syn::DeriveInput>(
        input.clone(),
    ) {
        Ok(item) => expand(item),
        Err(e) => e.to_compile_error(),
    };
    expect_tokens("LabelSet", derive(crate::derive::label_set));
    expect_tokens("LabelValue", derive(crate::derive::label_value));
    expect_tokens("family!", crate::family::family(input.clone()));
}

/// What a macro returns must be tokens the compiler can read again: printed and lexed back,
/// as rustc does with a proc macro's output.
fn expect_tokens(macro_name: &str, out: TokenStream) {
    let printed = out.to_string();
    if let Err(e) = TokenStream::from_str(&printed) {
        panic!("`{macro_name}` returned tokens that do not lex again ({e}):\n{printed}");
    }
}

/// The valid arguments and item expand without an error: the baseline the fuzzed halves are
/// paired with is itself accepted (else every input would be tested against an error path).
pub fn check_baseline() {
    for (kind, args) in metric_attributes() {
        let out = attr::metric(kind, args, valid_item()).to_string();
        assert!(
            !out.contains("compile_error"),
            "{}: {out}",
            kind.attr_name()
        );
    }
    for mark in MARKS {
        let out = attr::mark(mark, TokenStream::new(), valid_item()).to_string();
        assert!(!out.contains("compile_error"), "{out}");
    }
}
