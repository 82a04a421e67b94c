//! Parse phase for the handler attributes' item: the function an attribute sits on, parsed as
//! little as possible, and the one place that knows where its body is to be rewritten.
//!
//! Only the attributes, visibility and signature are parsed; the body is kept as tokens. A body
//! that does not parse (the user is mid-edit, or it has a syntax error) is still wrapped, so
//! rustc reports the user's own error at the user's own token instead of ours — the trick
//! `tracing-attributes` uses. The body is parsed only to recognise a function whose body is
//! `Box::pin(async move { .. })` (what `#[async_trait]` generates): there the future inside is
//! what gets instrumented.
//!
//! Invariant: the code an attribute wraps ([`Body`]) is emitted once, its tokens and spans as
//! written, and everything else of the function (attributes, visibility, signature) unchanged.

use proc_macro2::{Group, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Block, Expr, ReturnType, Signature, Stmt, Type, Visibility};

/// A function with its body kept as tokens.
pub struct Function {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    /// The body, braces included.
    pub body: Group,
}

impl Parse for Function {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        if input.peek(syn::Token![;]) {
            return Err(syn::Error::new(
                sig.ident.span(),
                "this function has no body to instrument; put the attribute on the function's implementation instead of its declaration",
            ));
        }
        let body: Group = input.parse()?;
        if body.delimiter() != proc_macro2::Delimiter::Brace {
            return Err(syn::Error::new(body.span(), "expected the function's body"));
        }
        Ok(Self {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

/// Parses `item` as a function, or says clearly what the attribute goes on.
pub fn parse(item: TokenStream, attr: &str) -> syn::Result<Function> {
    syn::parse2::<Function>(item.clone()).map_err(|e| {
        // A signature that parsed but has no body keeps its precise message.
        if e.to_string().contains("no body to instrument") {
            return e;
        }
        let span = item
            .clone()
            .into_iter()
            .find(|t| !matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == '#'))
            .map_or_else(Span::call_site, |t| t.span());
        let what = describe_item(item);
        syn::Error::new(
            span,
            format!("`#[{attr}]` goes on a function (`fn` or `async fn`), not on {what}"),
        )
    })
}

fn describe_item(item: TokenStream) -> &'static str {
    match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Struct(_)) => "a struct",
        Ok(syn::Item::Enum(_)) => "an enum",
        Ok(syn::Item::Static(_)) => {
            "a static (declare standalone metrics with `promtrack::family!`)"
        }
        Ok(syn::Item::Const(_)) => "a const",
        Ok(syn::Item::Impl(_)) => "an impl block (put it on each method)",
        Ok(syn::Item::Mod(_)) => "a module",
        Ok(syn::Item::Trait(_)) => "a trait",
        _ => "this item",
    }
}

/// How the body runs.
pub enum Shape {
    /// A plain sync function.
    Sync,
    /// An `async fn`.
    Async,
    /// A sync function returning `Box::pin(async move { .. })`: instrument the inner future.
    Boxed(Box<Block>),
}

/// The code an attribute wraps: the function's body, or the future of a boxed body.
pub struct Body {
    /// Braces included, spanned as written.
    pub block: Group,
    /// Whether it runs as a future: an `async fn`'s body, or a boxed future.
    pub is_async: bool,
    /// [`Function::fake_return`] for a block that wraps it; nothing for a boxed future, whose
    /// output type the signature does not name.
    pub fake_return: TokenStream,
}

impl Function {
    pub fn shape(&self) -> Shape {
        if self.sig.asyncness.is_some() {
            return Shape::Async;
        }
        match syn::parse2::<Block>(self.body.to_token_stream()) {
            Ok(block) if boxed_future(&block).is_some() => Shape::Boxed(Box::new(block)),
            _ => Shape::Sync,
        }
    }

    /// Whether the function (or its boxed future) returns `()`, when that is certain.
    pub fn returns_unit(&self, shape: &Shape) -> bool {
        match shape {
            Shape::Boxed(_) => false,
            _ => match &self.sig.output {
                ReturnType::Default => true,
                ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
            },
        }
    }

    /// The error for `#[attr]` on a `const fn`, which cannot do `what` at run time.
    pub fn const_fn_error(&self, attr: &str, what: &str) -> Option<syn::Error> {
        self.sig.constness.map(|constness| {
            syn::Error::new(
                constness.span(),
                format!("`#[{attr}]` cannot go on a `const fn`: it {what} at run time; remove `const` or the attribute"),
            )
        })
    }

    /// The code to wrap, for a function of this `shape`.
    pub fn body_to_wrap(&self, shape: &Shape) -> Body {
        match shape {
            Shape::Boxed(block) => Body {
                block: boxed_inner(block),
                is_async: true,
                fake_return: TokenStream::new(),
            },
            Shape::Sync | Shape::Async => Body {
                block: self.body.clone(),
                is_async: matches!(shape, Shape::Async),
                fake_return: self.fake_return(),
            },
        }
    }

    /// The function with `statements` in place of its [`Function::body_to_wrap`].
    pub fn with_body_replaced(&self, shape: &Shape, statements: TokenStream) -> TokenStream {
        let body = match shape {
            Shape::Boxed(block) => rebuild_boxed(block, statements),
            Shape::Sync | Shape::Async => statements,
        };
        let Function {
            attrs, vis, sig, ..
        } = self;
        let mut group = Group::new(proc_macro2::Delimiter::Brace, body);
        group.set_span(self.body.span());
        quote!(#(#attrs)* #vis #sig #group)
    }

    /// `if false { return <a value of the return type>; }`, spanned at the return type, for the
    /// start of a block that wraps the body: it fixes the block's type, so `?` and type errors
    /// resolve against the signature and land on the user's code. Nothing for `impl Trait`
    /// returns (which a `let` cannot name) or `()`.
    fn fake_return(&self) -> TokenStream {
        let ReturnType::Type(_, ty) = &self.sig.output else {
            return TokenStream::new();
        };
        if contains_impl_trait(ty) {
            return TokenStream::new();
        }
        let fake = syn::Ident::new("__promtrack_fake_return", Span::mixed_site());
        quote::quote_spanned! {ty.span()=>
            #[allow(
                unknown_lints,
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                let #fake: #ty = loop {};
                return #fake;
            }
        }
    }
}

/// The `async move { .. }` block of a body ending in `Box::pin(async move { .. })`.
fn boxed_future(block: &Block) -> Option<&syn::ExprAsync> {
    let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last() else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if !segments.ends_with(&["Box".to_owned(), "pin".to_owned()]) || call.args.len() != 1 {
        return None;
    }
    match call.args.first() {
        Some(Expr::Async(fut)) if fut.capture.is_some() => Some(fut),
        _ => None,
    }
}

/// Rebuilds a `Box::pin(async move { .. })` body with the future's block replaced by `inner`.
fn rebuild_boxed(block: &Block, inner: TokenStream) -> TokenStream {
    let mut block = block.clone();
    if let Some(Stmt::Expr(Expr::Call(call), None)) = block.stmts.last_mut() {
        if let Some(Expr::Async(fut)) = call.args.first_mut() {
            let span = fut.block.brace_token.span;
            let mut group = Group::new(proc_macro2::Delimiter::Brace, inner);
            group.set_span(span.join());
            match syn::parse2::<Block>(group.into_token_stream()) {
                Ok(b) => fut.block = b,
                Err(e) => return e.to_compile_error(),
            }
        }
    }
    let stmts = &block.stmts;
    quote!(#(#stmts)*)
}

/// The future block's contents, as a brace group.
fn boxed_inner(block: &Block) -> Group {
    let fut = boxed_future(block).expect("shape checked");
    let stmts = &fut.block.stmts;
    let mut group = Group::new(proc_macro2::Delimiter::Brace, quote!(#(#stmts)*));
    group.set_span(fut.block.brace_token.span.join());
    group
}

fn contains_impl_trait(ty: &Type) -> bool {
    fn any_impl(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => any_impl(g.stream()),
            _ => false,
        })
    }
    any_impl(ty.to_token_stream())
}
