//! The rules a remote function must follow, checked all at once.
//!
//! Every violation becomes a `syn::Error` spanned on the offending tokens
//! and saying what to write instead; they are combined so the user sees them
//! all in one build.

use proc_macro2::Span;
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{FnArg, Ident, Lifetime, Safety, Type, TypeImplTrait, TypeReference};

use crate::parse::{self, ContextArgs, Kind, Output, RemoteFn};

/// What the three types of a `Context<S, I, O>` are, for the messages.
const CONTEXT_TYPES: &str = "S is the value `ctx.started(..)` hands the caller, I the items \
                             the caller sends, O the items this function sends";

/// A remote function that passed validation, ready to expand.
pub struct Signature {
    /// The wire name given with `name = ".."`, in place of the function's
    /// module path.
    pub wire_name: Option<syn::LitStr>,
    /// Argument names and types, in order (without a `StreamContext` or
    /// `Context`).
    pub args: Vec<(Ident, Type)>,
    /// What the stub's call carries and how the reply is built.
    pub shape: Shape,
}

pub enum Shape {
    /// Returns `T` (`()` when there is no return type).
    Value(Type),
    /// Returns `Result<T, E>`: the call yields `T`, `E` travels as an error.
    Result(Type),
    /// Returns `impl Stream<Item = T>`.
    Stream(Type),
    /// Takes `ctx: StreamContext<T>` first; returns `()` or (if `fallible`)
    /// `Result<(), E>`.
    Context {
        ctx: Ident,
        item: Type,
        fallible: bool,
    },
    /// A `#[context]` function (boxed: it is the largest shape).
    Dialog(Box<Dialog>),
}

/// A `#[context]` function: takes `ctx: Context<S, I, O>` first and
/// returns `T` or (if `fallible`) `Result<T, E>`.
pub struct Dialog {
    pub ctx: Ident,
    /// `S`, what `ctx.started` hands the caller.
    pub started: Type,
    /// `I`, the items the caller sends.
    pub inbound: Type,
    /// `O`, the items the function sends.
    pub outbound: Type,
    /// `T`, what the call yields when the function returns.
    pub value: Type,
    pub fallible: bool,
}

struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    fn push_at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.add(syn::Error::new(span, message));
    }

    fn add(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }
}

/// The attribute's one option, `name = "module::function"`: a wire name
/// that stays when the function moves (or lives in another crate of
/// another build), instead of its module path.
fn wire_name(args: &proc_macro2::TokenStream, attr: &str) -> syn::Result<Option<syn::LitStr>> {
    if args.is_empty() {
        return Ok(None);
    }
    let usage = format!(
        "{attr} takes one option, `name = \"module::function\"` (the function's wire name)"
    );
    let meta: syn::MetaNameValue =
        syn::parse2(args.clone()).map_err(|_| syn::Error::new_spanned(args, &usage))?;
    if !meta.path.is_ident("name") {
        return Err(syn::Error::new_spanned(&meta.path, usage));
    }
    let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(name),
        ..
    }) = &meta.value
    else {
        return Err(syn::Error::new_spanned(&meta.value, usage));
    };
    let value = name.value();
    let (module, function) = value.rsplit_once("::").unwrap_or(("", ""));
    let plain = |part: &str| {
        !part.is_empty()
            && part.split("::").all(|segment| {
                !segment.is_empty() && segment.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    if !plain(module) || !plain(function) {
        return Err(syn::Error::new_spanned(
            name,
            format!(
                "`{value}` is not a wire name: write it as a path, `module::function` (the \
                 module part is what `enable_modules` names)"
            ),
        ));
    }
    Ok(Some(name.clone()))
}

pub fn remote_fn(model: &RemoteFn, kind: Kind) -> syn::Result<Signature> {
    let attr = kind.attribute();
    let sig = &model.item.sig;
    let mut errors = Errors(None);

    let wire_name = match wire_name(&model.attr_args, attr) {
        Ok(name) => name,
        Err(err) => {
            errors.add(err);
            None
        }
    };
    if let Some(receiver) = sig.receiver() {
        errors.push(
            receiver,
            format!(
                "{attr} cannot be used on a method: remote functions are free functions \
                 found by path; move it out of the impl block and pass the state it needs \
                 as an owned argument"
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(
            &sig.generics,
            format!(
                "{attr} functions cannot be generic: the dispatch table needs one concrete \
                 signature per function; use concrete types (one wrapper per type if needed)"
            ),
        );
    }
    if let Safety::Unsafe(token) = &sig.safety {
        errors.push(token, format!("{attr} functions cannot be `unsafe`: another actor could call them with any arguments; keep the unsafe block inside a safe function"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(
            abi,
            format!("{attr} functions cannot declare an ABI; remove `extern`"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, format!("{attr} functions cannot be variadic"));
    }

    if kind == Kind::Context && sig.asyncness.is_none() {
        errors.push(
            sig.fn_token,
            "a #[tractor::context] function must be `async`: it talks with its caller \
             through its `Context` (`ctx.started(v).await`, `ctx.open_stream().await`); \
             write `async fn`",
        );
    }

    let mut args = Vec::new();
    // A stream's `StreamContext`: its name and item type.
    let mut context = None;
    let mut has_stream_context = false;
    // A context function's `Context`: its name and `S`, `I`, `O`.
    let mut dialog = None;
    // Whether any argument is a `Context` (for `#[rpc]` / `#[stream]`, one
    // that is reported as misplaced).
    let mut has_context = false;
    for (position, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(typed) = arg else { continue };
        let ident = parse::plain_ident(&typed.pat);
        if ident.is_none() {
            errors.push(
                &typed.pat,
                format!(
                    "{attr} arguments must be plain names, because the stub `{}::call` takes \
                     them by name; name the argument and destructure it inside the body \
                     (`arg: {}` then `let <pattern> = arg;`)",
                    sig.ident,
                    typed.ty.to_token_stream()
                ),
            );
        }
        if let Some(item) = parse::stream_context_item(&typed.ty) {
            has_stream_context = true;
            match (kind, position) {
                (Kind::Stream, position) => {
                    if position != 0 {
                        errors.push(
                            &typed.ty,
                            "the `StreamContext` must be the function's first argument",
                        );
                    }
                    check_owned(item, "stream item", attr, &mut errors);
                    context = ident.map(|ident| (ident.clone(), item.clone()));
                }
                (Kind::Rpc | Kind::Context, _) => errors.push(
                    &typed.ty,
                    format!(
                        "a `StreamContext` argument makes this a stream: use \
                         #[tractor::stream] instead of {attr}"
                    ),
                ),
            }
            continue;
        }
        if let Some(found) = parse::context_args(&typed.ty) {
            match kind {
                Kind::Context => {
                    if has_context {
                        errors.push(
                            &typed.ty,
                            "a #[tractor::context] function takes one `Context`, as its first \
                             argument: remove this one (the first serves the whole dialog)",
                        );
                    } else if position != 0 {
                        errors.push(
                            &typed.ty,
                            "the `Context` must be the function's first argument: move it \
                             before the others",
                        );
                    }
                    has_context = true;
                    match found {
                        ContextArgs::Three([started, inbound, outbound]) => {
                            check_owned(started, "started value", attr, &mut errors);
                            check_owned(inbound, "context item", attr, &mut errors);
                            check_owned(outbound, "context item", attr, &mut errors);
                            if position == 0 {
                                let types = [started, inbound, outbound].map(Type::clone);
                                dialog = ident.map(|ident| (ident.clone(), types));
                            }
                        }
                        ContextArgs::Other(count) => errors.push(
                            &typed.ty,
                            format!(
                                "`Context` takes three type arguments, not {count}: write \
                                 `Context<S, I, O>`, where {CONTEXT_TYPES} (`()` for a \
                                 direction that carries nothing)"
                            ),
                        ),
                    }
                    continue;
                }
                Kind::Rpc | Kind::Stream if found.is_three() => {
                    has_context = true;
                    errors.push(
                        &typed.ty,
                        format!(
                            "a `Context` argument makes this a context function: use \
                             #[tractor::context] instead of {attr}"
                        ),
                    );
                    continue;
                }
                Kind::Rpc | Kind::Stream => {}
            }
        }
        check_owned(&typed.ty, "argument", attr, &mut errors);
        if let Some(ident) = ident {
            args.push((ident.clone(), (*typed.ty).clone()));
        }
    }

    let first_typed = sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(typed) => Some(typed),
        FnArg::Receiver(_) => None,
    });
    // A `&Context` is already reported as borrowed (take it by value).
    let borrowed_context = first_typed.is_some_and(|typed| {
        matches!(&*typed.ty, Type::Reference(reference)
            if parse::context_args(&reference.elem).is_some())
    });
    let context_missing = kind == Kind::Context
        && !has_context
        && !has_stream_context
        && !borrowed_context
        && sig.receiver().is_none();
    if context_missing {
        match first_typed {
            None => errors.push_at(
                sig.paren_token.span.join(),
                format!(
                    "a #[tractor::context] function takes a `tractor::Context<S, I, O>` as its \
                     first argument: write `async fn {}(ctx: tractor::Context<S, I, O>)`, \
                     where {CONTEXT_TYPES}",
                    sig.ident
                ),
            ),
            Some(typed) => errors.push(
                typed,
                format!(
                    "a #[tractor::context] function takes a `tractor::Context<S, I, O>` as its \
                     first argument, before the others: write `ctx: tractor::Context<S, I, O>` \
                     first, where {CONTEXT_TYPES}"
                ),
            ),
        }
    }

    let output = Output::of(&sig.output);
    let shape = match (kind, context) {
        (Kind::Rpc, _) => match unary(output, attr, &mut errors) {
            (value, false) => Shape::Value(value),
            (value, true) => Shape::Result(value),
        },
        (Kind::Context, _) => {
            let (value, fallible) = unary(output, attr, &mut errors);
            match dialog {
                Some((ctx, [started, inbound, outbound])) => Shape::Dialog(Box::new(Dialog {
                    ctx,
                    started,
                    inbound,
                    outbound,
                    value,
                    fallible,
                })),
                // Its absence is already reported.
                None => Shape::Value(value),
            }
        }
        (Kind::Stream, Some((ctx, item))) => {
            if sig.asyncness.is_none() {
                errors.push(
                    sig.fn_token,
                    "a function that takes a `StreamContext` must be `async`: it pushes \
                     with `ctx.send_yield(v).await`",
                );
            }
            let fallible = match output {
                Output::Unit => false,
                Output::Result { ok } if is_unit(ok) => true,
                _ => {
                    errors.push(
                        &sig.output,
                        "a function that takes a `StreamContext` returns `()` or \
                         `Result<(), E>`: its items go through `ctx.send_yield`",
                    );
                    false
                }
            };
            Shape::Context {
                ctx,
                item,
                fallible,
            }
        }
        (Kind::Stream, None) => match output {
            Output::Stream { item, .. } => {
                check_owned(item, "stream item", attr, &mut errors);
                Shape::Stream(item.clone())
            }
            _ => {
                // With a `Context`, the one error is to use #[tractor::context].
                if !has_context {
                    errors.push(
                        &sig.ident,
                        "#[tractor::stream] functions return `impl Stream<Item = T>` or take a \
                         `tractor::StreamContext<T>` as their first argument",
                    );
                }
                Shape::Stream(syn::parse_quote!(()))
            }
        },
    };

    match errors.0 {
        Some(err) => Err(err),
        None => Ok(Signature {
            wire_name,
            args,
            shape,
        }),
    }
}

/// What a call of a function answered once yields, and whether the
/// function returns a `Result` (whose error travels as a remote error).
fn unary(output: Output<'_>, attr: &str, errors: &mut Errors) -> (Type, bool) {
    let unit: Type = syn::parse_quote!(());
    match output {
        Output::Unit => (unit, false),
        Output::Value(ty) => {
            check_owned(ty, "return type", attr, errors);
            (ty.clone(), false)
        }
        Output::Result { ok } => {
            // Only the value travels as itself; the error travels as text.
            check_owned(ok, "return type", attr, errors);
            (ok.clone(), true)
        }
        Output::Stream { bounds, .. } => {
            errors.push(
                bounds,
                format!("this function returns a stream: use #[tractor::stream] instead of {attr}"),
            );
            (unit, false)
        }
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// Arguments are deserialized in another process and returns are sent back:
/// neither can borrow.
fn check_owned(ty: &Type, what: &str, attr: &str, errors: &mut Errors) {
    struct Borrows<'a, 'e> {
        what: &'a str,
        attr: &'a str,
        errors: &'e mut Errors,
    }
    impl<'ast> Visit<'ast> for Borrows<'_, '_> {
        fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
            let instead = owned_alternative(&reference.elem);
            self.errors.push(
                reference,
                format!(
                    "a remote function's {} must be owned: it crosses a process boundary; \
                     use {instead}",
                    self.what
                ),
            );
        }
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            if lifetime.ident != "static" {
                self.errors.push(
                    lifetime,
                    format!(
                        "a remote function's {} cannot borrow (`{lifetime}`): it crosses a \
                         process boundary; use an owned type",
                        self.what
                    ),
                );
            }
        }
        fn visit_type_impl_trait(&mut self, bounds: &'ast TypeImplTrait) {
            self.errors.push(
                bounds,
                format!(
                    "{} needs a concrete {}: the value is serialized across processes; \
                     replace `impl Trait` with a concrete type",
                    self.attr, self.what
                ),
            );
        }
        fn visit_type(&mut self, ty: &'ast Type) {
            visit::visit_type(self, ty);
        }
    }
    Borrows { what, attr, errors }.visit_type(ty);
}

fn owned_alternative(elem: &Type) -> String {
    match elem {
        Type::Path(path) if path.path.is_ident("str") => "`String` instead of `&str`".into(),
        Type::Slice(slice) => format!("`Vec<{}>` instead of a slice", slice.elem.to_token_stream()),
        other => format!("`{}` by value", other.to_token_stream()),
    }
}
