//! `#[derive(LabelSet)]` for structs with named fields and `#[derive(LabelValue)]` for
//! fieldless enums.
//!
//! A derived set reports a fixed cardinality when every field has one (enums deriving
//! `LabelValue`, `bool`): the product of the fields', computed in const evaluation, with a
//! mixed-radix index — so its family indexes a dense array and never hashes.
//!
//! Each derive runs the three phases in this one module, as its `#[label(..)]` options are few:
//! parse them (`label_attrs`, collecting every error), check the label names with
//! [`crate::valid::check_label_names`], expand with [`crate::expand`]'s runtime paths. On any
//! error only the errors are emitted, never a partial impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Path};

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
                _ => {
                    let allowed = match place {
                        Place::SetContainer => "`crate = path`",
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
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
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
            #[inline]
            fn write_values(&self, out: &mut #p::KeyWriter<'_>) {
                #(#writes)*
            }
        }
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
            #[inline]
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
}
