//! The handler attributes: `#[counter]`, `#[histogram]`, `#[summary]`, `#[gauge]`, and the
//! exclusion marks `#[do_not_track]` and `#[exclude_all_metrics]`. Each runs the three phases
//! in turn: parse the arguments ([`crate::ast`]) and the function ([`crate::item`]), validate
//! ([`crate::valid`], plus what only the function can tell), expand ([`crate::instrument`]).
//!
//! Invariant: on any error the function is emitted unchanged next to every error found, so
//! one mistake in an attribute does not also break every caller of the function.
//!
//! The expansion keeps the signature as written and only rewrites the body:
//!
//! ```text
//! {
//!     ::promtrack::__private::exclude(..);          // marks hoisted from attributes below
//!     let site = { static SITE: Site<Counter, N> = ..; /* + link-time entry */ &SITE };
//!     let call = SyncCall::start(site.series());     // or `Call`, `Pending`, `track`
//!     <body>                                         // wrapped for async and return labels
//! }
//! ```
//!
//! The marks are hoisted because attributes expand outermost first: a `#[gauge]` above an
//! `#[exclude_all_metrics]` would otherwise check the request's exclusion before the mark below
//! it ran. Hoisting makes the order of attributes irrelevant.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{ParseStream, Parser};

use crate::ast::{self, Form, Kind, MetricArgs};
use crate::errors::Errors;
use crate::expand::private_path;
use crate::instrument::instrumented_body;
use crate::item::{self, Function};
use crate::valid;

/// What an exclusion mark excludes from.
#[derive(Clone, Copy)]
pub enum ExclusionMark {
    DoNotTrack,
    ExcludeAll,
}

impl ExclusionMark {
    fn name(self) -> &'static str {
        match self {
            ExclusionMark::DoNotTrack => "do_not_track",
            ExclusionMark::ExcludeAll => "exclude_all_metrics",
        }
    }

    /// The statement that marks the current request.
    fn statement(self, p: &TokenStream) -> TokenStream {
        let variant = match self {
            ExclusionMark::DoNotTrack => quote!(Defaults),
            ExclusionMark::ExcludeAll => quote!(All),
        };
        quote!(#p::exclude(#p::Exclusion::#variant);)
    }

    /// The mark `attr` is, by its last path segment.
    fn of(attr: &syn::Attribute) -> Option<ExclusionMark> {
        let last = &attr.path().segments.last()?.ident;
        [ExclusionMark::DoNotTrack, ExclusionMark::ExcludeAll]
            .into_iter()
            .find(|mark| last == mark.name())
    }
}

/// Removes exclusion marks from the function's remaining attributes and returns the
/// statements that apply them.
fn hoist_marks(function: &mut Function, p: &TokenStream) -> TokenStream {
    let mut statements = TokenStream::new();
    function.attrs.retain(|attr| match ExclusionMark::of(attr) {
        Some(mark) if matches!(attr.meta, syn::Meta::Path(_)) => {
            statements.extend(mark.statement(p));
            false
        }
        _ => true,
    });
    statements
}

/// `#[do_not_track]` and `#[exclude_all_metrics]`.
pub fn mark(mark: ExclusionMark, attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = mark.name();
    let mut errors = Errors::default();
    let parsed = (|input: ParseStream| ast::parse_mark_args(input, name)).parse2(attr);
    let krate = parsed.unwrap_or_else(|e| {
        errors.add(e);
        None
    });
    let mut function = match item::parse(item.clone(), name) {
        Ok(f) => f,
        Err(e) => {
            errors.add(e);
            return unchanged(&errors, item);
        }
    };
    if let Some(e) = function.const_fn_error(name, "marks the request") {
        errors.add(e);
    }
    if !errors.is_empty() {
        return unchanged(&errors, item);
    }
    let p = private_path(krate.as_ref().map(|k| &k.path));
    let mut marks = mark.statement(&p);
    marks.extend(hoist_marks(&mut function, &p));
    let shape = function.shape();
    let block = function.body_to_wrap(&shape).block;
    let out = function.with_body_replaced(&shape, quote!(#marks #block));
    crate::debug::print(name, &function.sig.ident, &out);
    out
}

/// `#[counter]`, `#[histogram]`, `#[summary]`, `#[gauge]`.
pub fn metric(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr_name = kind.attr_name();
    let form = Form::Attribute(kind);
    let function = item::parse(item.clone(), attr_name);
    let parsed = (|input: ParseStream| MetricArgs::parse(input, form)).parse2(attr);
    let (mut function, args) = match (function, parsed) {
        (Ok(f), Ok(a)) => (f, a),
        (f, a) => {
            let mut errors = Errors::default();
            if let Err(e) = a {
                errors.add(e);
            }
            if let Err(e) = f {
                errors.add(e);
            }
            return unchanged(&errors, item);
        }
    };
    let shape = function.shape();
    let (declaration, mut errors) = valid::check(args, form, Some(function.returns_unit(&shape)));
    if let Some(e) = function.const_fn_error(attr_name, "measures calls") {
        errors.add(e);
    }
    if !errors.is_empty() {
        return unchanged(&errors, item);
    }
    let p = private_path(declaration.krate.as_ref());
    let marks = hoist_marks(&mut function, &p);
    let body = instrumented_body(&declaration, &function.body_to_wrap(&shape));
    let instrumented = function.with_body_replaced(&shape, quote!(#marks #body));
    crate::debug::print(attr_name, &function.sig.ident, &instrumented);
    instrumented
}

/// The errors, and the item as written.
fn unchanged(errors: &Errors, item: TokenStream) -> TokenStream {
    let errors = errors.to_compile_errors();
    quote!(#errors #item)
}
