//! `#[derive(LabelSet)]` for structs with named fields and `#[derive(LabelValue)]` for
//! fieldless enums.
//!
//! A derived set reports a fixed cardinality when every field has one (enums deriving
//! `LabelValue`, `bool`): the product of the fields', computed in const evaluation, with a
//! mixed-radix index — so its family indexes a dense array and never hashes.
//!
//! `#[derive(LabelSet)]` on a struct with a `String` or `Cow<str>` field also generates its
//! borrowed form (`JobRef<'a>` for `Job`): the same fields with each string one a `&'a str`, and
//! an `impl LabelQuery<Job>` writing the same values in the same order, so a lookup by `JobRef`
//! finds `Job`'s series. Which fields are strings is decided from the type as written (`String`,
//! `Cow<'_, str>`, with or without their `std`/`alloc` paths); the generated impl then writes
//! each of them through `OwnedStr`, implemented only by those two types, so a type that merely
//! shares the name is a compile error, never a borrowed form that writes other values.
//!
//! Each derive runs the three phases in this one module, as its `#[label(..)]` options are few:
//! parse them (`label_attrs`, collecting every error), check the label names with
//! [`crate::valid::check_label_names`], expand with [`crate::expand`]'s runtime paths. On any
//! error only the errors are emitted, never a partial impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, LitStr, Path, PathArguments, Type};

use crate::errors::Errors;
use crate::expand::{private_path, respan};
use crate::names::unraw;
use crate::valid::check_label_names;

/// Options in `#[label(..)]` attributes.
#[derive(Default)]
struct LabelAttrs {
    rename: Option<LitStr>,
    rename_all: Option<(LitStr, Case)>,
    krate: Option<Path>,
    /// `borrowed = "Name"` (`Some(Some(name))`) or `borrowed = false` (`Some(None)`).
    borrowed: Option<(Span, Option<Ident>)>,
}

/// Where a `#[label(..)]` attribute sits, which decides the options it may have.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    SetContainer,
    SetField,
    ValueContainer,
    ValueVariant,
}

fn label_attrs(attrs: &[syn::Attribute], place: Place, errors: &mut Errors) -> LabelAttrs {
    let mut out = LabelAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("label")) {
        let result = attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (key.as_str(), place) {
                ("rename", Place::SetField | Place::ValueVariant) => {
                    out.rename = Some(meta.value()?.parse()?);
                }
                ("rename_all", Place::ValueContainer) => {
                    let lit: LitStr = meta.value()?.parse()?;
                    match Case::from_name(&lit.value()) {
                        Some(case) => out.rename_all = Some((lit, case)),
                        None => errors.push(
                            lit.span(),
                            format!(
                                "unknown case `{}`; use one of: {}",
                                lit.value(),
                                Case::NAMES.join(", ")
                            ),
                        ),
                    }
                }
                ("crate", Place::SetContainer | Place::ValueContainer) => {
                    out.krate = Some(meta.value()?.parse()?);
                }
                ("borrowed", Place::SetContainer) => {
                    let lit: syn::Lit = meta.value()?.parse()?;
                    let name = match &lit {
                        syn::Lit::Bool(b) if !b.value => None,
                        syn::Lit::Str(s) => match s.parse::<Ident>() {
                            Ok(ident) => Some(ident),
                            Err(_) => {
                                errors.push(
                                    s.span(),
                                    format!(
                                        "`{}` is not a type name; `borrowed = \"JobKey\"` names the borrowed form, `borrowed = false` leaves it out",
                                        s.value()
                                    ),
                                );
                                None
                            }
                        },
                        _ => {
                            return Err(syn::Error::new(
                                lit.span(),
                                "expected `borrowed = \"TypeName\"` (the borrowed form's name) or `borrowed = false` (no borrowed form)",
                            ));
                        }
                    };
                    out.borrowed = Some((meta.path.span(), name));
                }
                _ => {
                    let allowed = match place {
                        Place::SetContainer => {
                            "`crate = path`, `borrowed = \"TypeName\"`, `borrowed = false`"
                        }
                        Place::SetField => "`rename = \"label_name\"`",
                        Place::ValueContainer => "`rename_all = \"snake_case\"`, `crate = path`",
                        Place::ValueVariant => "`rename = \"value\"`",
                    };
                    return Err(meta.error(format!(
                        "unknown option `{key}` in `#[label(..)]` here; expected {allowed}"
                    )));
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.add(e);
        }
    }
    out
}

/// `#[derive(LabelSet)]`.
pub fn label_set(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = label_attrs(&input.attrs, Place::SetContainer, &mut errors);
    let p = private_path(container.krate.as_ref());
    let name = &input.ident;
    let empty = syn::punctuated::Punctuated::new();
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(&named.named),
            Fields::Unit => Some(&empty),
            Fields::Unnamed(_) => None,
        },
        _ => None,
    };
    let Some(fields) = fields else {
        let what = match &input.data {
            Data::Struct(_) => "a tuple struct",
            Data::Enum(_) => "an enum (derive `LabelValue` for an enum used as one label's value)",
            Data::Union(_) => "a union",
        };
        errors.push(
            name.span(),
            format!(
                "`LabelSet` derives for structs with named fields (one field per label), not {what}"
            ),
        );
        return errors.to_compile_errors();
    };
    let mut labels = Vec::new();
    for field in fields {
        let attrs = label_attrs(&field.attrs, Place::SetField, &mut errors);
        let ident = field.ident.as_ref().expect("named fields");
        let (label, span) = match &attrs.rename {
            Some(lit) => (lit.value(), lit.span()),
            None => (unraw(ident), ident.span()),
        };
        labels.push((label, span, ident, &field.ty));
    }
    check_label_names(
        labels.iter().map(|(l, s, _, _)| (l.clone(), *s)),
        &mut errors,
    );
    if !errors.is_empty() {
        return errors.to_compile_errors();
    }
    let names = labels.iter().map(|(l, ..)| l);
    let arity = labels.len();
    let cardinalities = labels.iter().map(|(.., ty)| {
        let p = respan(p.clone(), ty.span());
        quote_spanned!(ty.span()=> <#ty as #p::LabelValue>::CARDINALITY)
    });
    let index_steps = labels.iter().map(|(_, _, ident, ty)| {
        let p = respan(p.clone(), ty.span());
        quote_spanned! {ty.span()=>
            index = index * match <#ty as #p::LabelValue>::CARDINALITY {
                #p::Option::Some(n) => n,
                #p::Option::None => 1,
            } + #p::LabelValue::cardinality_index(&self.#ident);
        }
    });
    let writes = labels.iter().map(|(_, _, ident, ty)| {
        // Spanned at the field's type: a type that is not a label value is reported there.
        quote_spanned!(ty.span()=> out.value::<#ty>(&self.#ident);)
    });
    let borrowed = match borrowed_form(&input, &container, &labels, &p) {
        Ok(tokens) => tokens,
        Err(e) => return e.to_compile_error(),
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #borrowed

        #[automatically_derived]
        impl #impl_generics #p::LabelSet for #name #ty_generics #where_clause {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const ARITY: usize = #arity;
            const CARDINALITY: #p::Option<usize> = #p::product(&[#(#cardinalities),*]);
            #[inline]
            fn cardinality_index(&self) -> usize {
                let mut index = 0usize;
                #(#index_steps)*
                index
            }
            // Always inlined: `Family::with` inlines its hit path into the caller, and a
            // `write_values` left out of line would take the key writer out of registers.
            #[inline(always)]
            fn write_values(&self, out: &mut #p::KeyWriter<'_>) {
                #(#writes)*
            }
        }
    }
}

/// A field of a derived label set: label name, its span, the field's identifier and type.
type Label<'a> = (String, Span, &'a Ident, &'a Type);

/// The borrowed form of a derived set and its `LabelQuery` impl, or nothing: for a struct
/// without a string field (it queries itself), with lifetime parameters (it can hold borrowed
/// values itself, and a `Family<Job<'static>, _>` takes a `&Job<'_>` of any lifetime, as
/// families are covariant), or with `#[label(borrowed = false)]`.
fn borrowed_form(
    input: &DeriveInput,
    container: &LabelAttrs,
    labels: &[Label<'_>],
    p: &TokenStream,
) -> syn::Result<TokenStream> {
    let name = &input.ident;
    let requested = match &container.borrowed {
        Some((_, None)) => return Ok(TokenStream::new()),
        Some((span, Some(ident))) => Some((*span, ident.clone())),
        None => None,
    };
    let why_not = if !labels.iter().any(|(.., ty)| is_owned_str(ty)) {
        Some("it has no `String` or `Cow<str>` field, so it is its own borrowed form")
    } else if input.generics.lifetimes().next().is_some() {
        Some(
            "it has lifetime parameters, so it holds borrowed values itself (`&'a str`, \
             `Cow<'a, str>`), and a family of it with `'static` takes them with any lifetime",
        )
    } else {
        None
    };
    if let Some(why) = why_not {
        return match requested {
            Some((span, _)) => Err(syn::Error::new(
                span,
                format!("`{name}` gets no borrowed form: {why}; remove `borrowed = ..`"),
            )),
            None => Ok(TokenStream::new()),
        };
    }
    let ref_name = requested
        .map(|(_, ident)| ident)
        .unwrap_or_else(|| quote::format_ident!("{}Ref", name));
    let vis = &input.vis;
    let fields = labels.iter().map(|(_, _, ident, ty)| {
        let field = field_of(input, ident);
        let docs = field.attrs.iter().filter(|a| a.path().is_ident("doc"));
        let field_vis = &field.vis;
        if is_owned_str(ty) {
            quote!(#(#docs)* #field_vis #ident: &'a str,)
        } else {
            quote!(#(#docs)* #field_vis #ident: #ty,)
        }
    });
    let writes = labels.iter().map(|(_, _, ident, ty)| {
        if is_owned_str(ty) {
            let p = respan(p.clone(), ty.span());
            quote_spanned!(ty.span()=> <#ty as #p::OwnedStr>::write_borrowed(self.#ident, out);)
        } else {
            quote_spanned!(ty.span()=> out.value::<#ty>(&self.#ident);)
        }
    });
    let mut ref_generics = input.generics.clone();
    ref_generics.params.insert(0, syn::parse_quote!('a));
    let where_clause = &ref_generics.where_clause;
    let (impl_generics, ref_ty_generics, _) = ref_generics.split_for_impl();
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let doc = format!(
        "The borrowed form of [`{name}`], generated by `#[derive(LabelSet)]`: looks up \
         `{name}`'s series with `&str` values (`family.with(&{ref_name} {{ .. }})`), allocating \
         only for a new series. Each `String` or `Cow<str>` field of `{name}` is a `&str` here; \
         the other fields are the same."
    );
    Ok(quote! {
        #[doc = #doc]
        // Generated whether or not it is used, and without derives (its fields' types may
        // implement none): the lints that would ask for them are the user's business on `Job`.
        #[allow(dead_code, missing_debug_implementations, missing_copy_implementations)]
        #vis struct #ref_name #ref_generics #where_clause {
            #(#fields)*
        }

        #[automatically_derived]
        impl #impl_generics #p::LabelQuery<#name #ty_generics> for #ref_name #ref_ty_generics
            #where_clause
        {
            // Always inlined, as the set's own `write_values`.
            #[inline(always)]
            fn write_values(&self, out: &mut #p::KeyWriter<'_>) {
                #(#writes)*
            }
        }
    })
}

fn field_of<'a>(input: &'a DeriveInput, ident: &Ident) -> &'a syn::Field {
    match &input.data {
        Data::Struct(s) => s
            .fields
            .iter()
            .find(|f| f.ident.as_ref() == Some(ident))
            .expect("a label is one of the struct's fields"),
        _ => unreachable!("label sets are structs"),
    }
}

/// Whether `ty` is written as `String` or `Cow<'_, str>` (bare, or through `std`/`alloc`).
fn is_owned_str(ty: &Type) -> bool {
    let ty = match ty {
        Type::Group(g) => &*g.elem,
        Type::Paren(p) => &*p.elem,
        ty => ty,
    };
    let Type::Path(path) = ty else { return false };
    if path.qself.is_some() {
        return false;
    }
    let segments: Vec<_> = path.path.segments.iter().collect();
    let Some((last, module)) = segments.split_last() else {
        return false;
    };
    let module: Vec<String> = module.iter().map(|s| s.ident.to_string()).collect();
    let in_module = |m: &str| {
        module.is_empty()
            || (module.len() == 2
                && (module[0] == "std" || module[0] == "alloc")
                && module[1] == m
                && segments[..2].iter().all(|s| s.arguments.is_none()))
    };
    match (&last.arguments, last.ident.to_string().as_str()) {
        (PathArguments::None, "String") => in_module("string"),
        (PathArguments::AngleBracketed(args), "Cow") => {
            let args: Vec<_> = args.args.iter().collect();
            in_module("borrow")
                && matches!(
                    args.as_slice(),
                    [GenericArgument::Lifetime(_), GenericArgument::Type(Type::Path(t))]
                        if t.qself.is_none() && t.path.is_ident("str")
                )
        }
        _ => false,
    }
}

/// `#[derive(LabelValue)]`.
pub fn label_value(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = label_attrs(&input.attrs, Place::ValueContainer, &mut errors);
    let p = private_path(container.krate.as_ref());
    let name = &input.ident;
    let Data::Enum(data) = &input.data else {
        errors.push(
            name.span(),
            "`LabelValue` derives for enums without fields (each variant is one value); for a struct of several labels derive `LabelSet`, for a newtype implement `promtrack::LabelValue` by hand",
        );
        return errors.to_compile_errors();
    };
    let case = container
        .rename_all
        .as_ref()
        .map_or(Case::Snake, |(_, c)| *c);
    let mut arms = Vec::new();
    for variant in &data.variants {
        let attrs = label_attrs(&variant.attrs, Place::ValueVariant, &mut errors);
        if !matches!(variant.fields, Fields::Unit) {
            errors.push(
                variant.fields.span(),
                format!(
                    "`LabelValue` derives for enums whose variants have no fields, so that the values are fixed; remove the fields of `{}` or implement `promtrack::LabelValue` by hand",
                    variant.ident
                ),
            );
            continue;
        }
        let text = match &attrs.rename {
            Some(lit) => lit.value(),
            None => case.apply(&unraw(&variant.ident)),
        };
        arms.push((&variant.ident, text));
    }
    if !errors.is_empty() {
        return errors.to_compile_errors();
    }
    let count = arms.len();
    let index_arms = arms
        .iter()
        .enumerate()
        .map(|(i, (v, _))| quote!(Self::#v => #i,));
    let text_arms = arms.iter().map(|(v, t)| quote!(Self::#v => #t,));
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #p::LabelValue for #name #ty_generics #where_clause {
            const CARDINALITY: #p::Option<usize> = #p::Option::Some(#count);
            #[inline]
            fn cardinality_index(&self) -> usize {
                match *self {
                    #(#index_arms)*
                }
            }
            #[inline(always)]
            fn write_value(&self, out: &mut #p::ValueWriter<'_>) {
                out.write_str(match *self {
                    #(#text_arms)*
                })
            }
        }
    }
}

/// How variant names become values.
#[derive(Clone, Copy)]
enum Case {
    Snake,
    Kebab,
    ScreamingSnake,
    Lower,
    Upper,
    Camel,
    Pascal,
}

impl Case {
    const NAMES: [&'static str; 7] = [
        "snake_case",
        "kebab-case",
        "SCREAMING_SNAKE_CASE",
        "lowercase",
        "UPPERCASE",
        "camelCase",
        "PascalCase",
    ];

    fn from_name(name: &str) -> Option<Case> {
        Some(match name {
            "snake_case" => Case::Snake,
            "kebab-case" => Case::Kebab,
            "SCREAMING_SNAKE_CASE" => Case::ScreamingSnake,
            "lowercase" => Case::Lower,
            "UPPERCASE" => Case::Upper,
            "camelCase" => Case::Camel,
            "PascalCase" => Case::Pascal,
            _ => return None,
        })
    }

    fn apply(self, ident: &str) -> String {
        let words = words(ident);
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let capitalised = || {
            lower.iter().map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
        };
        match self {
            Case::Snake => lower.join("_"),
            Case::Kebab => lower.join("-"),
            Case::ScreamingSnake => lower.join("_").to_uppercase(),
            Case::Lower => lower.concat(),
            Case::Upper => lower.concat().to_uppercase(),
            Case::Pascal => capitalised().collect(),
            Case::Camel => {
                let mut out = lower.first().cloned().unwrap_or_default();
                out.extend(capitalised().skip(1));
                out
            }
        }
    }
}

/// Splits `HttpError`, `HTTPError`, `Http2` into words: `Http Error`, `HTTP Error`, `Http2`.
fn words(ident: &str) -> Vec<String> {
    let chars: Vec<char> = ident.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && i > 0
            && (chars[i - 1].is_lowercase()
                || chars[i - 1].is_ascii_digit()
                || (chars[i - 1].is_uppercase()
                    && chars.get(i + 1).is_some_and(|n| n.is_lowercase())));
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(Case::Snake.apply("HttpError"), "http_error");
        assert_eq!(Case::Snake.apply("HTTPError"), "http_error");
        assert_eq!(Case::Snake.apply("Http2"), "http2");
        assert_eq!(Case::Kebab.apply("NotFound"), "not-found");
        assert_eq!(Case::ScreamingSnake.apply("NotFound"), "NOT_FOUND");
        assert_eq!(Case::Lower.apply("NotFound"), "notfound");
        assert_eq!(Case::Upper.apply("NotFound"), "NOTFOUND");
        assert_eq!(Case::Camel.apply("NotFound"), "notFound");
        assert_eq!(Case::Pascal.apply("not_found"), "NotFound");
    }

    #[test]
    fn owned_strings_are_recognised_as_written() {
        for ty in [
            "String",
            "std::string::String",
            "::std::string::String",
            "alloc::string::String",
            "Cow<'static, str>",
            "std::borrow::Cow<'_, str>",
            "::alloc::borrow::Cow<'static, str>",
        ] {
            assert!(is_owned_str(&syn::parse_str(ty).unwrap()), "{ty}");
        }
        for ty in [
            "&'static str",
            "str",
            "Box<str>",
            "Cow<'static, [u8]>",
            "my::String",
            "std::borrow::String",
            "Option<String>",
            "Priority",
        ] {
            assert!(!is_owned_str(&syn::parse_str(ty).unwrap()), "{ty}");
        }
    }
}
