//! Spares: a process started ahead of the spawn that will use it.
//!
//! Most of a child's start does not depend on which actor it will be: the
//! exec and dynamic linking, the function table, the transport policy and
//! the runtime with its threads. A spare does all that, then waits for its
//! spec on its standard input, a pipe only its spawner holds the other end
//! of. A spawn that finds a spare only writes the spec and closes the pipe:
//! the child is then a socket bind and a handshake away from connecting
//! back, and the next spare starts in the background.
//!
//! A spawner makes its first spare only after its first spawn (an actor
//! that never spawns never has one), keeps one at most, and gives it up
//! when it finishes: the spare reads the closed pipe as "not needed" and
//! exits. A spare dies with its spawner like any child (its parent-death
//! signal is armed before it waits). It was started with the spawner's
//! environment of that moment: a variable set later reaches the spawn
//! after the next one.
//!
//! This module keeps the spares of the `exec` backend; the fork server
//! keeps its own, forked in the same way (see `forkserver`).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::AsyncWriteExt;
use tokio_util::task::TaskTracker;

use super::exec::{self, Execd};
use super::spec::{SPARE_ENV, SPEC_FD_ENV, Spare};
use super::{Process, SpawnSpec, Started};

/// An exec'd spare, ready or getting there.
struct ExecSpare {
    execd: Execd,
    spec: tokio::net::unix::pipe::Sender,
    exec_args: Vec<String>,
    workers: usize,
}

impl ExecSpare {
    async fn start(exec_args: Vec<String>, workers: usize) -> io::Result<ExecSpare> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let spare = Spare {
            parent_pid: std::process::id(),
            workers,
        };
        let mut command = exec::this_executable(&exec_args);
        command
            .stdin(std::process::Stdio::from(read))
            .env(SPEC_FD_ENV, "0")
            .env(SPARE_ENV, spare.setting());
        let spec = tokio::net::unix::pipe::Sender::from_owned_fd(write)?;
        let execd = exec::start(command, None).await?;
        Ok(ExecSpare {
            execd,
            spec,
            exec_args,
            workers,
        })
    }

    fn fits(&self, spec: &SpawnSpec) -> bool {
        self.exec_args == spec.exec_args && self.workers == spec.workers
    }

    /// Makes the spare the child `spec` describes; `None` if it died.
    async fn hand(mut self, spec: &SpawnSpec) -> Option<Started> {
        let bytes = spec.encode().ok()?;
        let written = self.spec.write_all(&bytes).await;
        drop(self.spec);
        if written.is_err() {
            close(self.execd).await;
            return None;
        }
        let killer = self.execd.killer();
        Some(Started {
            process: Box::new(self.execd),
            killer,
        })
    }

    async fn close(self) {
        drop(self.spec);
        close(self.execd).await;
    }
}

async fn close(mut execd: Execd) {
    execd.start_kill();
    execd.wait().await;
}

/// The spares of one spawner: at most one, started after each spawn that
/// used the backend.
pub(crate) struct ExecSpares {
    /// Held while a spare starts, so a spawn waits for one that is on its
    /// way rather than start a process of its own.
    slot: Arc<tokio::sync::Mutex<Option<ExecSpare>>>,
    closed: Arc<AtomicBool>,
}

impl ExecSpares {
    pub(crate) fn new() -> Self {
        ExecSpares {
            slot: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// Starts the child `spec` describes from the spare if one fits, else
    /// afresh; then starts the next spare.
    pub(crate) async fn spawn(&self, spec: &SpawnSpec, tasks: &TaskTracker) -> io::Result<Started> {
        let spare = self.slot.lock().await.take();
        let started = match spare {
            Some(spare) if spare.fits(spec) => spare.hand(spec).await,
            Some(misfit) => {
                tasks.spawn(misfit.close());
                None
            }
            None => None,
        };
        let started = match started {
            Some(started) => started,
            None => super::SpawnBackend::spawn(&exec::Exec, spec).await?,
        };
        self.refill(spec, tasks);
        Ok(started)
    }

    fn refill(&self, spec: &SpawnSpec, tasks: &TaskTracker) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        // Taken now, so the next spawn waits for this spare.
        let Ok(mut slot) = self.slot.clone().try_lock_owned() else {
            return;
        };
        let closed = self.closed.clone();
        let (exec_args, workers) = (spec.exec_args.clone(), spec.workers);
        tasks.spawn(async move {
            match ExecSpare::start(exec_args, workers).await {
                Ok(spare) if closed.load(Ordering::Acquire) => spare.close().await,
                Ok(spare) => *slot = Some(spare),
                Err(err) => tracing::debug!("could not start a spare: {err}"),
            }
        });
    }

    /// No more spares: the one there is goes, and is reaped.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let spare = self.slot.lock().await.take();
        if let Some(spare) = spare {
            spare.close().await;
        }
    }

    /// Kills the spare at once, if one is ready: the last resort of an
    /// actor about to exit.
    pub(crate) fn kill_now(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(slot) = self.slot.try_lock()
            && let Some(spare) = &*slot
        {
            spare.execd.killer().kill_now();
        }
    }
}
