//! Starting child actor processes.
//!
//! A child is this same executable, made into an actor by a [`SpawnSpec`];
//! it connects back to its parent, which is how the parent learns it is
//! up. *How* the process is started is a [`SpawnBackend`]'s business, and
//! [`StartMethod`] picks one: [`exec`] re-executes `/proc/self/exe` (the
//! default), [`forkserver`] forks from a server process started once per
//! spawning actor.

pub(crate) mod exec;
pub(crate) mod forkserver;
pub(crate) mod spec;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::ExitStatus;

pub(crate) use spec::SpawnSpec;

/// A started child process, as a backend hands it over.
pub(crate) trait Process: Send + 'static {
    fn pid(&self) -> u32;
    /// Sends SIGKILL; the process still has to be waited for.
    fn start_kill(&mut self) -> io::Result<()>;
    /// Resolves when the process has exited and been reaped.
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + '_>>;
}

/// A process being started.
pub(crate) type Spawning = Pin<Box<dyn Future<Output = io::Result<Box<dyn Process>>> + Send>>;

/// A way of starting child actor processes.
pub(crate) trait SpawnBackend: Send + Sync {
    /// Starts a process that will become the actor described by `spec`.
    fn spawn(&self, spec: &SpawnSpec) -> Spawning;
}

/// How child actors are started.
///
/// Chosen, from strongest to weakest, by the spawn builder's
/// `.start_method(..)`, the `TRACTOR_START_METHOD` environment variable,
/// and `#[tractor::main(start_method = "..")]`; children use their parent's
/// unless told otherwise.
///
/// ```
/// let method: tractor::StartMethod = "forkserver".parse().unwrap();
/// assert_eq!(method, tractor::StartMethod::ForkServer);
/// assert_eq!(method.to_string(), "forkserver");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// Start `/proc/self/exe` again for every child (`"exec"`).
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

impl Process for tokio::process::Child {
    fn pid(&self) -> u32 {
        // Only `None` once reaped, and the reaper owns the child.
        self.id().unwrap_or(0)
    }

    fn start_kill(&mut self) -> io::Result<()> {
        tokio::process::Child::start_kill(self)
    }

    fn wait(&mut self) -> Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + '_>> {
        Box::pin(tokio::process::Child::wait(self))
    }
}
