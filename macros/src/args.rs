//! The arguments of a metric declaration — `"name", "help", labels(..), buckets = [..], mode =
//! "..", crate = path` — parsed into a typed model, then validated with every mistake collected.
//!
//! Parsing only fails on malformed syntax; everything else (names, buckets, options that do not
//! fit the metric's kind) is checked by [`Args::validate`], which reports all problems at once,
//! each spanned at the offending token.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprClosure, Ident, Lit, LitStr, Path, Token};

use crate::errors::Errors;
use crate::names::{label_name_problem, metric_name_problem, unraw};

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
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Info => "info",
        }
    }

    /// The runtime type, as a path under `__private`.
    pub fn type_name(self) -> Ident {
        let name = match self {
            Kind::Counter => "Counter",
            Kind::Gauge => "Gauge",
            Kind::Histogram => "Histogram",
            Kind::Summary => "Summary",
            Kind::Info => "Info",
        };
        Ident::new(name, Span::call_site())
    }
}

/// The gauge modes of the runtime's `GaugeMode`, by their Python names.
pub const GAUGE_MODES: [(&str, &str); 10] = [
    ("all", "All"),
    ("liveall", "LiveAll"),
    ("sum", "Sum"),
    ("livesum", "LiveSum"),
    ("max", "Max"),
    ("livemax", "LiveMax"),
    ("min", "Min"),
    ("livemin", "LiveMin"),
    ("mostrecent", "MostRecent"),
    ("livemostrecent", "LiveMostRecent"),
];

/// One `name = value` inside `labels(..)`.
pub struct Label {
    pub name: String,
    pub name_span: Span,
    pub source: Source,
}

/// Where a label's value comes from.
pub enum Source {
    /// A literal: its text, known at compile time.
    Static(String),
    /// An expression over the arguments, evaluated (by reference) before the body runs.
    Arg(Expr),
    /// A closure over a reference to the return value, called after the body.
    Ret(ExprClosure),
}

pub enum Buckets {
    /// Literal bounds, checked here.
    Literals(Vec<f64>),
    /// A constant expression of type `&[f64]`, checked in const evaluation.
    Const(Expr),
}

/// A parsed declaration.
pub struct Args {
    pub name: Option<LitStr>,
    pub help: Option<LitStr>,
    pub labels: Vec<Label>,
    pub buckets: Option<(Span, Buckets)>,
    pub mode: Option<(Span, &'static str)>,
    pub label_names: Option<(Span, Vec<LitStr>)>,
    pub krate: Option<Path>,
    /// Options that parsed but are not known, or repeated: reported by `validate`.
    problems: Errors,
    /// Whether `labels(..)` was given (and where).
    labels_span: Option<Span>,
}

impl Args {
    /// `::promtrack::__private`, or `<crate = path>::__private`.
    pub fn private(&self) -> TokenStream {
        private_path(self.krate.as_ref())
    }
}

/// The path generated code reaches the runtime through.
pub fn private_path(krate: Option<&Path>) -> TokenStream {
    match krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::promtrack::__private),
    }
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

/// Which options a declaration form accepts.
#[derive(Clone, Copy)]
pub enum Form {
    /// A handler attribute of this kind.
    Attribute(Kind),
    /// `family!`, for a metric of this kind.
    Family(Kind),
}

impl Form {
    fn kind(self) -> Kind {
        match self {
            Form::Attribute(k) | Form::Family(k) => k,
        }
    }

    fn known_options(self) -> &'static str {
        match self {
            Form::Attribute(Kind::Histogram) => "`labels(..)`, `buckets = [..]`, `crate = path`",
            Form::Attribute(Kind::Gauge) => "`labels(..)`, `mode = \"..\"`, `crate = path`",
            Form::Attribute(_) => "`labels(..)`, `crate = path`",
            Form::Family(Kind::Histogram) => {
                "`buckets = [..]`, `label_names = [..]`, `crate = path`"
            }
            Form::Family(Kind::Gauge) => "`mode = \"..\"`, `label_names = [..]`, `crate = path`",
            Form::Family(_) => "`label_names = [..]`, `crate = path`",
        }
    }
}

/// Parses the arguments of `form` from `input`.
pub fn parse(input: ParseStream, form: Form) -> syn::Result<Args> {
    let mut args = Args {
        name: None,
        help: None,
        labels: Vec::new(),
        buckets: None,
        mode: None,
        label_names: None,
        krate: None,
        problems: Errors::default(),
        labels_span: None,
    };
    let example = match form.kind() {
        Kind::Counter => "(\"jobs_total\", \"Jobs run.\")",
        Kind::Info => "(\"build_info\", \"Build information.\")",
        Kind::Gauge => "(\"jobs_in_progress\", \"Jobs running.\")",
        _ => "(\"job_seconds\", \"Time to run a job.\")",
    };
    let what = match form {
        Form::Attribute(k) => format!("#[{}{example}]", k.attr_name()),
        Form::Family(_) => format!("static X: Family<L, M> = {example};"),
    };
    if input.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            format!("a metric needs a name and help text first: `{what}`"),
        ));
    }
    args.name = Some(input.parse::<LitStr>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected the metric's name as a string literal, as in `{what}`"),
        )
    })?);
    if input.is_empty() {
        return Err(syn::Error::new(
            args.name.span(),
            format!("the metric needs help text after its name, as in `{what}`"),
        ));
    }
    input.parse::<Token![,]>()?;
    args.help = Some(input.parse::<LitStr>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "expected the metric's help text as a string literal after its name, as in `{what}`"
            ),
        )
    })?);
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        parse_option(input, form, &mut args)?;
    }
    Ok(args)
}

fn parse_option(input: ParseStream, form: Form, args: &mut Args) -> syn::Result<()> {
    let key = Ident::parse_any(input)?;
    let key_name = key.to_string();
    let kind = form.kind();
    let attribute = matches!(form, Form::Attribute(_));
    match key_name.as_str() {
        "labels" if attribute => {
            let content;
            syn::parenthesized!(content in input);
            if args.labels_span.replace(key.span()).is_some() {
                args.problems.push(
                    key.span(),
                    "`labels(..)` is given twice; list every label in one",
                );
            }
            let labels = Punctuated::<LabelArg, Token![,]>::parse_terminated(&content)?;
            args.labels.extend(labels.into_iter().map(|l| l.0));
        }
        "buckets" if kind == Kind::Histogram => {
            input.parse::<Token![=]>()?;
            let expr: Expr = input.parse()?;
            let span = expr.span();
            let buckets = match &expr {
                Expr::Array(array) => {
                    let mut bounds = Vec::new();
                    for elem in &array.elems {
                        match number(elem) {
                            Some(v) => bounds.push((elem.span(), v)),
                            None => args.problems.push(
                                elem.span(),
                                "a bucket bound must be a number literal; for computed bounds use a constant: `buckets = MY_BUCKETS` with `const MY_BUCKETS: &[f64] = &[..]`",
                            ),
                        }
                    }
                    check_bounds(&bounds, span, &mut args.problems);
                    Buckets::Literals(bounds.into_iter().map(|(_, v)| v).collect())
                }
                _ => Buckets::Const(expr),
            };
            if args.buckets.replace((span, buckets)).is_some() {
                args.problems
                    .push(key.span(), "`buckets` is given twice; keep one");
            }
        }
        "mode" if kind == Kind::Gauge => {
            input.parse::<Token![=]>()?;
            let lit: LitStr = input.parse()?;
            let value = lit.value();
            match GAUGE_MODES.iter().find(|(python, _)| *python == value) {
                Some((_, variant)) => {
                    if args.mode.replace((lit.span(), variant)).is_some() {
                        args.problems
                            .push(key.span(), "`mode` is given twice; keep one");
                    }
                }
                None => args.problems.push(
                    lit.span(),
                    format!(
                        "unknown gauge mode `{value}`; use one of: {}",
                        GAUGE_MODES.map(|(p, _)| p).join(", ")
                    ),
                ),
            }
        }
        "label_names" if !attribute => {
            input.parse::<Token![=]>()?;
            let content;
            syn::bracketed!(content in input);
            let names = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
            let names: Vec<LitStr> = names.into_iter().collect();
            check_label_names(
                names.iter().map(|n| (n.value(), n.span())),
                &mut args.problems,
            );
            if args.label_names.replace((key.span(), names)).is_some() {
                args.problems
                    .push(key.span(), "`label_names` is given twice; keep one");
            }
        }
        "crate" => {
            input.parse::<Token![=]>()?;
            let path: Path = input.parse()?;
            if args.krate.replace(path).is_some() {
                args.problems
                    .push(key.span(), "`crate` is given twice; keep one");
            }
        }
        _ => {
            let hint = match (key_name.as_str(), kind) {
                ("buckets", _) => format!(
                    "only histograms have buckets; remove `buckets` or use `{}`",
                    if attribute { "#[histogram(..)]" } else { "Family<_, Histogram>" }
                ),
                ("mode", _) => "`mode` is a gauge's multiprocess aggregation; remove it here".into(),
                ("labels", _) => {
                    "a family's label names come from its label set; for an array label set write `label_names = [\"a\", \"b\"]`".into()
                }
                ("label_names", _) => {
                    "write the labels with their values: `labels(name = value, ..)`".into()
                }
                _ => format!("unknown option `{key_name}`; expected one of {}", form.known_options()),
            };
            args.problems.push(key.span(), hint);
            // Skip the option's value so that the rest still parses.
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                input.parse::<Expr>()?;
            } else if input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in input);
                let _: TokenStream = _content.parse()?;
            }
        }
    }
    Ok(())
}

/// A numeric literal (`1`, `0.5`, `-1.0`) as `f64`.
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) => f.base10_parse().ok(),
            Lit::Int(i) => i.base10_parse::<i64>().ok().map(|v| v as f64),
            _ => None,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

fn check_bounds(bounds: &[(Span, f64)], span: Span, errors: &mut Errors) {
    if bounds.is_empty() {
        errors.push(
            span,
            "a histogram needs at least one bucket bound; list them, e.g. `buckets = [0.01, 0.1, 1.0]`, or leave `buckets` out for the defaults",
        );
    }
    for &(span, b) in bounds {
        // `1e400` parses, as infinity: a bound no histogram can have.
        if !b.is_finite() {
            errors.push(
                span,
                "this bucket bound is not a finite number (too large for an f64); the `+Inf` bucket is always added, so list finite bounds only",
            );
        }
    }
    for w in bounds.windows(2) {
        let ((_, a), (span, b)) = (w[0], w[1]);
        if a == b {
            errors.push(
                span,
                format!("bucket bound {b:?} is listed twice; remove the duplicate"),
            );
        } else if a > b {
            errors.push(
                span,
                format!("bucket bounds must increase, but {b:?} comes after {a:?}; sort them"),
            );
        }
    }
}

/// Checks a list of label names for validity, reserved names and duplicates.
pub fn check_label_names(names: impl IntoIterator<Item = (String, Span)>, errors: &mut Errors) {
    let mut seen: Vec<String> = Vec::new();
    for (name, span) in names {
        if let Some(problem) = label_name_problem(&name) {
            errors.push(span, problem);
        } else if seen.contains(&name) {
            errors.push(
                span,
                format!("the label `{name}` is given twice; remove one"),
            );
        }
        seen.push(name);
    }
}

struct LabelArg(Label);

impl Parse for LabelArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `r#type = ..`, `type = ..` and `"type" = ..` all name the label `type`.
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
        let expr: Expr = input.parse()?;
        let source = match expr {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(s) => Source::Static(s.value()),
                Lit::Int(i) => Source::Static(i.base10_digits().to_owned()),
                Lit::Bool(b) => Source::Static(b.value.to_string()),
                Lit::Char(c) => Source::Static(c.value().to_string()),
                _ => Source::Arg(Expr::Lit(lit)),
            },
            Expr::Closure(closure) => Source::Ret(closure),
            other => Source::Arg(other),
        };
        Ok(LabelArg(Label {
            name,
            name_span,
            source,
        }))
    }
}

impl Args {
    /// Checks everything one declaration can know; `returns_unit` is `Some` for attributes
    /// (whether the function returns `()`).
    pub fn validate(&mut self, form: Form, returns_unit: Option<bool>) -> Errors {
        let mut errors = std::mem::take(&mut self.problems);
        let kind = form.kind();
        if let Some(name) = &self.name {
            let value = name.value();
            if let Some(problem) = metric_name_problem(&value) {
                errors.push(name.span(), problem);
            } else {
                match kind {
                    Kind::Counter if !value.ends_with("_total") || value == "_total" => errors
                        .push(
                            name.span(),
                            format!(
                                "a counter's name must end in `_total`; call it `{}_total`",
                                value.trim_end_matches('_')
                            ),
                        ),
                    Kind::Info if !value.ends_with("_info") || value == "_info" => errors.push(
                        name.span(),
                        format!(
                            "an info metric's name must end in `_info`; call it `{}_info`",
                            value.trim_end_matches('_')
                        ),
                    ),
                    _ => {}
                }
            }
        }
        if let Some(help) = &self.help {
            if help.value().trim().is_empty() {
                errors.push(
                    help.span(),
                    "the help text is empty; say what the metric measures (it is shown as `# HELP`)",
                );
            }
        }
        check_label_names(
            self.labels.iter().map(|l| (l.name.clone(), l.name_span)),
            &mut errors,
        );
        for label in &self.labels {
            let Source::Ret(closure) = &label.source else {
                continue;
            };
            if kind == Kind::Gauge {
                errors.push(
                    closure.span(),
                    format!(
                        "a gauge tracks calls in progress, so its labels cannot depend on the return value; make `{}` a literal or an expression over the arguments",
                        label.name
                    ),
                );
            } else if returns_unit == Some(true) {
                errors.push(
                    closure.span(),
                    format!(
                        "the label `{}` reads the return value, but this function returns `()`; use a literal or an expression over the arguments",
                        label.name
                    ),
                );
            } else if closure.inputs.len() != 1 {
                errors.push(
                    closure.span(),
                    format!(
                        "a return-value label is a closure of one parameter, a reference to the return value: `{} = |ret: &Ret| ..`",
                        label.name
                    ),
                );
            } else if closure.asyncness.is_some() {
                errors.push(
                    closure.span(),
                    "a return-value label closure cannot be async; compute the value synchronously",
                );
            }
        }
        errors
    }

    /// The literal label values, when every label is a literal.
    pub fn fixed_values(&self) -> Option<Vec<&str>> {
        self.labels
            .iter()
            .map(|l| match &l.source {
                Source::Static(v) => Some(v.as_str()),
                _ => None,
            })
            .collect()
    }

    /// `Spec { .. }` for the runtime.
    pub fn spec(&self, kind: Kind, label_names: TokenStream, default_mode: &str) -> TokenStream {
        let p = self.private();
        let name = self.name.as_ref().map(LitStr::value).unwrap_or_default();
        let help = self.help.as_ref().map(LitStr::value).unwrap_or_default();
        let buckets = match &self.buckets {
            Some((_, Buckets::Literals(bounds))) => {
                // A bound that is not finite was reported; no literal can spell it.
                let bounds = bounds.iter().filter(|b| b.is_finite()).map(|b| {
                    // `{:?}` always writes a float literal (`1.0`, not `1`).
                    syn::LitFloat::new(&format!("{b:?}"), Span::call_site())
                });
                quote!(#p::Option::Some(&[#(#bounds),*]))
            }
            Some((span, Buckets::Const(expr))) => {
                // Spanned at the constant, so that a failed check points there.
                let at = respan(p.clone(), *span);
                let check = quote::quote_spanned!(*span=> #at::check_buckets(#expr));
                quote!(#p::Option::Some(#check))
            }
            None => quote!(#p::Option::None),
        };
        let _ = kind;
        let mode = Ident::new(
            self.mode.map(|(_, m)| m).unwrap_or(default_mode),
            Span::call_site(),
        );
        let location = quote::quote_spanned!(self.name.span()=> #p::Location::caller());
        quote! {
            #p::Spec {
                name: #name,
                help: #help,
                label_names: #label_names,
                buckets: #buckets,
                mode: #p::GaugeMode::#mode,
                location: #location,
            }
        }
    }
}

impl ToTokens for Kind {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.type_name().to_tokens(tokens);
    }
}
