//! Ctrl-C and friends: how a program's tree stops when it is told to.
//!
//! The root of a program handles SIGINT and SIGTERM: the first cancels its
//! body, which tears the tree down gracefully (children asked to cancel,
//! reaped, unregistered), and the program exits with 128 + the signal; a
//! second one kills every child at once and exits. Children and fork
//! servers run in process groups of their own, so a Ctrl-C at the terminal
//! (sent to the foreground group) reaches the root alone, even while a
//! child is still starting: it is the root's job to stop the tree in
//! order, not each process's to die where it stands. A SIGINT sent to a
//! child itself is handled and ignored — handled, not set to be ignored,
//! so the processes an actor starts begin with the usual disposition (exec
//! resets handlers, but keeps an ignored signal ignored).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listens for SIGINT and SIGTERM from now on.
pub(crate) struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    pub(crate) fn listen() -> std::io::Result<Self> {
        Ok(Interrupts {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM; its number.
    pub(crate) async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
        }
    }
}

/// In a child actor: SIGINT sent to it alone changes nothing (only the
/// root stops a tree); logged. Once per process (a spare does it ahead).
pub(crate) fn absorb_interrupts() {
    static ABSORBING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if ABSORBING.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    match signal(SignalKind::interrupt()) {
        Ok(mut interrupts) => {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::info!("SIGINT ignored: only the root of the tree stops it");
                }
            });
        }
        Err(err) => tracing::warn!("could not handle SIGINT: {err}"),
    }
}

/// In a fork server: let a stray SIGINT not take its children with it
/// (they handle SIGINT themselves once they run, see
/// [`absorb_interrupts`], which replaces this disposition).
pub(crate) fn ignore_interrupts() {
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread
    // of ours exists.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
}

/// A write to a closed socket or pipe fails with `EPIPE` instead of
/// killing the process (what the Rust runtime sets up before `main`, for
/// code that runs earlier).
pub(crate) fn ignore_broken_pipes() {
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread
    // of ours exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
