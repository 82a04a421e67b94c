//! `family! { static NAME: Family<L, M> = ("name", "help", options..); }`: a standalone family,
//! with the same compile-time checks as the attributes and the same registration at start-up.
//!
//! A function-like macro because an attribute cannot sit on a `static` without a value. The
//! `static` keeps the type the user wrote in spirit (`Family<L, M>`) and becomes a
//! `LazyFamily<L, M>`, which dereferences to it.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, GenericArgument, Ident, PathArguments, Token, Type, Visibility};

use crate::args::{self, Args, Form, Kind};
use crate::errors::Errors;

struct Declaration {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    ty: Type,
    args: syn::Result<(Kind, Args, Type, Type)>,
}

struct Declarations(Vec<Declaration>);

impl Parse for Declarations {
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
                let args = args::parse(&content, Form::Family(kind))?;
                Ok((kind, args, labels, metric))
            });
            if args.is_err() {
                // Skip what is left inside the parentheses so that the next declaration parses.
                let _: TokenStream = content.parse()?;
            }
            input.parse::<Token![;]>()?;
            out.push(Declaration {
                attrs,
                vis,
                ident,
                ty,
                args,
            });
        }
        Ok(Declarations(out))
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
    let kind_name = match metric {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    let kind = match kind_name.as_deref() {
        Some("Counter") => Kind::Counter,
        Some("Gauge") => Kind::Gauge,
        Some("Histogram") => Kind::Histogram,
        Some("Summary") => Kind::Summary,
        Some("Info") => Kind::Info,
        _ => {
            return Err(syn::Error::new(
                metric.span(),
                "expected a metric type: `Counter`, `Gauge`, `Histogram`, `Summary` or `Info`",
            ));
        }
    };
    Ok((kind, labels.clone(), metric.clone()))
}

pub fn family(input: TokenStream) -> TokenStream {
    let declarations = match syn::parse2::<Declarations>(input) {
        Ok(d) => d,
        Err(e) => return e.to_compile_error(),
    };
    let mut out = TokenStream::new();
    for declaration in declarations.0 {
        out.extend(expand(declaration));
    }
    out
}

fn expand(declaration: Declaration) -> TokenStream {
    let Declaration {
        attrs,
        vis,
        ident,
        ty,
        args,
    } = declaration;
    let (kind, mut args, labels, metric) = match args {
        Ok(a) => a,
        Err(e) => {
            let error = e.to_compile_error();
            return quote!(#error #(#attrs)* #vis static #ident: ::core::marker::PhantomData<#ty> = ::core::marker::PhantomData;);
        }
    };
    let errors: Errors = args.validate(Form::Family(kind), None);
    let p = args.private();
    let krate = match &args.krate {
        Some(path) => quote!(#path),
        None => quote!(::promtrack),
    };
    let label_names = match &args.label_names {
        Some((_, names)) => quote!(&[#(#names),*]),
        None => quote!(&[]),
    };
    let spec = args.spec(kind, label_names, "All");
    let link = Ident::new("PROMTRACK_LINK", Span::mixed_site());
    let errors = errors.to_compile_errors();
    let out = quote! {
        #errors
        #(#attrs)*
        #vis static #ident: #krate::LazyFamily<#labels, #metric> = #krate::LazyFamily::new(#spec);
        // The type as written must be promtrack's `Family<L, M>` (this also makes the user's
        // import of `Family` a used one).
        const _: fn(#ty) -> #krate::Family<#labels, #metric> = |family| family;
        const _: () = {
            #[#p::linkme::distributed_slice(#p::DECLARATIONS)]
            #[linkme(crate = #p::linkme)]
            static #link: &'static dyn #p::Declared = &#ident;
        };
    };
    crate::debug::print("family!", &ident, &out);
    out
}
