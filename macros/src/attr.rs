//! The handler attributes: `#[counter]`, `#[histogram]`, `#[summary]`, `#[gauge]`, and the
//! exclusion marks `#[do_not_track]` and `#[exclude_all_metrics]`.
//!
//! Parse → validate → expand. On any error the function is emitted unchanged next to the
//! errors, so one mistake in an attribute does not also break every caller of the function.
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

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::parse::Parser;
use syn::spanned::Spanned;

use crate::args::{self, Args, Form, Kind, Source};
use crate::errors::Errors;
use crate::item::{self, MaybeFn, Shape};

/// What an exclusion mark excludes from.
#[derive(Clone, Copy)]
pub enum Mark {
    DoNotTrack,
    ExcludeAll,
}

impl Mark {
    fn name(self) -> &'static str {
        match self {
            Mark::DoNotTrack => "do_not_track",
            Mark::ExcludeAll => "exclude_all_metrics",
        }
    }

    fn statement(self, p: &TokenStream) -> TokenStream {
        let variant = match self {
            Mark::DoNotTrack => quote!(Defaults),
            Mark::ExcludeAll => quote!(All),
        };
        quote!(#p::exclude(#p::Exclusion::#variant);)
    }

    fn of(attr: &syn::Attribute) -> Option<Mark> {
        let last = attr.path().segments.last()?.ident.to_string();
        match last.as_str() {
            "do_not_track" => Some(Mark::DoNotTrack),
            "exclude_all_metrics" => Some(Mark::ExcludeAll),
            _ => None,
        }
    }
}

/// Removes exclusion marks from the function's remaining attributes and returns the
/// statements that apply them.
fn hoist_marks(function: &mut MaybeFn, p: &TokenStream) -> TokenStream {
    let mut statements = TokenStream::new();
    function.attrs.retain(|attr| match Mark::of(attr) {
        Some(mark) if matches!(attr.meta, syn::Meta::Path(_)) => {
            statements.extend(mark.statement(p));
            false
        }
        _ => true,
    });
    statements
}

/// `#[do_not_track]` and `#[exclude_all_metrics]`.
pub fn mark(mark: Mark, attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = mark.name();
    let mut errors = Errors::default();
    let mut krate = None;
    if !attr.is_empty() {
        let parser = |input: syn::parse::ParseStream| -> syn::Result<syn::Path> {
            let key: Ident = syn::ext::IdentExt::parse_any(input)?;
            if key != "crate" {
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "`#[{name}]` takes no arguments (only `crate = path`); write `#[{name}]`"
                    ),
                ));
            }
            input.parse::<syn::Token![=]>()?;
            input.parse()
        };
        match parser.parse2(attr) {
            Ok(path) => krate = Some(path),
            Err(e) => errors.add(e),
        }
    }
    let mut function = match item::parse(item.clone(), name) {
        Ok(f) => f,
        Err(e) => {
            errors.add(e);
            let errors = errors.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    if let Some(constness) = &function.sig.constness {
        errors.push(
            constness.span(),
            format!("`#[{name}]` cannot go on a `const fn`: it marks the request at run time; remove `const` or the attribute"),
        );
    }
    if !errors.is_empty() {
        let errors = errors.to_compile_errors();
        return quote!(#errors #item);
    }
    let p = args::private_path(krate.as_ref());
    let mut marks = mark.statement(&p);
    marks.extend(hoist_marks(&mut function, &p));
    let out = match function.shape() {
        Shape::Boxed(block) => {
            let inner = item::boxed_inner(&block);
            function.with_body(item::rebuild_boxed(&block, quote!(#marks #inner)))
        }
        Shape::Sync | Shape::Async => {
            let body = &function.body;
            function.with_body(quote!(#marks #body))
        }
    };
    crate::debug::print(name, &function.sig.ident, &out);
    out
}

/// `#[counter]`, `#[histogram]`, `#[summary]`, `#[gauge]`.
pub fn metric(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr_name = kind.attr_name();
    let form = Form::Attribute(kind);
    let function = item::parse(item.clone(), attr_name);
    let parsed = (|input: syn::parse::ParseStream| args::parse(input, form)).parse2(attr);
    let (mut function, mut args) = match (function, parsed) {
        (Ok(f), Ok(a)) => (f, a),
        (f, a) => {
            let mut errors = Errors::default();
            if let Err(e) = a {
                errors.add(e);
            }
            if let Err(e) = f {
                errors.add(e);
            }
            let errors = errors.to_compile_errors();
            return quote!(#errors #item);
        }
    };
    let shape = function.shape();
    let mut errors = args.validate(form, Some(function.returns_unit(&shape)));
    if let Some(constness) = &function.sig.constness {
        errors.push(
            constness.span(),
            format!("`#[{attr_name}]` cannot go on a `const fn`: it measures calls at run time; remove `const` or the attribute"),
        );
    }
    if !errors.is_empty() {
        let errors = errors.to_compile_errors();
        return quote!(#errors #item);
    }
    let p = args.private();
    let marks = hoist_marks(&mut function, &p);
    let names = crate::ident::Locals::new();
    let instrumented = match &shape {
        Shape::Boxed(block) => {
            let inner = item::boxed_inner(block);
            let body = instrument(
                kind,
                &args,
                &names,
                true,
                quote!(#inner),
                TokenStream::new(),
            );
            function.with_body(item::rebuild_boxed(block, quote!(#marks #body)))
        }
        Shape::Sync | Shape::Async => {
            let is_async = matches!(shape, Shape::Async);
            let body = &function.body;
            let fake = function.fake_return();
            let body = instrument(kind, &args, &names, is_async, quote!(#body), fake);
            function.with_body(quote!(#marks #body))
        }
    };
    crate::debug::print(attr_name, &function.sig.ident, &instrumented);
    instrumented
}

/// The statements of an instrumented body. `body` is the original body as a brace group;
/// `fake` the fake return for blocks that wrap it.
fn instrument(
    kind: Kind,
    args: &Args,
    names: &crate::ident::Locals,
    is_async: bool,
    body: TokenStream,
    fake: TokenStream,
) -> TokenStream {
    let p = args.private();
    let crate::ident::Locals {
        site,
        call,
        ret,
        pre,
        pre_values,
        w,
    } = names;
    let fixed = args.fixed_values();
    let n = args.labels.len();
    let label_names = args.labels.iter().map(|l| &l.name);
    let spec = args.spec(kind, quote!(&[#(#label_names),*]), "LiveSum");
    let fixed_tokens = match &fixed {
        Some(values) => quote!(#p::Option::Some([#(#values),*])),
        None => quote!(#p::Option::None),
    };
    let static_site = format_ident!("PROMTRACK_SITE", span = Span::mixed_site());
    let static_link = format_ident!("PROMTRACK_LINK", span = Span::mixed_site());
    let site_decl = quote! {
        let #site = {
            static #static_site: #p::Site<#p::#kind, #n> = #p::Site::new(#spec, #fixed_tokens);
            #[#p::linkme::distributed_slice(#p::DECLARATIONS)]
            #[linkme(crate = #p::linkme)]
            static #static_link: &'static dyn #p::Declared = &#static_site;
            &#static_site
        };
    };
    let has_ret = args
        .labels
        .iter()
        .any(|l| matches!(l.source, Source::Ret(_)));
    let has_arg = args
        .labels
        .iter()
        .any(|l| matches!(l.source, Source::Arg(_)));

    // The label writes, in declaration order.
    let writes = |prerendered: bool| -> Vec<TokenStream> {
        args.labels
            .iter()
            .map(|label| match &label.source {
                Source::Static(v) => quote!(#w.value(#v);),
                Source::Arg(_) if prerendered => {
                    quote!(#w.value(#pre_values.next().unwrap_or_default());)
                }
                Source::Arg(expr) => quote_spanned!(expr.span()=> #w.value(&(#expr));),
                Source::Ret(closure) => {
                    // Bound first, so that "not a label value" points at the closure alone.
                    let span = closure.span();
                    let at = args::respan(p.clone(), span);
                    let value =
                        Ident::new("__promtrack_value", Span::mixed_site().located_at(span));
                    let w = Ident::new("__promtrack_w", Span::mixed_site().located_at(span));
                    quote_spanned! {span=>
                        let #value = #at::label_of(&#ret, #closure);
                        #w.value(&#value);
                    }
                }
            })
            .collect()
    };
    let series_before = if fixed.is_some() {
        quote!(#site.series())
    } else {
        let writes = writes(false);
        quote!(#site.family().with_writer(|#w| { #(#writes)* }))
    };
    let wrapped = if is_async {
        quote!(async move { #fake #body }.await)
    } else {
        quote!((move || { #fake #body })())
    };

    if kind == Kind::Gauge {
        return quote! {
            #site_decl
            let #call = #p::track(|| #series_before);
            #body
        };
    }
    if has_ret {
        let prerender = if has_arg {
            let arg_writes = args.labels.iter().filter_map(|label| match &label.source {
                Source::Arg(expr) => Some(quote_spanned!(expr.span()=> #w.value(&(#expr));)),
                _ => None,
            });
            quote!(let #pre = #p::Prerendered::new(|#w| { #(#arg_writes)* });)
        } else {
            TokenStream::new()
        };
        let pre_iter = if has_arg {
            quote!(let mut #pre_values = #pre.values();)
        } else {
            TokenStream::new()
        };
        let writes = writes(true);
        return quote! {
            #site_decl
            #prerender
            let #call = #p::Pending::<#p::#kind>::start();
            #[allow(clippy::redundant_closure_call)]
            let #ret = #wrapped;
            #call.finish(|| #site.family().with_writer(|#w| {
                #pre_iter
                #(#writes)*
            }));
            #ret
        };
    }
    if is_async {
        quote! {
            #site_decl
            let #call = #p::Call::<#p::#kind>::start(#series_before);
            let #ret = #wrapped;
            #call.finish();
            #ret
        }
    } else {
        quote! {
            #site_decl
            let #call = #p::SyncCall::<#p::#kind>::start(#series_before);
            #body
        }
    }
}
