//! The model of a `#[rpc]` / `#[stream]` / `#[context]` function: what the
//! macro read.
//!
//! Parsing never judges: anything syntactically a function becomes a
//! [`RemoteFn`]; the rules live in `validate`.

use proc_macro2::TokenStream;
use syn::{
    GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type, TypeImplTrait, TypeParamBound,
};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rpc,
    Stream,
    Context,
}

impl Kind {
    pub fn attribute(self) -> &'static str {
        match self {
            Kind::Rpc => "#[tractor::rpc]",
            Kind::Stream => "#[tractor::stream]",
            Kind::Context => "#[tractor::context]",
        }
    }
}

/// A function under `#[rpc]`, `#[stream]` or `#[context]`, as written.
pub struct RemoteFn {
    pub item: ItemFn,
    /// Tokens given inside the attribute's parentheses (none are accepted).
    pub attr_args: TokenStream,
}

impl RemoteFn {
    pub fn parse(attr_args: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<Self> {
        let item = function(item, kind.attribute())?;
        Ok(RemoteFn { item, attr_args })
    }
}

/// The item under `attribute`, which must be a function.
pub fn function(item: TokenStream, attribute: &str) -> syn::Result<ItemFn> {
    match syn::parse2::<syn::Item>(item)? {
        syn::Item::Fn(function) => Ok(function),
        other => {
            let what = match &other {
                syn::Item::Struct(_) => "a struct",
                syn::Item::Enum(_) => "an enum",
                syn::Item::Impl(_) => "an impl block",
                syn::Item::Mod(_) => "a module",
                syn::Item::Trait(_) => "a trait",
                syn::Item::Const(_) | syn::Item::Static(_) => "a constant",
                _ => "this item",
            };
            Err(syn::Error::new_spanned(
                other,
                format!("{attribute} goes on a function (`fn` or `async fn`), not on {what}"),
            ))
        }
    }
}

/// What a function returns, recognised by syntax only (a type alias that
/// hides `Result` or `impl Stream` is not seen through).
pub enum Output<'a> {
    /// No return type: `()`.
    Unit,
    /// `Result<T, ..>` (any path whose last segment is `Result`): `T`.
    Result { ok: &'a Type },
    /// `impl Stream<Item = T>`: `T`.
    Stream {
        item: &'a Type,
        bounds: &'a TypeImplTrait,
    },
    /// Any other type.
    Value(&'a Type),
}

impl<'a> Output<'a> {
    pub fn of(ret: &'a ReturnType) -> Self {
        match ret {
            ReturnType::Default => Output::Unit,
            ReturnType::Type(_, ty) => Self::of_type(ty),
        }
    }

    fn of_type(ty: &'a Type) -> Self {
        match ty {
            Type::Paren(paren) => Self::of_type(&paren.elem),
            Type::Group(group) => Self::of_type(&group.elem),
            Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
            Type::Path(path) if path.qself.is_none() => {
                let Some(last) = path.path.segments.last() else {
                    return Output::Value(ty);
                };
                if last.ident != "Result" {
                    return Output::Value(ty);
                }
                match first_type_argument(&last.arguments) {
                    Some(ok) => Output::Result { ok },
                    None => Output::Value(ty),
                }
            }
            Type::ImplTrait(bounds) => match stream_item(bounds) {
                Some(item) => Output::Stream { item, bounds },
                None => Output::Value(ty),
            },
            _ => Output::Value(ty),
        }
    }
}

fn first_type_argument(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = args else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

/// `impl Stream<Item = T> (+ ..)` → `T`.
fn stream_item(bounds: &TypeImplTrait) -> Option<&Type> {
    bounds.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Stream" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// `StreamContext<T>` (any path ending so) → `T`.
pub fn stream_context_item(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "StreamContext" {
        return None;
    }
    first_type_argument(&last.arguments)
}

/// The type arguments of a `Context<..>` (any path ending so), as written.
pub enum ContextArgs<'a> {
    /// `Context<S, I, O>`.
    Three([&'a Type; 3]),
    /// Any other number or kind of arguments (`Context`, `Context<S>`, ..):
    /// how many there are.
    Other(usize),
}

impl ContextArgs<'_> {
    /// Whether this is the shape of `tractor::Context<S, I, O>`: what
    /// `#[rpc]` and `#[stream]` take for a misplaced context function
    /// (another type that happens to be called `Context` rarely has three
    /// type arguments).
    pub fn is_three(&self) -> bool {
        matches!(self, ContextArgs::Three(_))
    }
}

/// `Context<..>` (any path ending so) → its type arguments.
pub fn context_args(ty: &Type) -> Option<ContextArgs<'_>> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Context" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(ContextArgs::Other(0));
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types[..] {
        [started, inbound, outbound] if args.args.len() == 3 => {
            Some(ContextArgs::Three([started, inbound, outbound]))
        }
        _ => Some(ContextArgs::Other(args.args.len())),
    }
}

/// The identifier of a plain `name: Type` argument, if that is what it is.
pub fn plain_ident(pat: &Pat) -> Option<&syn::Ident> {
    match pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => Some(&ident.ident),
        _ => None,
    }
}
