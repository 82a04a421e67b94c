//! The naming rules of the Prometheus data model, checked at compile time. They mirror the
//! runtime's checks at registration (`runtime/src/registry.rs`), so a declaration a macro
//! accepts is one the registry accepts.
//!
//! Invariant: each rule returns the problem as a message that names the fix, and never a
//! token or a span (the caller places it).

/// Why `name` is not a valid metric name, if it is not.
pub fn metric_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        return None;
    }
    let suggestion: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suggestion = match suggestion.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("_{suggestion}"),
        None => "my_metric".to_owned(),
        _ => suggestion,
    };
    Some(format!(
        "`{name}` is not a valid metric name: use letters, digits, `_` and `:`, not starting with a digit (e.g. `{suggestion}`)"
    ))
}

/// Why `name` is not a valid label name, if it is not: malformed, reserved for Prometheus
/// (`__` first), or reserved for a kind's own samples (`le`, `quantile`).
pub fn label_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Some(format!(
            "`{name}` is not a valid label name: use letters, digits and `_`, not starting with a digit"
        ));
    }
    if name.starts_with("__") {
        return Some(format!(
            "label names starting with `__` are reserved for Prometheus itself; rename `{name}` (e.g. `{}`)",
            name.trim_start_matches('_')
        ));
    }
    match name {
        "le" => Some(
            "the label name `le` is reserved for histogram buckets; rename it (e.g. `limit`)"
                .into(),
        ),
        "quantile" => Some(
            "the label name `quantile` is reserved for summary quantiles; rename it (e.g. `q`)"
                .into(),
        ),
        _ => None,
    }
}

/// Strips the raw-identifier prefix: `r#type` names the label `type`.
pub fn unraw(ident: &proc_macro2::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert!(metric_name_problem("http_requests_total").is_none());
        assert!(metric_name_problem("ns:x").is_none());
        let p = metric_name_problem("http-requests").unwrap();
        assert!(p.contains("`http_requests`"), "{p}");
        assert!(metric_name_problem("1x").unwrap().contains("`_1x`"));
        assert!(metric_name_problem("").is_some());
    }

    #[test]
    fn label_names() {
        assert!(label_name_problem("method").is_none());
        assert!(label_name_problem("__x").unwrap().contains("`x`"));
        assert!(label_name_problem("le").is_some());
        assert!(label_name_problem("quantile").is_some());
        assert!(label_name_problem("a-b").is_some());
    }
}
