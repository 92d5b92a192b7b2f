//! Bootstrap: how a process becomes an actor.
//!
//! The first question is always whether this process is a spawned child
//! (its environment carries a spawn spec). A child never runs the user's
//! body: it becomes an actor, connects back to its parent and serves until
//! cancelled, then exits ([`child`]). A root ([`root`]) finds the
//! registrar, or becomes it, builds its actor and runtime, runs the body as
//! a task on a runtime worker, and winds its actor down before returning
//! the body's result. [`Root::builder`] is the way in from code;
//! `#[tractor::main]` and `#[tractor::test]` expand to it ([`entry`]).
//!
//! A fork server is a third kind of process: it runs before `main` (see
//! the hook below) and never becomes an actor itself.

mod child;
mod entry;
mod root;

pub(crate) use child::child_main;
pub use entry::{InlineBody, RootBody, SpawnedBody};
pub use root::{DEFAULT_REGISTRAR, REGISTRAR_ENV, Root, RootBuilder};

use crate::actor::Actor;
use crate::spawn::forkserver;
use crate::{platform, signals};

/// Worker threads of an actor's runtime, the root's as well as a child's,
/// unless the root or the spawn says otherwise: one, the thread the actor
/// starts on, as each actor of Python's tractor runs one single-threaded
/// event loop. (The name is older than the root's taking it too.)
///
/// An actor is a unit of parallelism already (a process per core is the
/// way to use them all), and one thread serves its channels with no
/// hand-over between threads: a spawn's whole cycle is a fifth to a
/// quarter shorter with a one-thread child than with two workers, and a
/// third shorter again with a one-thread root (see BENCHMARKS.md). Plain
/// (non-`async`) remote functions run on blocking threads, so they never
/// stall the channels; an `async` one must not block its thread, as
/// anywhere in tokio (a blocked actor cannot answer a cancel and is killed
/// when its grace runs out). With `.worker_threads(n)`, n >= 2, an actor
/// gets a multi-threaded runtime of n workers.
pub const DEFAULT_CHILD_WORKERS: usize = 1;

// Before `main` (before libtest's threads, in a test binary), while the
// process has one thread: a fork server must be the only thread of its
// process when it forks, and a thread's time slice passes to the threads
// it starts.
platform::before_main!(BEFORE_MAIN, before_main);

fn before_main() {
    if std::env::var_os(crate::spawn::spec::SPARE_ENV).is_some() {
        // An exec'd spare starts in the background (see `spawn::spare`)
        // and has loaded and linked by now: it leaves the background while
        // this is its only thread, so every thread it starts (a test
        // harness's included) has the default slice.
        platform::set_background(false);
    }
    if std::env::var_os(forkserver::SERVER_ENV).is_some() {
        // What the Rust runtime would have done by now: a write to a
        // closed socket is an error, not a fatal signal.
        signals::ignore_broken_pipes();
        warm_up();
        forkserver::serve_if_asked(child_main);
    }
}

/// Serves as a fork server if this process was started as one and the
/// pre-main hook did not run; keeps the hook linked in.
fn fork_server_fallback() {
    std::hint::black_box(&BEFORE_MAIN);
    if std::env::var_os(forkserver::SERVER_ENV).is_some() {
        warm_up();
    }
    forkserver::serve_if_asked(child_main);
}

/// What every child would work out the same way, worked out before its
/// spec is known: once in the fork server, so that each fork starts with
/// it, or by a spare: the remote-function table, the socket directory, the
/// transport policy (certificates included, over TLS), the hash's CPU
/// feature probe and the panic hook. Each is kept for the life of the
/// process once made, and none starts a thread.
fn warm_up() {
    let _ = crate::registry::check();
    crate::auth::warm_up();
    let _ = crate::ipc::local::dir();
    let _ = crate::ipc::tls::transport();
    crate::invoke::install_hook();
}

/// The root actor's runtime: every thread of it knows its actor (a process
/// may run several roots one after another, tests do), and panics in
/// remote functions are caught without delay (see `invoke::panic`).
fn build_runtime(actor: &Actor) -> std::io::Result<tokio::runtime::Runtime> {
    crate::invoke::install_hook();
    let on_start = actor.clone();
    runtime_builder(actor.settings().workers)
        .thread_name(format!("tractor-{}", actor.name()))
        .on_thread_start(move || {
            Actor::set_current(Some(on_start.clone()));
        })
        .build()
}

/// A child's runtime, which may be built before the child knows which
/// actor it is (a spare's): its threads find their actor as the process's
/// (see `Actor::set_process_actor`).
fn build_child_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    crate::invoke::install_hook();
    runtime_builder(workers)
        .thread_name("tractor-actor")
        .build()
}

/// An actor's runtime with `workers` worker threads; one worker is the
/// thread the actor runs on, a current-thread runtime (see
/// [`DEFAULT_CHILD_WORKERS`]).
fn runtime_builder(workers: usize) -> tokio::runtime::Builder {
    let mut builder = match workers {
        0 | 1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
    };
    builder.enable_all();
    builder
}
