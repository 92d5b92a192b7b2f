//! Starting child actor processes.
//!
//! A child is this same executable, made into an actor by a [`SpawnSpec`];
//! it connects back to its parent, which is how the parent learns it is
//! up. *How* the process is started is a [`SpawnBackend`]'s business, and
//! [`StartMethod`] picks one: [`exec`] re-executes this executable (the
//! default), [`forkserver`] forks from a server process started once per
//! spawning actor.
//!
//! This module knows nothing of actors: what a started process becomes is
//! decided by whoever calls it (the runtime hands the fork server its
//! child entry point).

pub(crate) mod exec;
pub(crate) mod forkserver;
pub(crate) mod spare;
pub(crate) mod spec;
pub(crate) mod ssh;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitStatus;

pub(crate) use spec::SpawnSpec;

/// A started child process, as a backend hands it over.
pub(crate) trait Process: Send + 'static {
    fn pid(&self) -> u32;
    /// Starts killing the process (SIGKILL); it still has to be waited for.
    fn start_kill(&mut self);
    /// Resolves when the process has exited and been reaped.
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>>;
    /// A future that resolves once the process has exited, which may be
    /// before `wait` can tell how (when its reaper is another process);
    /// given once. A backend that learns both at once has none: `wait`
    /// then says both.
    fn take_gone(&mut self) -> Option<Gone> {
        None
    }
}

/// Resolves once a process has exited (see [`Process::take_gone`]).
pub(crate) type Gone = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Kills a process right away, without a runtime: the last resort of an
/// actor about to exit (see `ChildHandle::kill_now`).
pub(crate) trait KillNow: Send + Sync + 'static {
    fn kill_now(&self);
}

/// A started process and its last-resort killer.
pub(crate) struct Started {
    pub(crate) process: Box<dyn Process>,
    pub(crate) killer: Box<dyn KillNow>,
    /// A socket already connected to the child, which it opens its channel
    /// to us over instead of dialing us (a linked spare's, see
    /// `spec::Spare`).
    pub(crate) link: Option<crate::ipc::unix_stream::LocalStream>,
}

/// A process being started.
pub(crate) type Spawning = Pin<Box<dyn Future<Output = io::Result<Started>> + Send>>;

/// A way of starting child actor processes.
pub(crate) trait SpawnBackend: Send + Sync {
    /// Starts a process that will become the actor described by `spec`;
    /// one *linked* to us (see [`Started::link`]) gets `after_spec` over
    /// its link in the same write as its spec (a `run_in_actor` child's
    /// main call, see `nursery::launch`).
    fn spawn(&self, spec: &SpawnSpec, after_spec: &[u8]) -> Spawning;
}

/// How child actors are started.
///
/// Chosen, from strongest to weakest, by the spawn builder's
/// `.start_method(..)`, the root's (`Root::builder().start_method(..)` or
/// `#[tractor::main(start_method = "..")]`), and the `TRACTOR_START_METHOD`
/// environment variable; children use their parent's unless told
/// otherwise.
///
/// ```
/// let method: tractor::StartMethod = "forkserver".parse().unwrap();
/// assert_eq!(method, tractor::StartMethod::ForkServer);
/// assert_eq!(method.to_string(), "forkserver");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// Start this executable again for every child (`"exec"`).
    #[default]
    Exec,
    /// Fork every child from a fork server, a copy of this executable
    /// started once per spawning actor (`"forkserver"`): faster spawns.
    ForkServer,
}

/// The environment variable that picks the [`StartMethod`].
pub const START_METHOD_ENV: &str = "TRACTOR_START_METHOD";

impl std::str::FromStr for StartMethod {
    type Err = crate::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "exec" => Ok(StartMethod::Exec),
            "forkserver" => Ok(StartMethod::ForkServer),
            other => Err(crate::Error::other(format!(
                "unknown start method {other:?}; use \"exec\" or \"forkserver\""
            ))),
        }
    }
}

impl std::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StartMethod::Exec => "exec",
            StartMethod::ForkServer => "forkserver",
        })
    }
}
