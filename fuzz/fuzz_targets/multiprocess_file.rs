//! Arbitrary bytes as a worker file of a multiprocess directory, next to a valid one, scraped
//! through `DirCollector` (see `promtrack_fuzz_checks::reader`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promtrack_fuzz_checks::reader::check(data));
