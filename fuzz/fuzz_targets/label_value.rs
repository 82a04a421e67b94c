//! Any string as a label value and as HELP text, in both formats, read back strictly (see
//! `promtrack_fuzz_checks::label_values`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promtrack_fuzz_checks::label_values::check(data));
