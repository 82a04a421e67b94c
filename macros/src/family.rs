//! `family! { static NAME: Family<L, M> = ("name", "help", options..); }`: a standalone family,
//! with the same compile-time checks as the attributes and the same registration at start-up.
//!
//! A function-like macro because an attribute cannot sit on a `static` without a value. The
//! `static` keeps the type the user wrote in spirit (`Family<L, M>`) and becomes a
//! `LazyFamily<L, M>`, which dereferences to it.
//!
//! Each `static` is parsed here (its type names the metric's kind, which decides the options
//! its arguments take), its arguments by [`crate::ast`]; then validated by [`crate::valid`]
//! and expanded here around [`crate::expand`]'s `Spec` and link-time entry.
//!
//! Invariant: a static is always emitted, also next to errors (as a `PhantomData` when even
//! its type or arguments did not parse), so that one mistake does not also fail every use of
//! it; a malformed `static` itself stops the whole macro, since the statics after it cannot
//! be found.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, GenericArgument, Ident, PathArguments, Token, Type, Visibility};

use crate::ast::{Form, Kind, MetricArgs};
use crate::expand::{crate_root, link_time_entry, private_path, spec};
use crate::valid;

/// One `static NAME: Family<L, M> = (..);`.
struct FamilyStatic {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    ty: Type,
    args: syn::Result<FamilyArgs>,
}

/// What the type and the parenthesised arguments of a static say.
struct FamilyArgs {
    kind: Kind,
    args: MetricArgs,
    labels: Type,
    metric: Type,
}

struct FamilyStatics(Vec<FamilyStatic>);

impl Parse for FamilyStatics {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            input.parse::<Token![static]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected `static NAME: Family<Labels, Metric> = (\"name\", \"help\");`",
                )
            })?;
            let ident: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let ty: Type = input.parse()?;
            input.parse::<Token![=]>()?;
            let content;
            syn::parenthesized!(content in input);
            let args = family_type(&ty).and_then(|(kind, labels, metric)| {
                let args = MetricArgs::parse(&content, Form::Family(kind))?;
                Ok(FamilyArgs {
                    kind,
                    args,
                    labels,
                    metric,
                })
            });
            if args.is_err() {
                // Skip what is left inside the parentheses so that the next declaration parses.
                let _: TokenStream = content.parse()?;
            }
            input.parse::<Token![;]>()?;
            out.push(FamilyStatic {
                attrs,
                vis,
                ident,
                ty,
                args,
            });
        }
        Ok(FamilyStatics(out))
    }
}

/// `Family<L, M>` → (kind of `M`, `L`, `M`).
fn family_type(ty: &Type) -> syn::Result<(Kind, Type, Type)> {
    let bad = || {
        syn::Error::new(
            ty.span(),
            "expected the type `Family<Labels, Metric>`, e.g. `Family<Job, Counter>` or `Family<(), Histogram>`",
        )
    };
    let Type::Path(path) = ty else {
        return Err(bad());
    };
    let last = path.path.segments.last().ok_or_else(bad)?;
    if last.ident != "Family" {
        return Err(bad());
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return Err(bad());
    };
    let types: Vec<&Type> = generics
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    let [labels, metric] = types[..] else {
        return Err(bad());
    };
    let kind = match metric {
        Type::Path(p) => p.path.segments.last(),
        _ => None,
    }
    .and_then(|last| Kind::from_type_name(&last.ident.to_string()))
    .ok_or_else(|| {
        syn::Error::new(
            metric.span(),
            "expected a metric type: `Counter`, `Gauge`, `Histogram`, `Summary` or `Info`",
        )
    })?;
    Ok((kind, labels.clone(), metric.clone()))
}

pub fn family(input: TokenStream) -> TokenStream {
    let statics = match syn::parse2::<FamilyStatics>(input) {
        Ok(d) => d,
        Err(e) => return e.to_compile_error(),
    };
    let mut out = TokenStream::new();
    for family_static in statics.0 {
        out.extend(expand(family_static));
    }
    out
}

fn expand(family_static: FamilyStatic) -> TokenStream {
    let FamilyStatic {
        attrs,
        vis,
        ident,
        ty,
        args,
    } = family_static;
    let FamilyArgs {
        kind,
        args,
        labels,
        metric,
    } = match args {
        Ok(a) => a,
        Err(e) => {
            let error = e.to_compile_error();
            return quote!(#error #(#attrs)* #vis static #ident: ::core::marker::PhantomData<#ty> = ::core::marker::PhantomData;);
        }
    };
    let (declaration, errors) = valid::check(args, Form::Family(kind), None);
    let p = private_path(declaration.krate.as_ref());
    let krate = crate_root(declaration.krate.as_ref());
    let label_names = match &declaration.label_names {
        Some(names) => quote!(&[#(#names),*]),
        None => quote!(&[]),
    };
    let spec = spec(&declaration, label_names, "All");
    let link = link_time_entry(&p, &ident);
    let errors = errors.to_compile_errors();
    let out = quote! {
        #errors
        #(#attrs)*
        #vis static #ident: #krate::LazyFamily<#labels, #metric> = #krate::LazyFamily::new(#spec);
        // The type as written must be promtrack's `Family<L, M>` (this also makes the user's
        // import of `Family` a used one).
        const _: fn(#ty) -> #krate::Family<#labels, #metric> = |family| family;
        const _: () = {
            #link
        };
    };
    crate::debug::print("family!", &ident, &out);
    out
}
