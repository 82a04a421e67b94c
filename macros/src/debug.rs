//! `PROMTRACK_MACROS_DEBUG`: prints what a macro expanded to, at compile time.
//!
//! `PROMTRACK_MACROS_DEBUG=1 cargo build` prints every expansion on stderr;
//! `PROMTRACK_MACROS_DEBUG=get_user` only those of items named `get_user`. Cargo does not
//! rebuild a crate because an environment variable changed, so touch a file of the crate (or
//! `cargo clean -p`) to see the output again. The output is one line of tokens: `rustfmt` it.
//!
//! Invariant: printing never changes an expansion, and without the variable it prints nothing.

use proc_macro2::TokenStream;

pub fn print(macro_name: &str, item: &impl std::fmt::Display, expansion: &TokenStream) {
    let Ok(filter) = std::env::var("PROMTRACK_MACROS_DEBUG") else {
        return;
    };
    let item = item.to_string();
    if filter.is_empty() || filter == "0" || (filter != "1" && filter != item) {
        return;
    }
    // Unformatted, to keep the macros free of a pretty-printer dependency; pipe it through
    // `rustfmt` (or use `cargo expand`) for a readable layout.
    eprintln!("promtrack: `{macro_name}` on `{item}` expands to:\n{expansion}\n");
}
