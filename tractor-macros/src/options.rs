//! Options of `#[tractor::main(..)]` and `#[tractor::test(..)]`.
//!
//! Parsed into a struct with defaults; every problem (unknown option,
//! repeated option, wrong value) is reported, each on its own tokens.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// `registrar = "a:1616"` or `registrar = ["a:1616", "b:1616"]`.
pub enum Registrar {
    One(LitStr),
    Several(Vec<LitStr>),
}

/// Options accepted by the entry attributes; `None` means "default".
#[derive(Default)]
pub struct Options {
    /// One address, or (written as an array) several.
    pub registrar: Option<Registrar>,
    pub loglevel: Option<LitStr>,
    pub enable_modules: Option<Vec<Expr>>,
    pub start_method: Option<LitStr>,
    /// Any expression: bytes (`impl Into<Vec<u8>>`) computed at start.
    pub secret: Option<Expr>,
    /// Any `usize` expression; a literal is checked to be at least 1.
    pub worker_threads: Option<Expr>,
    pub max_concurrent_calls: Option<Expr>,
}

/// Parses `args`, accepting only the options named in `allowed`.
///
/// Returns the options that parsed and, separately, all the errors, so a
/// caller can still expand with what was understood.
pub fn parse(args: TokenStream, allowed: &[&str]) -> (Options, Option<syn::Error>) {
    let mut options = Options::default();
    let mut errors: Option<syn::Error> = None;
    let mut fail = |err: syn::Error| match &mut errors {
        Some(all) => all.combine(err),
        None => errors = Some(err),
    };

    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(err) => {
            fail(err);
            return (options, errors);
        }
    };
    for meta in metas {
        let name = meta.path().to_token_stream().to_string().replace(' ', "");
        if name == "registrar" && !allowed.contains(&"registrar") {
            fail(syn::Error::new_spanned(
                meta.path(),
                "`registrar` is not an option here: every test runs a registrar of its own, \
                 on a port of its own, so that tests can run in parallel",
            ));
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            fail(syn::Error::new_spanned(
                meta.path(),
                format!(
                    "unknown option `{name}`; the options are: {}",
                    allowed.join(", ")
                ),
            ));
            continue;
        }
        let Meta::NameValue(pair) = meta else {
            fail(syn::Error::new_spanned(
                &meta,
                format!("write the option as `{name} = <value>`"),
            ));
            continue;
        };
        let repeated = match name.as_str() {
            "registrar" => match registrar(&pair.value) {
                Ok(registrar) => options.registrar.replace(registrar).is_some(),
                Err(err) => {
                    fail(err);
                    false
                }
            },
            "loglevel" => match string(&pair.value, "loglevel = \"info\"") {
                Ok(lit) if lit.value().trim().is_empty() => {
                    fail(syn::Error::new_spanned(
                        &lit,
                        "the log level is empty; use one of trace, debug, info, warn, error \
                         or a tracing filter such as \"tractor=debug\"",
                    ));
                    false
                }
                Ok(lit) => options.loglevel.replace(lit).is_some(),
                Err(err) => {
                    fail(err);
                    false
                }
            },
            "start_method" => match string(&pair.value, "start_method = \"forkserver\"") {
                Ok(lit) if matches!(lit.value().as_str(), "exec" | "forkserver") => {
                    options.start_method.replace(lit).is_some()
                }
                Ok(lit) => {
                    fail(syn::Error::new_spanned(
                        &lit,
                        format!(
                            "unknown start method {:?}; use \"exec\" or \"forkserver\"",
                            lit.value()
                        ),
                    ));
                    false
                }
                Err(err) => {
                    fail(err);
                    false
                }
            },
            "secret" => options.secret.replace(pair.value.clone()).is_some(),
            "worker_threads" | "max_concurrent_calls" => match positive(&pair.value, &name) {
                Ok(()) => {
                    let slot = match name.as_str() {
                        "worker_threads" => &mut options.worker_threads,
                        _ => &mut options.max_concurrent_calls,
                    };
                    slot.replace(pair.value.clone()).is_some()
                }
                Err(err) => {
                    fail(err);
                    false
                }
            },
            "enable_modules" => match &pair.value {
                Expr::Array(array) => options
                    .enable_modules
                    .replace(array.elems.iter().cloned().collect())
                    .is_some(),
                other => {
                    fail(syn::Error::new_spanned(
                        other,
                        "expected a list of module paths: \
                         `enable_modules = [module_path!(), \"my_crate::workers\"]`",
                    ));
                    false
                }
            },
            _ => unreachable!("`allowed` lists only known options"),
        };
        if repeated {
            fail(syn::Error::new_spanned(
                &pair.path,
                format!("option `{name}` is given twice; keep one"),
            ));
        }
    }
    (options, errors)
}

/// A count: any expression, but a literal must be at least 1.
fn positive(value: &Expr, name: &str) -> syn::Result<()> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    {
        if int.base10_parse::<usize>().map_or(true, |n| n == 0) {
            return Err(syn::Error::new_spanned(
                int,
                format!("`{name}` must be at least 1, e.g. `{name} = 2`"),
            ));
        }
    }
    Ok(())
}

fn string(value: &Expr, example: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal, as in `{example}`"),
        )),
    }
}

/// One address or an array of them, every one checked (all the bad ones
/// reported).
fn registrar(value: &Expr) -> syn::Result<Registrar> {
    const EXAMPLE: &str = "registrar = \"127.0.0.1:1616\"";
    let Expr::Array(array) = value else {
        let lit = string(value, EXAMPLE)?;
        check_address(&lit)?;
        return Ok(Registrar::One(lit));
    };
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            "no registrar address; write e.g. [\"10.0.0.1:1616\", \"10.0.0.2:1616\"]",
        ));
    }
    let mut errors: Option<syn::Error> = None;
    let mut addrs = Vec::new();
    for elem in &array.elems {
        match string(elem, EXAMPLE).and_then(|lit| check_address(&lit).map(|()| lit)) {
            Ok(lit) => addrs.push(lit),
            Err(err) => match &mut errors {
                Some(all) => all.combine(err),
                None => errors = Some(err),
            },
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(Registrar::Several(addrs)),
    }
}

fn check_address(lit: &LitStr) -> syn::Result<()> {
    let value = lit.value();
    let port = value
        .rsplit_once(':')
        .map(|(host, port)| (host, port.parse::<u16>()));
    match port {
        Some((host, Ok(_))) if !host.is_empty() => Ok(()),
        _ => Err(syn::Error::new_spanned(
            lit,
            format!("`{value}` is not a `host:port` address; write e.g. \"127.0.0.1:1616\""),
        )),
    }
}
