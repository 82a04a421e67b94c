//! The macros' forms compiled on edition 2021, under the strictest lints a user might set.
#![forbid(unsafe_code)]
#![deny(warnings, clippy::all)]

#[path = "../../forms/forms.rs"]
pub mod forms;
