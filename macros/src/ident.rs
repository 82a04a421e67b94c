//! The local names generated code uses. They carry `Span::mixed_site()` hygiene, so they can
//! neither clash with nor be seen by the user's own variables.

use proc_macro2::{Ident, Span};

pub struct Locals {
    pub site: Ident,
    pub call: Ident,
    pub ret: Ident,
    pub pre: Ident,
    pub pre_values: Ident,
    pub w: Ident,
}

impl Locals {
    pub fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Self {
            site: local("__promtrack_site"),
            call: local("__promtrack_call"),
            ret: local("__promtrack_ret"),
            pre: local("__promtrack_pre"),
            pre_values: local("__promtrack_pre_values"),
            w: local("__promtrack_w"),
        }
    }
}
