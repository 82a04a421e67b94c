//! Any string as a label value and as HELP text must come out of both encoders so that a strict
//! parser reads back exactly that string.

use promtrack::expose::{Format, encode_to_string};
use promtrack::{Counter, Family, Gauge, Registry};

use crate::exposition;

/// The family whose series carry the values as their `value` label.
pub const FAMILY: &str = "fuzz_label_values_total";

/// The formats checked, with their names.
pub const FORMATS: [(Format, &str); 2] =
    [(Format::Text, "text"), (Format::OpenMetrics, "openmetrics")];

/// Renders one exposition holding every value twice: as the `value` label of a series of
/// [`FAMILY`] (incremented once per occurrence), and as the HELP text of a gauge family
/// `fuzz_help_<i>` of its own. The replay test hands this to the independent parsers.
pub fn render(values: &[&str], format: Format) -> String {
    let registry = Registry::new();
    let family = Family::<[&str; 1], Counter>::new(FAMILY, "Any string as a label value.")
        .label_names(["value"])
        .max_series(values.len().max(1));
    registry
        .register(&family)
        .expect("one family of a fixed, valid name");
    let mut helps = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        family.with(&[v]).inc();
        let help = Family::<(), Gauge>::new(format!("fuzz_help_{i}"), *v);
        registry.register(&help).expect("distinct, valid names");
        helps.push(help);
    }
    encode_to_string(&registry, format)
}

/// Checks `input` as a value if it is UTF-8 (a `&str` is all a label value can be).
pub fn check(input: &[u8]) {
    if let Ok(value) = std::str::from_utf8(input) {
        check_str(value);
    }
}

/// Checks one value in both formats: the exposition reads back strictly, the series' label
/// reads back as `value`, and so does the HELP text. Panics naming what differs.
pub fn check_str(value: &str) {
    for (format, format_name) in FORMATS {
        let text = render(&[value], format);
        let exp = exposition::parse(&text, format)
            .unwrap_or_else(|e| panic!("{format_name}: {e}\nvalue: {value:?}\n{text}"));
        let sample_name = FAMILY; // the counter's samples keep `_total` in both formats
        let series: Vec<_> = exp
            .samples
            .iter()
            .filter(|s| s.name == sample_name)
            .collect();
        assert_eq!(
            series.len(),
            1,
            "{format_name}: one series expected\n{text}"
        );
        assert_eq!(
            series[0].labels,
            [("value".to_owned(), value.to_owned())],
            "{format_name}: the label value does not read back\n{text}"
        );
        assert_eq!(series[0].value, "1", "{format_name}\n{text}");
        let help = exp.help.iter().find(|(n, _)| n == "fuzz_help_0");
        assert_eq!(
            help.map(|(_, h)| h.as_str()),
            Some(value),
            "{format_name}: the HELP text does not read back\n{text}"
        );
    }
}
