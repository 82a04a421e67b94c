//! Expand phase of the metric attributes: the statements an instrumented body becomes.
//!
//! Every expansion first declares the call site's `Site` (a static holding the family and,
//! when every label is a literal, its one series) with its link-time entry, then records the
//! call by one [`Strategy`], chosen once per function:
//!
//! | strategy | when | records through |
//! | --- | --- | --- |
//! | [`Strategy::InProgress`] | `#[gauge]` | `track`: a guard, up on entry, down on drop |
//! | [`Strategy::AfterReturn`] | a label reads the return value | `Pending`, series found after |
//! | [`Strategy::AroundAwait`] | an async body (or boxed future) | `Call`, around the `.await` |
//! | [`Strategy::SyncGuard`] | a sync body | `SyncCall`, a drop guard |
//!
//! Invariants:
//! - The body is emitted once, as written: every strategy keeps the user's tokens and spans,
//!   so the user's errors land on the user's code.
//! - Generated locals are [`Locals`], hygienic: they neither clash with nor are seen by the
//!   user's own variables.
//! - Label values over the arguments are evaluated before the body, by reference; a closure
//!   over the return value is called after it.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Kind, LabelValueSource};
use crate::expand::{link_time_entry, private_path, respan, spec};
use crate::item::Body;
use crate::valid::Declaration;

/// How an instrumented body records its call.
enum Strategy {
    /// `#[gauge]`: counts the calls in progress, with a guard that lowers the gauge when the
    /// function's frame (or future) drops.
    InProgress,
    /// A label reads the return value: the body runs in a closure (or an awaited `async move`
    /// block) whose result is kept, and the series is found after it.
    AfterReturn,
    /// An async body without return-value labels: started before the awaited body, finished
    /// after it (so a future dropped before it completes records nothing).
    AroundAwait,
    /// A sync body without return-value labels: a drop guard records when the call ends.
    SyncGuard,
}

impl Strategy {
    fn choose(declaration: &Declaration, body: &Body) -> Strategy {
        let reads_return_value = declaration
            .labels
            .iter()
            .any(|l| matches!(l.value, LabelValueSource::ReturnValue(_)));
        if declaration.kind == Kind::Gauge {
            Strategy::InProgress
        } else if reads_return_value {
            Strategy::AfterReturn
        } else if body.is_async {
            Strategy::AroundAwait
        } else {
            Strategy::SyncGuard
        }
    }
}

/// The statements that replace `body`, for a validated `declaration` of an attribute: the
/// call site's declaration, then what its [`Strategy`] records with.
pub fn instrumented_body(declaration: &Declaration, body: &Body) -> TokenStream {
    let site = CallSite {
        declaration,
        p: private_path(declaration.krate.as_ref()),
        locals: Locals::new(),
    };
    let declare = site.declare();
    let record = match Strategy::choose(declaration, body) {
        Strategy::InProgress => in_progress(&site, body),
        Strategy::AfterReturn => after_return(&site, body),
        Strategy::AroundAwait => around_await(&site, body),
        Strategy::SyncGuard => sync_guard(&site, body),
    };
    quote!(#declare #record)
}

/// [`Strategy::InProgress`]: the guard is a named local, so it drops with the function's frame
/// (or future), whatever the caller's edition's rules for temporaries in tail expressions.
fn in_progress(site: &CallSite, body: &Body) -> TokenStream {
    let p = &site.p;
    let Locals { call, .. } = &site.locals;
    let series = site.series_before_body();
    let block = &body.block;
    quote! {
        let #call = #p::track(|| #series);
        #block
    }
}

/// [`Strategy::AfterReturn`].
fn after_return(site: &CallSite, body: &Body) -> TokenStream {
    let p = &site.p;
    let Locals {
        site: site_local,
        call,
        ret,
        prerendered,
        prerendered_values,
        writer,
    } = &site.locals;
    // Values over the arguments are rendered before the body runs (it may move or change the
    // arguments) and written, in declaration order, with the return value's after it.
    let argument_writes: Vec<TokenStream> = site
        .declaration
        .labels
        .iter()
        .filter_map(|label| match &label.value {
            LabelValueSource::Arguments(expr) => {
                Some(quote_spanned!(expr.span()=> #writer.value(&(#expr));))
            }
            _ => None,
        })
        .collect();
    let (prerender, take_prerendered) = if argument_writes.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        (
            quote!(let #prerendered = #p::Prerendered::new(|#writer| { #(#argument_writes)* });),
            quote!(let mut #prerendered_values = #prerendered.values();),
        )
    };
    let writes = site.label_writes(true);
    let wrapped = wrapped(body);
    let record = site.record_type();
    quote! {
        #prerender
        let #call = #p::Pending::<#record>::start();
        #[allow(clippy::redundant_closure_call)]
        let #ret = #wrapped;
        #call.finish(|| #p::with_writer(#site_local.family(), |#writer| {
            #take_prerendered
            #(#writes)*
        }));
        #ret
    }
}

/// [`Strategy::AroundAwait`].
fn around_await(site: &CallSite, body: &Body) -> TokenStream {
    let p = &site.p;
    let record = site.record_type();
    let Locals { call, ret, .. } = &site.locals;
    let series = site.series_before_body();
    let wrapped = wrapped(body);
    quote! {
        let #call = #p::Call::<#record>::start(#series);
        let #ret = #wrapped;
        #call.finish();
        #ret
    }
}

/// [`Strategy::SyncGuard`].
fn sync_guard(site: &CallSite, body: &Body) -> TokenStream {
    let p = &site.p;
    let record = site.record_type();
    let Locals { call, .. } = &site.locals;
    let series = site.series_before_body();
    let block = &body.block;
    quote! {
        let #call = #p::SyncCall::<#record>::start(#series);
        #block
    }
}

/// The body as an expression whose value is the return value: an awaited `async move` block,
/// or a called `move` closure. The fake return fixes its type to the signature's.
fn wrapped(body: &Body) -> TokenStream {
    let Body {
        block, fake_return, ..
    } = body;
    if body.is_async {
        quote!(async move { #fake_return #block }.await)
    } else {
        quote!((move || { #fake_return #block })())
    }
}

/// What every strategy's statements share.
struct CallSite<'a> {
    declaration: &'a Declaration,
    /// The path to `__private`.
    p: TokenStream,
    locals: Locals,
}

impl CallSite<'_> {
    /// `let site = { static SITE: Site<Kind, N> = ..; <link-time entry>; &SITE };`
    fn declare(&self) -> TokenStream {
        let p = &self.p;
        let declaration = self.declaration;
        let kind = declaration.kind;
        let site = &self.locals.site;
        let n = declaration.labels.len();
        let label_names = declaration.labels.iter().map(|l| &l.name);
        let spec = spec(declaration, quote!(&[#(#label_names),*]), "LiveSum");
        let literal_values = match self.literal_values() {
            Some(values) => quote!(#p::Option::Some([#(#values),*])),
            None => quote!(#p::Option::None),
        };
        let static_site = format_ident!("PROMTRACK_SITE", span = Span::mixed_site());
        let link = link_time_entry(p, &static_site);
        quote! {
            let #site = {
                static #static_site: #p::Site<#p::#kind, #n> = #p::Site::new(#spec, #literal_values);
                #link
                &#static_site
            };
        }
    }

    /// The generic arguments of the guard that records (`Call`, `SyncCall`, `Pending`): the
    /// metric type, and `false` when `exemplars = false` switched the call's exemplars off
    /// (the runtime's default is on; a summary ignores it).
    fn record_type(&self) -> TokenStream {
        let p = &self.p;
        let kind = self.declaration.kind;
        match self.declaration.exemplars {
            true => quote!(#p::#kind),
            false => quote!(#p::#kind, false),
        }
    }

    /// The label values, when every label is a literal: the `Site` then holds the series.
    fn literal_values(&self) -> Option<Vec<&str>> {
        self.declaration
            .labels
            .iter()
            .map(|l| match &l.value {
                LabelValueSource::Literal(v) => Some(v.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The series, found before the body runs (no label reads the return value).
    fn series_before_body(&self) -> TokenStream {
        let Locals { site, writer, .. } = &self.locals;
        let p = &self.p;
        if self.literal_values().is_some() {
            quote!(#site.series())
        } else {
            let writes = self.label_writes(false);
            quote!(#p::with_writer(#site.family(), |#writer| { #(#writes)* }))
        }
    }

    /// The label writes, in declaration order; with `prerendered`, the values over the
    /// arguments come from the prerendered iterator instead of their expressions.
    fn label_writes(&self, prerendered: bool) -> Vec<TokenStream> {
        let Locals {
            ret,
            prerendered_values,
            writer,
            ..
        } = &self.locals;
        self.declaration
            .labels
            .iter()
            .map(|label| match &label.value {
                LabelValueSource::Literal(v) => quote!(#writer.value(#v);),
                LabelValueSource::Arguments(_) if prerendered => {
                    quote!(#writer.value(#prerendered_values.next().unwrap_or_default());)
                }
                LabelValueSource::Arguments(expr) => {
                    quote_spanned!(expr.span()=> #writer.value(&(#expr));)
                }
                LabelValueSource::ReturnValue(closure) => {
                    // Bound first, so that "not a label value" points at the closure alone.
                    let span = closure.span();
                    let at = respan(self.p.clone(), span);
                    let value =
                        Ident::new("__promtrack_value", Span::mixed_site().located_at(span));
                    let writer = Ident::new("__promtrack_w", Span::mixed_site().located_at(span));
                    quote_spanned! {span=>
                        let #value = #at::label_of(&#ret, #closure);
                        #writer.value(&#value);
                    }
                }
            })
            .collect()
    }
}

/// The local names generated code uses. They carry `Span::mixed_site()` hygiene, so they can
/// neither clash with nor be seen by the user's own variables.
struct Locals {
    /// The `&'static Site` of the call site.
    site: Ident,
    /// The guard or pending call that records.
    call: Ident,
    /// The return value, kept while labels read it.
    ret: Ident,
    /// The label values over the arguments, rendered before the body.
    prerendered: Ident,
    /// The iterator over `prerendered`.
    prerendered_values: Ident,
    /// The label writer.
    writer: Ident,
}

impl Locals {
    fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Self {
            site: local("__promtrack_site"),
            call: local("__promtrack_call"),
            ret: local("__promtrack_ret"),
            prerendered: local("__promtrack_pre"),
            prerendered_values: local("__promtrack_pre_values"),
            writer: local("__promtrack_w"),
        }
    }
}
