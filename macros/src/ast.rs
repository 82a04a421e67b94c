//! Parse phase: the arguments of the metric attributes and `family!` — `"name", "help",
//! options..` — and of the exclusion marks, as the user wrote them.
//!
//! Invariants:
//! - Parsing fails only on malformed syntax (a missing name, `buckets` without `=`, a label
//!   without a value). It checks nothing a well-formed declaration can get wrong: names, bucket
//!   order, gauge modes, repeated options and options the metric does not take are all
//!   recorded as written, for [`crate::valid`] to report together.
//! - Each form has one grammar: an option its form does not take is recorded as
//!   [`MetricOption::NotTaken`] and its value skipped without being parsed, so an option meant
//!   for another form cannot fail the parse with a confusing syntax error.
//! - Options are kept in source order, so the errors about them come in the order they are
//!   read.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprClosure, Ident, Lit, LitStr, Path, Token};

use crate::names::unraw;

/// What a declaration declares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Info,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Counter,
        Kind::Gauge,
        Kind::Histogram,
        Kind::Summary,
        Kind::Info,
    ];

    /// The attribute's name: `counter` for `#[counter(..)]`.
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Info => "info",
        }
    }

    /// The runtime's metric type, as written in `Family<L, Counter>` and under `__private`.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "Counter",
            Kind::Gauge => "Gauge",
            Kind::Histogram => "Histogram",
            Kind::Summary => "Summary",
            Kind::Info => "Info",
        }
    }

    /// The kind whose runtime type is named `name`.
    pub fn from_type_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_name() == name)
    }
}

/// Which macro the arguments belong to, which decides the options it takes.
#[derive(Clone, Copy)]
pub enum Form {
    /// A handler attribute of this kind.
    Attribute(Kind),
    /// `family!`, for a metric of this kind.
    Family(Kind),
}

impl Form {
    pub fn kind(self) -> Kind {
        match self {
            Form::Attribute(k) | Form::Family(k) => k,
        }
    }

    /// A complete declaration of this form, for error messages about a missing name or help.
    fn example(self) -> String {
        let example = match self.kind() {
            Kind::Counter => "(\"jobs_total\", \"Jobs run.\")",
            Kind::Info => "(\"build_info\", \"Build information.\")",
            Kind::Gauge => "(\"jobs_in_progress\", \"Jobs running.\")",
            _ => "(\"job_seconds\", \"Time to run a job.\")",
        };
        match self {
            Form::Attribute(k) => format!("#[{}{example}]", k.attr_name()),
            Form::Family(_) => format!("static X: Family<L, M> = {example};"),
        }
    }
}

/// A metric declaration's arguments, as written.
pub struct MetricArgs {
    pub name: LitStr,
    pub help: LitStr,
    /// In source order, repeats included.
    pub options: Vec<MetricOption>,
}

/// One option after the name and help. `key` is the option's name, where a repeat is reported.
pub enum MetricOption {
    /// `labels(name = value, ..)`, on an attribute.
    Labels { key: Ident, labels: Vec<Label> },
    /// `buckets = [..]` or `buckets = CONST`, on a histogram.
    Buckets { key: Ident, bounds: Expr },
    /// `native` or `native(setting = value, ..)`, on a histogram.
    Native {
        key: Ident,
        settings: Vec<(Ident, Expr)>,
    },
    /// `mode = ".."`, on a gauge.
    Mode { key: Ident, mode: LitStr },
    /// `label_names = ["a", ..]`, in `family!`.
    LabelNames { key: Ident, names: Vec<LitStr> },
    /// `exemplars = true|false`, on an attribute (of any kind: a summary's or gauge's is
    /// refused by validation, with the reason).
    Exemplars { key: Ident, on: syn::LitBool },
    /// `crate = path`, everywhere.
    Crate(CratePath),
    /// An option this form does not take, or no form has; its value was skipped.
    NotTaken { key: Ident },
}

/// One `name = value` inside `labels(..)`.
pub struct Label {
    /// Without a raw-identifier prefix: `r#type`, `type` and `"type"` all give `type`.
    pub name: String,
    pub name_span: Span,
    pub value: LabelValueSource,
}

/// Where a label's value comes from, which decides when the macro computes it.
pub enum LabelValueSource {
    /// A literal (string, integer, `bool`, `char`): its text, known at compile time.
    Literal(String),
    /// An expression over the arguments, evaluated (by reference) before the body runs.
    Arguments(Expr),
    /// A closure over a reference to the return value, called after the body.
    ReturnValue(ExprClosure),
}

/// `crate = path`: where generated code finds promtrack, for a crate that re-exports it.
pub struct CratePath {
    /// The `crate` keyword, where a repeat is reported.
    pub key: Ident,
    pub path: Path,
}

impl CratePath {
    /// Parses `= path`, after the key `crate` that the caller read to choose this option.
    fn parse_after_key(key: Ident, input: ParseStream) -> syn::Result<Self> {
        input.parse::<Token![=]>()?;
        Ok(CratePath {
            key,
            path: input.parse()?,
        })
    }
}

/// The arguments of an exclusion mark `#[mark_name(..)]`: nothing, or `crate = path`.
pub fn parse_mark_args(input: ParseStream, mark_name: &str) -> syn::Result<Option<CratePath>> {
    if input.is_empty() {
        return Ok(None);
    }
    let key = Ident::parse_any(input)?;
    if key != "crate" {
        return Err(syn::Error::new(
            key.span(),
            format!(
                "`#[{mark_name}]` takes no arguments (only `crate = path`); write `#[{mark_name}]`"
            ),
        ));
    }
    CratePath::parse_after_key(key, input).map(Some)
}

impl MetricArgs {
    /// Parses the arguments of `form` from `input`.
    pub fn parse(input: ParseStream, form: Form) -> syn::Result<Self> {
        let what = form.example();
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("a metric needs a name and help text first: `{what}`"),
            ));
        }
        let name = input.parse::<LitStr>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the metric's name as a string literal, as in `{what}`"),
            )
        })?;
        if input.is_empty() {
            return Err(syn::Error::new(
                name.span(),
                format!("the metric needs help text after its name, as in `{what}`"),
            ));
        }
        input.parse::<Token![,]>()?;
        let help = input.parse::<LitStr>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected the metric's help text as a string literal after its name, as in `{what}`"
                ),
            )
        })?;
        let mut options = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            options.push(MetricOption::parse(input, form)?);
        }
        Ok(MetricArgs {
            name,
            help,
            options,
        })
    }
}

impl MetricOption {
    fn parse(input: ParseStream, form: Form) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        let kind = form.kind();
        let attribute = matches!(form, Form::Attribute(_));
        Ok(match key.to_string().as_str() {
            "labels" if attribute => {
                let content;
                syn::parenthesized!(content in input);
                let labels = Punctuated::<Label, Token![,]>::parse_terminated(&content)?;
                MetricOption::Labels {
                    key,
                    labels: labels.into_iter().collect(),
                }
            }
            "buckets" if kind == Kind::Histogram => {
                input.parse::<Token![=]>()?;
                MetricOption::Buckets {
                    key,
                    bounds: input.parse()?,
                }
            }
            "native" if kind == Kind::Histogram => {
                let mut settings = Vec::new();
                if input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in input);
                    while !content.is_empty() {
                        let name = Ident::parse_any(&content)?;
                        content.parse::<Token![=]>()?;
                        settings.push((name, content.parse()?));
                        if content.is_empty() {
                            break;
                        }
                        content.parse::<Token![,]>()?;
                    }
                }
                MetricOption::Native { key, settings }
            }
            "mode" if kind == Kind::Gauge => {
                input.parse::<Token![=]>()?;
                MetricOption::Mode {
                    key,
                    mode: input.parse()?,
                }
            }
            "label_names" if !attribute => {
                input.parse::<Token![=]>()?;
                let content;
                syn::bracketed!(content in input);
                let names = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                MetricOption::LabelNames {
                    key,
                    names: names.into_iter().collect(),
                }
            }
            "exemplars" if attribute => {
                input.parse::<Token![=]>()?;
                let on = input.parse::<syn::LitBool>().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`exemplars` takes `true` or `false`: `exemplars = false`",
                    )
                })?;
                MetricOption::Exemplars { key, on }
            }
            "crate" => MetricOption::Crate(CratePath::parse_after_key(key, input)?),
            _ => {
                // Skip the option's value so that the rest still parses.
                if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    input.parse::<Expr>()?;
                } else if input.peek(syn::token::Paren) {
                    let content;
                    syn::parenthesized!(content in input);
                    let _: TokenStream = content.parse()?;
                }
                MetricOption::NotTaken { key }
            }
        })
    }
}

impl Parse for Label {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (name, name_span) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident = Ident::parse_any(input)?;
            (unraw(&ident), ident.span())
        };
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                name_span,
                format!(
                    "the label `{name}` needs a value: `{name} = \"literal\"`, `{name} = expression` or `{name} = |ret: &Ret| ..`"
                ),
            ));
        }
        input.parse::<Token![=]>()?;
        let value = match input.parse::<Expr>()? {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(s) => LabelValueSource::Literal(s.value()),
                Lit::Int(i) => LabelValueSource::Literal(i.base10_digits().to_owned()),
                Lit::Bool(b) => LabelValueSource::Literal(b.value.to_string()),
                Lit::Char(c) => LabelValueSource::Literal(c.value().to_string()),
                _ => LabelValueSource::Arguments(Expr::Lit(lit)),
            },
            Expr::Closure(closure) => LabelValueSource::ReturnValue(closure),
            other => LabelValueSource::Arguments(other),
        };
        Ok(Label {
            name,
            name_span,
            value,
        })
    }
}
