//! What macro-generated code reaches through `::promtrack::__private`. Not a public API: its
//! shape may change in any release, which is why `promtrack` depends on `promtrack-macros` with
//! an exact version.

pub use crate::context::{Exclusion, current_exclusion, exclude};

/// Called once, when the default registry is first created: registers what was declared at
/// link time. (Filled in by the macros' link-time registration.)
pub(crate) fn on_default_registry_init(_registry: &crate::Registry) {}
