//! Expand phase, the parts every macro shares: the paths generated code reaches the runtime
//! through, a validated [`Declaration`] as the runtime's `Spec`, and the link-time entry that
//! registers a declared family with the default registry. The handler attributes
//! ([`crate::instrument`]), `family!` ([`crate::family`](mod@crate::family)) and the derives
//! ([`crate::derive`]) build their items around these.
//!
//! Invariants:
//! - Generated code names runtime items only by fully qualified paths through `__private`
//!   ([`private_path`]), never through the user's imports; only `family!`'s public static
//!   names the public `LazyFamily` and `Family` ([`crate_root`]).
//! - Nothing here checks anything: it is handed validated input.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{LitFloat, Path};

use crate::ast::Kind;
use crate::valid::{BucketBounds, Declaration};

/// `::promtrack`, or the path of `crate = path`.
pub fn crate_root(krate: Option<&Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path),
        None => quote!(::promtrack),
    }
}

/// `::promtrack::__private`, or `<crate = path>::__private`: the only door generated code
/// uses into the runtime.
pub fn private_path(krate: Option<&Path>) -> TokenStream {
    let root = crate_root(krate);
    quote!(#root::__private)
}

/// `tokens` with every span set to `span`: for generated code whose errors should point at one
/// of the user's tokens.
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                t = proc_macro2::TokenTree::Group(group);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}

/// The runtime's metric type, as an identifier under `__private`.
impl ToTokens for Kind {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        Ident::new(self.type_name(), Span::call_site()).to_tokens(tokens);
    }
}

/// `Spec { .. }` for the runtime: `label_names` is the expression of its `&[&str]`, and
/// `default_mode` the `GaugeMode` variant when the declaration names none.
pub fn spec(
    declaration: &Declaration,
    label_names: TokenStream,
    default_mode: &str,
) -> TokenStream {
    let p = private_path(declaration.krate.as_ref());
    let name = declaration.name.value();
    let help = declaration.help.value();
    let buckets = match &declaration.buckets {
        Some(BucketBounds::Literals(bounds)) => {
            let bounds = bounds.iter().map(|b| {
                // `{:?}` always writes a float literal (`1.0`, not `1`).
                LitFloat::new(&format!("{b:?}"), Span::call_site())
            });
            quote!(#p::Option::Some(&[#(#bounds),*]))
        }
        Some(BucketBounds::Const(expr)) => {
            // Spanned at the constant, so that a failed check points there.
            let span = expr.span();
            let at = respan(p.clone(), span);
            let check = quote_spanned!(span=> #at::check_buckets(#expr));
            quote!(#p::Option::Some(#check))
        }
        None => quote!(#p::Option::None),
    };
    let native = match &declaration.native {
        Some(n) => {
            let opt = |v: Option<TokenStream>| match v {
                Some(v) => quote!(#p::Option::Some(#v)),
                None => quote!(#p::Option::None),
            };
            let float = |v: Option<f64>| {
                opt(v.map(|v| {
                    LitFloat::new(&format!("{v:?}"), Span::call_site()).into_token_stream()
                }))
            };
            let bucket_factor = float(n.bucket_factor);
            let zero_threshold = float(n.zero_threshold);
            let max_zero_threshold = float(n.max_zero_threshold);
            let max_buckets = opt(n.max_buckets.map(|v| quote!(#v)));
            let min_reset = opt(n.min_reset_nanos.map(|v| quote!(#v)));
            // Classic buckets are kept when the declaration lists them too.
            let classic = declaration.buckets.is_some();
            quote!(#p::Option::Some(#p::NativeSpec {
                bucket_factor: #bucket_factor,
                max_buckets: #max_buckets,
                zero_threshold: #zero_threshold,
                max_zero_threshold: #max_zero_threshold,
                min_reset_nanos: #min_reset,
                classic: #classic,
            }))
        }
        None => quote!(#p::Option::None),
    };
    let mode = Ident::new(
        declaration.gauge_mode.unwrap_or(default_mode),
        Span::call_site(),
    );
    let location = quote_spanned!(declaration.name.span()=> #p::Location::caller());
    quote! {
        #p::Spec {
            name: #name,
            help: #help,
            label_names: #label_names,
            buckets: #buckets,
            native: #native,
            mode: #p::GaugeMode::#mode,
            location: #location,
        }
    }
}

/// The item that lists `declared` (a static implementing `Declared`) in the runtime's
/// link-time `DECLARATIONS`, so the default registry registers it when it is created.
pub fn link_time_entry(p: &TokenStream, declared: &Ident) -> TokenStream {
    let link = Ident::new("PROMTRACK_LINK", Span::mixed_site());
    quote! {
        #[#p::linkme::distributed_slice(#p::DECLARATIONS)]
        #[linkme(crate = #p::linkme)]
        static #link: &'static dyn #p::Declared = &#declared;
    }
}
