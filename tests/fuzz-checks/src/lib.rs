//! What each fuzz target asserts, in one place: the `cargo fuzz` targets in `fuzz/` call these
//! functions with what libFuzzer generates, and `tests/tests/fuzz_corpus.rs` calls them with
//! every committed corpus file, so a replayed input is checked exactly as it was when found.
//!
//! - [`reader::check`]: arbitrary bytes as a file of a multiprocess directory, next to a
//!   valid worker file, scraped through [`promtrack::multiprocess::DirCollector`].
//! - [`macro_input::check`]: arbitrary text, lexed into tokens, as the arguments and as the
//!   item of every attribute macro, and as the input of the derives and `family!`.
//! - [`label_values::check`]: any string as a label value and as HELP text, in both text
//!   formats, read back by the strict reader in [`exposition`].
//!
//! A check panics, with a message naming the broken property, when it finds a bug; an input
//! that is merely invalid (not UTF-8, not lexable) is not a finding and returns quietly.
//!
//! promtrack-macros is a proc-macro crate, which nothing but the compiler can link. Its
//! modules take and return `proc_macro2::TokenStream` (only its `lib.rs` touches
//! `proc_macro`), so they are compiled into this crate from their own files, at the crate root
//! where their `crate::` paths resolve, and [`macro_input`] calls them the way `lib.rs` does.
//! A module added to the macros crate must be added here too (the build says so).

pub mod exposition;
pub mod label_values;
pub mod macro_input;
pub mod reader;

// promtrack-macros' modules, as its lib.rs declares them.
#[path = "../../../macros/src/ast.rs"]
mod ast;
#[path = "../../../macros/src/attr.rs"]
mod attr;
#[path = "../../../macros/src/debug.rs"]
mod debug;
#[path = "../../../macros/src/derive.rs"]
mod derive;
#[path = "../../../macros/src/errors.rs"]
mod errors;
#[path = "../../../macros/src/expand.rs"]
mod expand;
#[path = "../../../macros/src/family.rs"]
mod family;
#[path = "../../../macros/src/instrument.rs"]
mod instrument;
#[path = "../../../macros/src/item.rs"]
mod item;
#[path = "../../../macros/src/names.rs"]
mod names;
#[path = "../../../macros/src/valid.rs"]
mod valid;
