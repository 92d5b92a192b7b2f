//! `#[tractor::main]` and `#[tractor::test]`: the program's (or test's)
//! entry into the actor runtime.
//!
//! The generated function is deliberately boring: the user's body becomes an
//! inner `async fn`, and one call into `tractor::__private` decides whether
//! this process is a spawned child (which never runs the body) or the root,
//! builds the runtime and runs the body on it.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemFn;

use crate::options::{self, Options, Registrar};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Main,
    Test,
}

impl Entry {
    fn attribute(self) -> &'static str {
        match self {
            Entry::Main => "#[tractor::main]",
            Entry::Test => "#[tractor::test]",
        }
    }

    fn options(self) -> &'static [&'static str] {
        // The root's options; a test has all but `registrar` (it runs its
        // own).
        const OPTIONS: &[&str] = &[
            "registrar",
            "secret",
            "worker_threads",
            "start_method",
            "loglevel",
            "enable_modules",
            "max_concurrent_calls",
        ];
        match self {
            Entry::Main => OPTIONS,
            Entry::Test => &OPTIONS[1..],
        }
    }
}

pub fn expand(args: TokenStream, item: TokenStream, entry: Entry) -> syn::Result<TokenStream> {
    let item: ItemFn = crate::parse::function(item, entry.attribute())?;
    let (options, option_errors) = options::parse(args, entry.options());
    if let Err(err) = check_signature(&item, entry) {
        return Ok(keep_for_tools(item, entry, err));
    }
    let expanded = expand_valid(&item, &options, entry);
    // Options that did not parse are reported next to an expansion with
    // defaults, so the only errors shown are the real ones.
    Ok(match option_errors {
        Some(err) => {
            let mut tokens = expanded;
            err.to_compile_error().to_tokens(&mut tokens);
            tokens
        }
        None => expanded,
    })
}

/// The user's function, still type-checked for their editor, next to the
/// errors; an `async fn main` is renamed (with an empty `main` beside it)
/// so that the compiler does not add an error of its own about it.
fn keep_for_tools(mut item: ItemFn, entry: Entry, err: syn::Error) -> TokenStream {
    let mut tokens = err.to_compile_error();
    if entry == Entry::Main && item.sig.asyncness.is_some() && item.sig.ident == "main" {
        item.sig.ident = syn::Ident::new("__tractor_invalid_main", item.sig.ident.span());
        tokens.extend(quote! {
            #[allow(dead_code, unused_variables)]
            #item
            fn main() {}
        });
    } else {
        tokens.extend(quote! {
            #[allow(dead_code, unused_variables)]
            #item
        });
    }
    tokens
}

fn check_signature(item: &ItemFn, entry: Entry) -> syn::Result<()> {
    let attr = entry.attribute();
    let sig = &item.sig;
    let mut errors: Option<syn::Error> = None;
    let mut fail = |tokens: &dyn ToTokens, message: String| {
        let err = syn::Error::new_spanned(tokens, message);
        match &mut errors {
            Some(all) => all.combine(err),
            None => errors = Some(err),
        }
    };
    if sig.asyncness.is_none() {
        fail(
            &sig.fn_token,
            format!(
                "{attr} must be on an `async fn`: its body runs as the root actor's first \
                 task; write `async fn {}()`",
                sig.ident
            ),
        );
    }
    if !sig.inputs.is_empty() {
        fail(
            &sig.inputs,
            format!("{attr} functions take no arguments; read configuration inside the body"),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        fail(&sig.generics, format!("{attr} functions cannot be generic"));
    }
    if entry == Entry::Test {
        for other in &item.attrs {
            let path = other.path();
            let last = path
                .segments
                .last()
                .map(|segment| segment.ident.to_string());
            if matches!(last.as_deref(), Some("test")) {
                fail(
                    other,
                    "remove this attribute: #[tractor::test] makes the function a test \
                     itself"
                        .to_owned(),
                );
            }
        }
    }
    match errors {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn expand_valid(item: &ItemFn, options: &Options, entry: Entry) -> TokenStream {
    let attrs = &item.attrs;
    let vis = &item.vis;
    let name = &item.sig.ident;
    let output = &item.sig.output;
    let body = &item.block;

    let mut config = match entry {
        Entry::Main => quote!(::tractor::Root::builder()),
        Entry::Test => quote! {
            ::tractor::__private::test_root(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            )
        },
    };
    match &options.registrar {
        Some(Registrar::One(registrar)) => config.extend(quote!(.registrar(#registrar))),
        Some(Registrar::Several(registrars)) => {
            config.extend(quote!(.registrars([#(#registrars),*])));
        }
        None => {}
    }
    if let Some(secret) = &options.secret {
        config.extend(quote!(.secret(#secret)));
    }
    if let Some(threads) = &options.worker_threads {
        config.extend(quote!(.worker_threads(#threads)));
    }
    if let Some(method) = &options.start_method {
        let variant = match method.value().as_str() {
            "forkserver" => quote!(ForkServer),
            _ => quote!(Exec),
        };
        config.extend(quote!(.start_method(::tractor::StartMethod::#variant)));
    }
    if let Some(level) = &options.loglevel {
        config.extend(quote!(.loglevel(#level)));
    }
    if let Some(modules) = options.enable_modules.as_ref().filter(|m| !m.is_empty()) {
        config.extend(quote!(.enable_modules([#(#modules),*])));
    }
    if let Some(calls) = &options.max_concurrent_calls {
        config.extend(quote!(.max_concurrent_calls(#calls)));
    }
    let test_attr = match entry {
        Entry::Main => quote!(),
        Entry::Test => quote!(#[::core::prelude::v1::test]),
    };

    quote! {
        #(#attrs)*
        #test_attr
        #vis fn #name() #output {
            async fn __tractor_body() #output #body
            #[allow(unused_imports)]
            use ::tractor::__private::{InlineBody as _, SpawnedBody as _};
            (&&::tractor::__private::RootBody::new(__tractor_body)).run(#config)
        }
    }
}
