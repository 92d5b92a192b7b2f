//! Tokens for a validated `#[rpc]` / `#[stream]` / `#[context]` function.
//!
//! Beside the untouched function come, in the same scope, its dispatch
//! function, its entry in the dispatch table, and its stub: a type of the
//! same name and visibility (in the type namespace, so it does not clash
//! with the function) whose associated items are `NAME` and `call`. All of
//! it sits next to the function, so a remote function defined in a block
//! (a doctest, a test body) works, types declared next to it included.
//!
//! Every requirement the generated code puts on the user's types goes
//! through a small local function named after the rule (e.g.
//! `arguments_must_be_serializable`), called with the span of the type or
//! function concerned: a type that breaks a rule is reported on that type,
//! and the messages name the rule, not tractor's internals. All behaviour
//! lives in `tractor::__private`; the generated code only names types and
//! wires the function in.

use proc_macro2::TokenStream;
use quote::ToTokens;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse::RemoteFn;
use crate::validate::{Dialog, Shape, Signature};

pub fn remote_fn(model: &RemoteFn, sig: &Signature) -> TokenStream {
    let item = &model.item;
    let rules = rules();
    let vis = &item.vis;
    let name = &item.sig.ident;
    let plain_name = name.to_string().trim_start_matches("r#").to_owned();
    let invoke = format_ident!("__tractor_invoke_{}", plain_name);
    let entry = format_ident!("__TRACTOR_RPC_{}", plain_name);
    let cfgs: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    let idents: Vec<_> = sig.args.iter().map(|(ident, _)| ident).collect();
    let types: Vec<_> = sig.args.iter().map(|(_, ty)| ty).collect();
    let signature = signature_text(&item.sig);
    // The module path, unless the attribute names it otherwise.
    let wire_name = match &sig.wire_name {
        Some(name) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #plain_name)),
    };
    let (output, call_type, attribute, runner) = match &sig.shape {
        Shape::Value(ty) | Shape::Result(ty) => (
            ty,
            quote!(::tractor::Call<#ty>),
            "rpc",
            "`Portal::run` or `ActorNursery::run_in_actor`",
        ),
        Shape::Stream(item) | Shape::Context { item, .. } => (
            item,
            quote!(::tractor::StreamCall<#item>),
            "stream",
            "`Portal::open_stream` or `ActorNursery::run_in_actor`",
        ),
        Shape::Dialog(dialog) => {
            let Dialog {
                started,
                inbound,
                outbound,
                value,
                ..
            } = &**dialog;
            (
                value,
                quote!(::tractor::ContextCall<#started, #inbound, #outbound, #value>),
                "context",
                "`Portal::open_context`",
            )
        }
    };

    let decoded = sig.args.iter().map(|(ident, ty)| {
        let take = quote_spanned! {ty.span()=>
            arguments_must_be_deserializable::<#ty>(&mut __tractor_args)
        };
        quote! {
            let #ident: #ty = match #take {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(err) => {
                    return ::tractor::__private::Invocation::failed(err);
                }
            };
        }
    });
    let encoded = sig.args.iter().map(|(ident, ty)| {
        quote_spanned! {ty.span()=>
            arguments_must_be_serializable::<#ty>(&mut __tractor_args, &#ident);
        }
    });
    let output_checked = quote_spanned! {output.span()=>
        let _ = results_must_be_deserializable::<#output>;
    };

    // The call of the function. Every token carries the function name's
    // span, so that is where a future that is not `Send` is reported.
    let at_name = |ident: &syn::Ident| {
        let mut ident = ident.clone();
        ident.set_span(name.span());
        ident
    };
    let named: Vec<_> = idents.iter().map(|ident| at_name(ident)).collect();
    let context = match &sig.shape {
        Shape::Context { ctx, .. } => Some(ctx),
        Shape::Dialog(dialog) => Some(&dialog.ctx),
        _ => None,
    };
    let invoked = match context {
        Some(ctx) => {
            let ctx = at_name(ctx);
            quote_spanned!(name.span()=> #name(#ctx, #(#named),*))
        }
        None => quote_spanned!(name.span()=> #name(#(#named),*)),
    };
    let sent = quote_spanned!(name.span()=> remote_function_futures_must_be_send(#invoked));
    // A unary call's future and what makes its reply, in one box.
    let call_with = |reply: TokenStream| {
        quote_spanned! {name.span()=>
            remote_functions_must_be_send(#invoked, #reply)
        }
    };
    let is_async = item.sig.asyncness.is_some();
    let value = quote_spanned!(output.span()=> results_must_be_serializable(&value));
    let reply_of_result = |result: TokenStream| {
        let probed = quote_spanned!(output.span()=> error_types_must_implement_display(&error));
        quote! {
            match #result {
                ::core::result::Result::Ok(value) => #value,
                ::core::result::Result::Err(error) => {
                    use ::tractor::__private::{ViaDisplay as _, ViaNothing as _, ViaStdError as _};
                    ::tractor::__private::Reply::error(
                        (&&::tractor::__private::ErrorProbe::new(#probed)).to_remote_error(),
                    )
                }
            }
        }
    };
    let reply = match (&sig.shape, is_async) {
        (Shape::Stream(item), true) => {
            let stream = quote_spanned!(item.span()=> remote_streams_must_be_send(stream));
            quote! {
                let __tractor_future = #sent;
                ::tractor::__private::Invocation::stream(async move {
                    let stream = __tractor_future.await;
                    #stream
                })
            }
        }
        (Shape::Stream(item), false) => {
            let stream = quote_spanned!(item.span()=> remote_streams_must_be_send(stream));
            quote! {
                ::tractor::__private::Invocation::stream(async move {
                    let stream = #invoked;
                    #stream
                })
            }
        }
        (
            Shape::Context {
                ctx,
                item,
                fallible,
            },
            _,
        ) => {
            let body = if *fallible {
                reply_of_result(quote!(#sent.await))
            } else {
                quote! {
                    #sent.await;
                    ::tractor::__private::Reply::value(&())
                }
            };
            let items = quote_spanned! {item.span()=>
                let _ = stream_items_must_be_serializable::<#item>;
            };
            quote! {
                #items
                ::tractor::__private::Invocation::context(
                    move |#ctx: ::tractor::StreamContext<#item>| async move { #body },
                )
            }
        }
        (Shape::Dialog(dialog), _) => {
            let Dialog {
                ctx,
                started,
                inbound,
                outbound,
                fallible,
                ..
            } = &**dialog;
            let body = if *fallible {
                reply_of_result(quote!(#sent.await))
            } else {
                quote! {
                    let value = #sent.await;
                    #value
                }
            };
            let started_checked = quote_spanned! {started.span()=>
                let _ = started_values_must_be_serializable::<#started>;
                let _ = started_values_must_be_deserializable::<#started>;
                let _ = started_values_must_be_send::<#started>;
            };
            let items_checked = [inbound, outbound].map(|item| {
                quote_spanned! {item.span()=>
                    let _ = context_items_must_be_serializable::<#item>;
                    let _ = context_items_must_be_deserializable::<#item>;
                    let _ = context_items_must_be_send::<#item>;
                }
            });
            quote! {
                #started_checked
                #(#items_checked)*
                ::tractor::__private::Invocation::dialog(
                    move |#ctx: ::tractor::Context<#started, #inbound, #outbound>| async move {
                        #body
                    },
                )
            }
        }
        (Shape::Value(_), true) => call_with(quote!(move |value| #value)),
        (Shape::Value(_), false) => quote! {
            ::tractor::__private::Invocation::blocking(move || {
                let value = #invoked;
                #value
            })
        },
        (Shape::Result(_), true) => {
            let matched = reply_of_result(quote!(result));
            call_with(quote!(move |result| #matched))
        }
        (Shape::Result(_), false) => {
            let matched = reply_of_result(invoked);
            quote!(::tractor::__private::Invocation::blocking(move || { #matched }))
        }
    };
    let stub_doc = format!(
        "Remote-call stub of [`{plain_name}`](fn@{name}), generated by \
         `#[tractor::{attribute}]`: `{plain_name}::NAME` and `{plain_name}::call(..)`."
    );
    let call_doc =
        format!("A call of [`{plain_name}`](fn@{name}) with these arguments, to pass to {runner}.");
    let make_call = match &sig.shape {
        Shape::Value(_) | Shape::Result(_) => quote!(::tractor::__private::call),
        Shape::Stream(_) | Shape::Context { .. } => quote!(::tractor::__private::stream_call),
        Shape::Dialog(_) => quote!(::tractor::__private::context_call),
    };

    let generated = quote! {
        #(#cfgs)*
        #[doc = #stub_doc]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #name {}

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_snake_case, unused_variables, clippy::all)]
        fn #invoke(__tractor_payload: &[u8]) -> ::tractor::__private::Invocation {
            #rules
            let mut __tractor_args = ::tractor::__private::ArgsReader::new(__tractor_payload);
            #(#decoded)*
            #output_checked
            #reply
        }

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #[::tractor::__private::linkme::distributed_slice(::tractor::__private::RPC_TABLE)]
        #[linkme(crate = ::tractor::__private::linkme)]
        static #entry: ::tractor::__private::RpcEntry = ::tractor::__private::RpcEntry::new(
            ::core::concat!(#wire_name, "\u{1f}", #signature),
            #invoke,
        );

        #(#cfgs)*
        #[allow(dead_code, clippy::all)]
        impl #name {
            /// The function's wire name: its full module path, or the name its
            /// attribute gives.
            pub const NAME: &'static str = #wire_name;

            #[doc = #call_doc]
            pub fn call(#(#idents: #types),*) -> #call_type {
                #[allow(dead_code)]
                fn arguments_must_be_serializable<T: ::tractor::__private::serde::Serialize>(
                    args: &mut ::tractor::__private::ArgsWriter,
                    value: &T,
                ) {
                    args.put(value)
                }
                let mut __tractor_args = ::tractor::__private::ArgsWriter::new();
                #(#encoded)*
                #make_call(
                    ::core::concat!(#wire_name, "\u{1f}", #signature),
                    __tractor_args,
                )
            }
        }
    };
    // Passed through a macro: where items cannot go (in an `impl`), the
    // one error is that this macro's expansion is ignored, and its name
    // says why; the struct comes first so that nothing else is taken in.
    quote! {
        #item
        ::tractor::remote_functions_are_free_functions! { #generated }
    }
}

/// The function's argument and result types as written, e.g.
/// `(u64, String) -> Vec<u8>`: it travels with every call, after the wire
/// name, so that a build whose function of that name differs is told so
/// rather than decoding garbage.
fn signature_text(sig: &syn::Signature) -> String {
    let inputs: Vec<String> = sig
        .inputs
        .iter()
        .map(|input| match input {
            syn::FnArg::Typed(typed) => typed.ty.to_token_stream().to_string(),
            syn::FnArg::Receiver(receiver) => receiver.to_token_stream().to_string(),
        })
        .collect();
    let output = match &sig.output {
        syn::ReturnType::Default => "()".to_owned(),
        syn::ReturnType::Type(_, ty) => ty.to_token_stream().to_string(),
    };
    format!("({}) -> {output}", inputs.join(", "))
}

/// The rules the dispatch function checks, as local functions so that a
/// broken rule is reported by its name (see the module docs).
fn rules() -> TokenStream {
    quote! {
        #[allow(dead_code)]
        fn arguments_must_be_deserializable<T>(
            args: &mut ::tractor::__private::ArgsReader<'_>,
        ) -> ::core::result::Result<T, ::tractor::__private::ArgsError>
        where
            T: ::tractor::__private::serde::de::DeserializeOwned,
        {
            args.take()
        }
        #[allow(dead_code)]
        fn results_must_be_deserializable<T: ::tractor::__private::serde::de::DeserializeOwned>() {}
        #[allow(dead_code)]
        fn results_must_be_serializable<T: ::tractor::__private::serde::Serialize>(
            value: &T,
        ) -> ::tractor::__private::Reply {
            ::tractor::__private::Reply::value(value)
        }
        #[allow(dead_code)]
        fn stream_items_must_be_serializable<T: ::tractor::__private::serde::Serialize>() {}
        #[allow(dead_code)]
        fn started_values_must_be_serializable<T: ::tractor::__private::serde::Serialize>() {}
        #[allow(dead_code)]
        fn started_values_must_be_deserializable<T>()
        where
            T: ::tractor::__private::serde::de::DeserializeOwned,
        {
        }
        #[allow(dead_code)]
        fn started_values_must_be_send<T: ::core::marker::Send + 'static>() {}
        #[allow(dead_code)]
        fn context_items_must_be_serializable<T: ::tractor::__private::serde::Serialize>() {}
        #[allow(dead_code)]
        fn context_items_must_be_deserializable<T>()
        where
            T: ::tractor::__private::serde::de::DeserializeOwned,
        {
        }
        #[allow(dead_code)]
        fn context_items_must_be_send<T: ::core::marker::Send + 'static>() {}
        #[allow(dead_code)]
        fn remote_function_futures_must_be_send<R>(
            future: impl ::core::future::Future<Output = R> + ::core::marker::Send + 'static,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<dyn ::core::future::Future<Output = R> + ::core::marker::Send>,
        > {
            ::std::boxed::Box::pin(future)
        }
        #[allow(dead_code)]
        fn remote_functions_must_be_send<F, R>(
            future: F,
            reply: impl ::core::ops::FnOnce(R) -> ::tractor::__private::Reply
                + ::core::marker::Send
                + 'static,
        ) -> ::tractor::__private::Invocation
        where
            F: ::core::future::Future<Output = R> + ::core::marker::Send + 'static,
        {
            ::tractor::__private::Invocation::future(async move { reply(future.await) })
        }
        #[allow(dead_code)]
        fn remote_streams_must_be_send<S>(stream: S) -> ::tractor::__private::ItemSource
        where
            S: ::tractor::__private::Stream + ::core::marker::Send + 'static,
            S::Item: ::tractor::__private::serde::Serialize + ::core::marker::Send,
        {
            ::tractor::__private::item_source(stream)
        }
        #[allow(dead_code)]
        fn error_types_must_implement_display<E: ::core::fmt::Display + 'static>(error: &E) -> &E {
            error
        }
    }
}
