//! Attribute macros for [`tractor`](https://docs.rs/tractor).
//!
//! Use them through the re-exports in `tractor` (`#[tractor::main]`,
//! `#[tractor::rpc]`, ...); this crate is an implementation detail and its
//! generated code names only `::tractor::...` paths.
//!
//! Every macro works in three separate steps, each in its own module:
//! `parse` turns the annotated item into a small model, `validate` checks
//! every rule and collects *all* violations as spanned errors, and
//! `expand` / `entry` turn a valid model into tokens. When validation
//! fails the original item is emitted unchanged next to the errors, so the
//! rest of the crate still type-checks and editors keep working.

#![warn(missing_docs)]

mod entry;
mod expand;
mod options;
mod parse;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;

/// Makes a free function callable from other actors.
///
/// See `tractor::rpc` for the full documentation.
#[proc_macro_attribute]
pub fn rpc(args: TokenStream, item: TokenStream) -> TokenStream {
    remote(args, item, parse::Kind::Rpc)
}

/// Makes a free function a remote stream.
///
/// See `tractor::stream` for the full documentation.
#[proc_macro_attribute]
pub fn stream(args: TokenStream, item: TokenStream) -> TokenStream {
    remote(args, item, parse::Kind::Stream)
}

/// Makes a free function a context: a two-way dialog with its caller.
///
/// See `tractor::context` for the full documentation.
#[proc_macro_attribute]
pub fn context(args: TokenStream, item: TokenStream) -> TokenStream {
    remote(args, item, parse::Kind::Context)
}

/// Bootstraps a program's root actor (and the child re-exec path).
///
/// See `tractor::main` for the full documentation.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry_point(args, item, entry::Entry::Main)
}

/// Runs an async test as an isolated root actor.
///
/// See `tractor::test` for the full documentation.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry_point(args, item, entry::Entry::Test)
}

fn remote(args: TokenStream, item: TokenStream, kind: parse::Kind) -> TokenStream {
    let item: TokenStream2 = item.into();
    let result = parse::RemoteFn::parse(args.into(), item.clone(), kind)
        .and_then(|model| validate::remote_fn(&model, kind).map(|sig| (model, sig)))
        .map(|(model, sig)| expand::remote_fn(&model, &sig));
    finish(result, item)
}

fn entry_point(args: TokenStream, item: TokenStream, entry: entry::Entry) -> TokenStream {
    let item: TokenStream2 = item.into();
    let result = entry::expand(args.into(), item.clone(), entry);
    finish(result, item)
}

/// On error, keep the user's item so that the rest of the crate still
/// resolves it, and add the errors next to it.
fn finish(result: syn::Result<TokenStream2>, original: TokenStream2) -> TokenStream {
    match result {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            let mut tokens = original;
            err.to_compile_error().to_tokens(&mut tokens);
            tokens.into()
        }
    }
}
