//! Panics in remote functions: caught, with their place and (under
//! `RUST_BACKTRACE`) their stack, without delaying the error.
//!
//! Rust's default panic hook prints the message and, when `RUST_BACKTRACE`
//! is set, symbolises and prints a backtrace before unwinding starts —
//! tens of milliseconds during which the caller waits for the error. While
//! a remote function runs on a thread, tractor's hook takes over: it
//! prints one line, records the panic's location and the stack's frames
//! (unsymbolised, see `error::Frames`) for the error to carry, and lets
//! unwinding go on at once. Panics anywhere else go to the hook that was
//! there before.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::PanicHookInfo;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use crate::error::Frames;

thread_local! {
    /// Set while a remote function runs on this thread.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    /// What the hook recorded of the last panic in a remote function.
    static CAUGHT: RefCell<Option<Caught>> = const { RefCell::new(None) };
}

/// A panic's place and stack, as the hook saw them.
pub(crate) struct Caught {
    pub(crate) location: Option<String>,
    pub(crate) frames: Option<Frames>,
}

/// Installs tractor's hook in front of the current one (once per process).
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALL.with(Cell::get) {
                record(info);
            } else {
                previous(info);
            }
        }));
    });
}

fn record(info: &PanicHookInfo<'_>) {
    let location = info
        .location()
        .map(|at| format!("{}:{}:{}", at.file(), at.line(), at.column()));
    let thread = std::thread::current();
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with a non-string payload");
    // Which actor: every child's threads have the same name.
    let actor = crate::log::label().map_or(String::new(), |label| format!(" of actor {label}"));
    eprintln!(
        "thread '{}'{actor} panicked at {}:\n{message}",
        thread.name().unwrap_or("<unnamed>"),
        location.as_deref().unwrap_or("an unknown place"),
    );
    let frames = Frames::capture();
    CAUGHT.with(|caught| *caught.borrow_mut() = Some(Caught { location, frames }));
}

/// What the hook recorded of the panic just caught on this thread.
pub(crate) fn take_caught() -> Option<Caught> {
    CAUGHT.with(|caught| caught.borrow_mut().take())
}

/// Runs `body` as a remote function: its panics are recorded.
pub(crate) fn in_call<R>(body: impl FnOnce() -> R) -> R {
    let before = IN_CALL.with(|flag| flag.replace(true));
    let result = body();
    IN_CALL.with(|flag| flag.set(before));
    result
}

/// A remote function's future: each poll runs as [`in_call`].
pub(crate) struct InCall<F>(pub(crate) F);

impl<F: Future> Future for InCall<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: a plain projection to the only field, never moved.
        let inner = unsafe { self.map_unchecked_mut(|call| &mut call.0) };
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_CALL.with(|flag| flag.set(self.0));
            }
        }
        // Reset even when the poll unwinds.
        let _reset = Reset(IN_CALL.with(|flag| flag.replace(true)));
        inner.poll(cx)
    }
}
