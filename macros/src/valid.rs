//! Validate phase: a declaration's arguments as written ([`crate::ast`]) checked against the
//! Prometheus naming rules ([`crate::names`]) and the metric's kind, into a [`Declaration`]
//! that expansion can trust.
//!
//! Invariants:
//! - Every problem is collected, each spanned at the offending token, so the user sees all
//!   mistakes at once. They come in reading order: the options' (in source order), then the
//!   name's, the help's, the labels'.
//! - A [`Declaration`] is returned even with errors: the offending part is dropped or left to
//!   its default, so that `family!` can still emit its static next to the errors (uses of it
//!   then do not fail as well). Whoever gets errors must emit them.
//! - Nothing here generates tokens.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Lit, LitStr, Path};

use crate::ast::{CratePath, Form, Kind, Label, LabelValueSource, MetricArgs, MetricOption};
use crate::errors::Errors;
use crate::names::{label_name_problem, metric_name_problem};

/// The gauge modes of the runtime's `GaugeMode`: (Python name, variant).
const GAUGE_MODES: [(&str, &str); 10] = [
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

/// A metric declaration that passed validation (or, with errors, what is left of it).
pub struct Declaration {
    pub kind: Kind,
    pub name: LitStr,
    pub help: LitStr,
    /// The attribute's labels, in declaration order; empty for `family!`.
    pub labels: Vec<Label>,
    pub buckets: Option<BucketBounds>,
    /// A histogram's `native(..)`, checked.
    pub native: Option<NativeSettings>,
    /// The `GaugeMode` variant `mode = ".."` named.
    pub gauge_mode: Option<&'static str>,
    /// `family!`'s `label_names = [..]`.
    pub label_names: Option<Vec<LitStr>>,
    /// `crate = path`.
    pub krate: Option<Path>,
    /// Whether calls attach the request's or span's trace as an exemplar (`exemplars = ..`;
    /// on by default, and only ever on for counters and histograms).
    pub exemplars: bool,
}

/// A histogram's `buckets = ..`.
pub enum BucketBounds {
    /// Literal bounds, checked here: finite ones only, strictly increasing.
    Literals(Vec<f64>),
    /// A constant expression of type `&[f64]`, checked in const evaluation.
    Const(Expr),
}

/// A histogram's `native(..)` settings, each checked; `None` takes the runtime's default
/// (`NativeConfig`'s documented defaults).
#[derive(Default)]
pub struct NativeSettings {
    pub bucket_factor: Option<f64>,
    pub max_buckets: Option<u32>,
    pub zero_threshold: Option<f64>,
    pub max_zero_threshold: Option<f64>,
    pub min_reset_nanos: Option<u64>,
}

/// The runtime's `MAX_BUCKETS_LIMIT`: the most window cells a native histogram may ask for.
const MAX_NATIVE_BUCKETS: u32 = 4096;

const NATIVE_SETTINGS: &str =
    "`bucket_factor`, `max_buckets`, `zero_threshold`, `max_zero_threshold`, `min_reset`";

/// Checks `native(..)`'s settings: known names, each once, values in range.
fn native_settings(settings: Vec<(syn::Ident, Expr)>, errors: &mut Errors) -> NativeSettings {
    let mut out = NativeSettings::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in settings {
        let key = name.to_string();
        if seen.contains(&key) {
            errors.push(name.span(), format!("`{key}` is given twice; keep one"));
            continue;
        }
        seen.push(key.clone());
        let span = value.span();
        match key.as_str() {
            "bucket_factor" => match number(&value) {
                Some(f) if f > 1.0 && f.is_finite() => out.bucket_factor = Some(f),
                _ => errors.push(
                    span,
                    "`bucket_factor` must be a number literal above 1, e.g. `bucket_factor = 1.1` (each bucket at most 10% wider than the one before)",
                ),
            },
            "max_buckets" => match integer(&value) {
                Some(n) if (1..=i128::from(MAX_NATIVE_BUCKETS)).contains(&n) => {
                    out.max_buckets = Some(n as u32);
                }
                _ => errors.push(
                    span,
                    format!(
                        "`max_buckets` must be an integer literal from 1 to {MAX_NATIVE_BUCKETS}, e.g. `max_buckets = 160`"
                    ),
                ),
            },
            "zero_threshold" | "max_zero_threshold" => match number(&value) {
                Some(t) if t >= 0.0 && t.is_finite() => {
                    if key == "zero_threshold" {
                        out.zero_threshold = Some(t);
                    } else {
                        out.max_zero_threshold = Some(t);
                    }
                }
                _ => errors.push(
                    span,
                    format!("`{key}` must be a finite, non-negative number literal, e.g. `{key} = 1e-9`"),
                ),
            },
            "min_reset" => match duration_nanos(&value) {
                Some(n) => out.min_reset_nanos = Some(n),
                None => errors.push(
                    span,
                    "`min_reset` must be a duration string such as \"1h\", \"30m\", \"90s\" or \"0\" (never reset)",
                ),
            },
            _ => errors.push(
                name.span(),
                format!("unknown native histogram setting `{key}`; expected one of {NATIVE_SETTINGS}"),
            ),
        }
    }
    out
}

/// An integer literal.
fn integer(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(i) => i.base10_parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// A duration string literal (`"1h"`, `"1h30m"`, `"90s"`, `"250ms"`, `"0"`) in nanoseconds.
fn duration_nanos(expr: &Expr) -> Option<u64> {
    let Expr::Lit(lit) = expr else { return None };
    let Lit::Str(s) = &lit.lit else { return None };
    let text = s.value();
    if text.trim() == "0" {
        return Some(0);
    }
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// Checks `args` of `form`; `returns_unit` is whether the attributed function returns `()`
/// (`None` for `family!`, which has no labels with values).
pub fn check(args: MetricArgs, form: Form, returns_unit: Option<bool>) -> (Declaration, Errors) {
    let mut errors = Errors::default();
    let kind = form.kind();
    let mut declaration = Declaration {
        kind,
        name: args.name,
        help: args.help,
        labels: Vec::new(),
        buckets: None,
        native: None,
        gauge_mode: None,
        label_names: None,
        krate: None,
        exemplars: matches!(kind, Kind::Counter | Kind::Histogram),
    };
    let mut labels_given = false;
    let mut exemplars_given = false;
    for option in args.options {
        match option {
            MetricOption::Labels { key, labels } => {
                if std::mem::replace(&mut labels_given, true) {
                    errors.push(
                        key.span(),
                        "`labels(..)` is given twice; list every label in one",
                    );
                }
                declaration.labels.extend(labels);
            }
            MetricOption::Buckets { key, bounds } => {
                let bounds = bucket_bounds(bounds, &mut errors);
                if declaration.buckets.replace(bounds).is_some() {
                    errors.push(key.span(), "`buckets` is given twice; keep one");
                }
            }
            MetricOption::Native { key, settings } => {
                let settings = native_settings(settings, &mut errors);
                if declaration.native.replace(settings).is_some() {
                    errors.push(key.span(), "`native` is given twice; keep one");
                }
            }
            MetricOption::Mode { key, mode } => {
                let value = mode.value();
                match GAUGE_MODES.iter().find(|(python, _)| *python == value) {
                    Some((_, variant)) => {
                        if declaration.gauge_mode.replace(variant).is_some() {
                            errors.push(key.span(), "`mode` is given twice; keep one");
                        }
                    }
                    None => errors.push(
                        mode.span(),
                        format!(
                            "unknown gauge mode `{value}`; use one of: {}",
                            GAUGE_MODES.map(|(p, _)| p).join(", ")
                        ),
                    ),
                }
            }
            MetricOption::LabelNames { key, names } => {
                check_label_names(names.iter().map(|n| (n.value(), n.span())), &mut errors);
                if declaration.label_names.replace(names).is_some() {
                    errors.push(key.span(), "`label_names` is given twice; keep one");
                }
            }
            MetricOption::Crate(CratePath { key, path }) => {
                if declaration.krate.replace(path).is_some() {
                    errors.push(key.span(), "`crate` is given twice; keep one");
                }
            }
            MetricOption::Exemplars { key, on } => {
                if std::mem::replace(&mut exemplars_given, true) {
                    errors.push(key.span(), "`exemplars` is given twice; keep one");
                }
                match kind {
                    Kind::Counter | Kind::Histogram => declaration.exemplars = on.value,
                    _ => errors.push(
                        key.span(),
                        format!(
                            "a {} has no exemplars: OpenMetrics allows exemplars on counters and histogram buckets only; remove `exemplars`",
                            kind.attr_name()
                        ),
                    ),
                }
            }
            MetricOption::NotTaken { key } => {
                errors.push(key.span(), not_taken_hint(&key.to_string(), form));
            }
        }
    }
    check_metric_name(&declaration.name, kind, &mut errors);
    if declaration.help.value().trim().is_empty() {
        errors.push(
            declaration.help.span(),
            "the help text is empty; say what the metric measures (it is shown as `# HELP`)",
        );
    }
    check_label_names(
        declaration
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.name_span)),
        &mut errors,
    );
    for label in &declaration.labels {
        check_return_value_label(label, kind, returns_unit, &mut errors);
    }
    (declaration, errors)
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

/// What to do about an option `form` does not take.
fn not_taken_hint(key: &str, form: Form) -> String {
    let attribute = matches!(form, Form::Attribute(_));
    match key {
        "buckets" => format!(
            "only histograms have buckets; remove `buckets` or use `{}`",
            if attribute {
                "#[histogram(..)]"
            } else {
                "Family<_, Histogram>"
            }
        ),
        "native" => format!(
            "only histograms have native buckets; remove `native` or use `{}`",
            if attribute {
                "#[histogram(..)]"
            } else {
                "Family<_, Histogram>"
            }
        ),
        "mode" => "`mode` is a gauge's multiprocess aggregation; remove it here".into(),
        "labels" => {
            "a family's label names come from its label set; for an array label set write `label_names = [\"a\", \"b\"]`".into()
        }
        "label_names" => "write the labels with their values: `labels(name = value, ..)`".into(),
        "exemplars" => "`exemplars` switches the attributes' automatic exemplars; a family's series take them by hand (`observe_with_trace`, `inc_with_trace`): remove it here".into(),
        _ => format!(
            "unknown option `{key}`; expected one of {}",
            known_options(form)
        ),
    }
}

fn known_options(form: Form) -> &'static str {
    match form {
        Form::Attribute(Kind::Histogram) => {
            "`labels(..)`, `buckets = [..]`, `native(..)`, `exemplars = false`, `crate = path`"
        }
        Form::Attribute(Kind::Counter) => "`labels(..)`, `exemplars = false`, `crate = path`",
        Form::Attribute(Kind::Gauge) => "`labels(..)`, `mode = \"..\"`, `crate = path`",
        Form::Attribute(_) => "`labels(..)`, `crate = path`",
        Form::Family(Kind::Histogram) => {
            "`buckets = [..]`, `native(..)`, `label_names = [..]`, `crate = path`"
        }
        Form::Family(Kind::Gauge) => "`mode = \"..\"`, `label_names = [..]`, `crate = path`",
        Form::Family(_) => "`label_names = [..]`, `crate = path`",
    }
}

/// A literal array's bounds, checked; any other expression is left to const evaluation.
fn bucket_bounds(bounds: Expr, errors: &mut Errors) -> BucketBounds {
    let Expr::Array(array) = &bounds else {
        return BucketBounds::Const(bounds);
    };
    let mut literals = Vec::new();
    for elem in &array.elems {
        match number(elem) {
            Some(v) => literals.push((elem.span(), v)),
            None => errors.push(
                elem.span(),
                "a bucket bound must be a number literal; for computed bounds use a constant: `buckets = MY_BUCKETS` with `const MY_BUCKETS: &[f64] = &[..]`",
            ),
        }
    }
    check_bounds(&literals, bounds.span(), errors);
    BucketBounds::Literals(
        literals
            .into_iter()
            .map(|(_, v)| v)
            // A bound that is not finite was reported; no literal could spell it.
            .filter(|v| v.is_finite())
            .collect(),
    )
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

fn check_metric_name(name: &LitStr, kind: Kind, errors: &mut Errors) {
    let value = name.value();
    if let Some(problem) = metric_name_problem(&value) {
        errors.push(name.span(), problem);
        return;
    }
    match kind {
        Kind::Counter if !value.ends_with("_total") || value == "_total" => errors.push(
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

/// A label reading the return value needs one to read, after the call, in one synchronous
/// closure.
fn check_return_value_label(
    label: &Label,
    kind: Kind,
    returns_unit: Option<bool>,
    errors: &mut Errors,
) {
    let LabelValueSource::ReturnValue(closure) = &label.value else {
        return;
    };
    let name = &label.name;
    if kind == Kind::Gauge {
        errors.push(
            closure.span(),
            format!(
                "a gauge tracks calls in progress, so its labels cannot depend on the return value; make `{name}` a literal or an expression over the arguments"
            ),
        );
    } else if returns_unit == Some(true) {
        errors.push(
            closure.span(),
            format!(
                "the label `{name}` reads the return value, but this function returns `()`; use a literal or an expression over the arguments"
            ),
        );
    } else if closure.inputs.len() != 1 {
        errors.push(
            closure.span(),
            format!(
                "a return-value label is a closure of one parameter, a reference to the return value: `{name} = |ret: &Ret| ..`"
            ),
        );
    } else if closure.asyncness.is_some() {
        errors.push(
            closure.span(),
            "a return-value label closure cannot be async; compute the value synchronously",
        );
    }
}
