//! Arbitrary text, lexed, as the arguments and the item of every attribute and as the input of
//! the derives and `family!` (see `promtrack_fuzz_checks::macro_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| promtrack_fuzz_checks::macro_input::check(data));
