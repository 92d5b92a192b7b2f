//! Starting child actor processes.
//!
//! A child is this same executable started again with a [`SpawnSpec`] in
//! its environment; it connects back to its parent, which is how the
//! parent learns it is up. *How* the process is started is a
//! [`SpawnBackend`]'s business: the default, [`exec`], re-executes
//! `/proc/self/exe`.

pub(crate) mod exec;
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

/// The backend used for new children.
pub(crate) fn backend() -> &'static dyn SpawnBackend {
    &exec::Exec
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
