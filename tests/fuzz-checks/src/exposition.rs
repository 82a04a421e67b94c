//! A strict reader of the two text formats as promtrack writes them, to read an exposition
//! back inside a fuzz target, where running `promtool` or Python per input would be far too
//! slow. It is stricter than the formats: it accepts only the lines promtrack writes (`# HELP`,
//! `# TYPE`, samples without timestamps, and OpenMetrics' final `# EOF`), so anything else
//! promtrack writes is a finding. The independent parsers (promtool, prometheus_client) check
//! the same inputs in the replay test, where they run once per format.
//!
//! Escapes accepted: in label values `\\`, `\"` and `\n` in both formats; in HELP text `\\`
//! and `\n`, plus `\"` in OpenMetrics. Any other backslash sequence, a raw line feed inside a
//! line, a missing final line feed, an invalid name or an unparsable value is an error.

use promtrack::expose::Format;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (with its suffix: `_total`, `_bucket`, ...).
    pub name: String,
    /// Label names and unescaped values, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value as written (`+Inf`, `NaN`, `1.5e-3`, ...).
    pub value: String,
}

impl Sample {
    /// The sample's name and labels, written back in a canonical form: a key to compare two
    /// expositions by.
    pub fn key(&self) -> String {
        let mut k = self.name.clone();
        for (n, v) in &self.labels {
            k.push_str(&format!("|{n}={v:?}"));
        }
        k
    }
}

/// An exposition read back.
#[derive(Debug, Default)]
pub struct Exposition {
    /// `(family name, unescaped HELP text)`, in order.
    pub help: Vec<(String, String)>,
    /// `(family name, type)`, in order.
    pub types: Vec<(String, String)>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

/// Reads `text` strictly as `format`; the error names the line and what is wrong with it.
pub fn parse(text: &str, format: Format) -> Result<Exposition, String> {
    let body = if text.is_empty() {
        text
    } else {
        text.strip_suffix('\n')
            .ok_or("the exposition does not end with a line feed")?
    };
    let mut lines: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.split('\n').collect()
    };
    if format == Format::OpenMetrics {
        match lines.pop() {
            Some("# EOF") => {}
            other => return Err(format!("the last line is {other:?}, not `# EOF`")),
        }
    }
    let mut out = Exposition::default();
    for (i, line) in lines.iter().enumerate() {
        read_line(line, format, &mut out).map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
    }
    Ok(out)
}

fn read_line(line: &str, format: Format, out: &mut Exposition) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix("# HELP ") {
        let (name, help) = rest
            .split_once(' ')
            .ok_or("HELP without a space after the name")?;
        check_metric_name(name)?;
        let quote_escapes = format == Format::OpenMetrics;
        out.help
            .push((name.to_owned(), unescape(help, quote_escapes, false)?.0));
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("# TYPE ") {
        let (name, kind) = rest.split_once(' ').ok_or("TYPE without a type")?;
        check_metric_name(name)?;
        let known: &[&str] = match format {
            Format::Text => &["counter", "gauge", "histogram", "summary", "untyped"],
            _ => &[
                "counter",
                "gauge",
                "histogram",
                "summary",
                "info",
                "unknown",
                "gaugehistogram",
                "stateset",
            ],
        };
        if !known.contains(&kind) {
            return Err(format!("unknown type {kind:?}"));
        }
        out.types.push((name.to_owned(), kind.to_owned()));
        return Ok(());
    }
    if line.starts_with('#') {
        return Err("a comment promtrack does not write".into());
    }
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            let (lname, after) = r.split_once("=\"").ok_or("a label without `=\"`")?;
            check_label_name(lname)?;
            let (value, after) = unescape(after, true, true)?;
            if labels.iter().any(|(n, _)| n == lname) {
                return Err(format!("label {lname} twice"));
            }
            labels.push((lname.to_owned(), value));
            if let Some(a) = after.strip_prefix(',') {
                r = a;
            } else if let Some(a) = after.strip_prefix('}') {
                rest = a;
                break;
            } else {
                return Err("a label value not followed by `,` or `}`".into());
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let finite = value.parse::<f64>().is_ok_and(|v| v.is_finite())
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b));
    if !finite && !matches!(value, "+Inf" | "-Inf" | "NaN") {
        return Err(format!("value {value:?} is not a number"));
    }
    out.samples.push(Sample {
        name: name.to_owned(),
        labels,
        value: value.to_owned(),
    });
    Ok(())
}

/// Unescapes `s`. `quoted`: a label value, which ends at the first unescaped `"` (returned
/// with the rest of the line); otherwise the whole of `s` is HELP text.
fn unescape(s: &str, quote_escapes: bool, quoted: bool) -> Result<(String, &str), String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, '"')) if quote_escapes => out.push('"'),
                Some((_, other)) => return Err(format!("invalid escape `\\{other}`")),
                None => return Err("a backslash at the end".into()),
            },
            '"' if quoted => return Ok((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    if quoted {
        Err("an unterminated label value".into())
    } else {
        Ok((out, ""))
    }
}

fn check_metric_name(n: &str) -> Result<(), String> {
    let ok = n.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
    });
    if n.is_empty() || !ok {
        return Err(format!("invalid metric name {n:?}"));
    }
    Ok(())
}

fn check_label_name(n: &str) -> Result<(), String> {
    let ok = n
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if n.is_empty() || !ok {
        return Err(format!("invalid label name {n:?}"));
    }
    Ok(())
}
