use promtrack as metrics;

#[metrics::counter("smoke_total", "Smoke.", labels(source = "db"))]
fn smoke(x: u32) -> u32 {
    x + 1
}

#[test]
fn smoke_test() {
    smoke(1);
    let text = metrics::expose::encode_to_string(metrics::default_registry(), metrics::expose::Format::Text);
    assert!(text.contains("smoke_total{source=\"db\"} 1\n"), "{text}");
}
