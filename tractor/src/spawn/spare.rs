//! Spares: a process started ahead of the spawn that will use it.
//!
//! Most of a child's start does not depend on which actor it will be: the
//! exec and dynamic linking, the function table, the transport policy, the
//! runtime with its threads (run once) and the listening socket (bound
//! under a temporary name). A spare does all that, then waits for its spec
//! on its standard input, one end of a socket pair whose other end only its
//! spawner holds: the spare is *linked* (see `spec::Spare`). A
//! spawn that finds a spare writes the spec to it, and the child opens its
//! channel to the spawner over that same socket: a rename and a handshake
//! away from connected, with no dial and no accept. The next spare starts
//! in the background once that child has
//! exited, or 20 ms after the spawn if it lives on: started at once, it
//! would compete for the cores with the new child's start and first calls
//! (measured on two cores: whole cycles 10 ms apart took 4.1-4.4 ms so,
//! 2.3-2.6 ms this way). Only in a burst, spawns less than 5 ms apart, does
//! each start the next spare at once, as no quiet moment comes between.
//! Either way a spare starts in the background: with a long time slice
//! (`platform::set_background`), so the child and the parent doing
//! the work of the moment preempt it whenever they wake, and with the
//! default slice again once it is ready and waits (on two cores,
//! `-- cycles-exec` 1.91 ms before, 1.76 ms after, means of seven
//! interleaved rounds).
//!
//! A spawner makes its first spare only after its first spawn (an actor
//! that never spawns never has one), keeps one at most, and gives it up
//! when it finishes: the spare reads the closed link as "not needed" and
//! exits. A spare dies with its spawner like any child (its parent-death
//! signal is armed before it waits). It was started with the spawner's
//! environment of that moment: a variable set later reaches the spawn
//! after the next one.
//!
//! This module keeps the spare of the `exec` backend; the fork server
//! forks its own, two at a time, linked the same way (see `forkserver`).

use crate::lock::lock;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::exec::{self, Execd};
use super::spec::{SPARE_ENV, SPEC_FD_ENV, Spare};
use super::{Process, SpawnSpec, Started};
use crate::ipc::unix_stream::LocalStream;

/// How long after a spawn its spare is started at the latest (sooner if
/// the child exits first).
const REFILL_AFTER: Duration = Duration::from_millis(20);

/// Spawns closer together than this are a burst: each starts the next
/// spare at once, since no quiet moment comes before the next spawn.
const BURST: Duration = Duration::from_millis(5);

/// An exec'd spare, ready or getting there.
struct ExecSpare {
    execd: Execd,
    /// Our end of its standard input.
    link: StdUnixStream,
    exec_args: Vec<String>,
    workers: usize,
}

impl ExecSpare {
    async fn start(exec_args: Vec<String>, workers: usize) -> io::Result<ExecSpare> {
        let (link, its) = StdUnixStream::pair()?;
        let spare = Spare {
            parent_pid: std::process::id(),
            workers,
        };
        let mut command = exec::this_executable(&exec_args);
        command
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(its)))
            .env(SPEC_FD_ENV, "0")
            .env(SPARE_ENV, spare.setting());
        let execd = exec::start(command, None, true).await?;
        Ok(ExecSpare {
            execd,
            link,
            exec_args,
            workers,
        })
    }

    fn fits(&self, spec: &SpawnSpec) -> bool {
        self.exec_args == spec.exec_args && self.workers == spec.workers
    }

    /// Makes the spare the child `spec` describes, `after_spec` following
    /// its spec; `None` if it died.
    async fn hand(self, spec: &SpawnSpec, after_spec: &[u8]) -> Option<Started> {
        match send_spec(self.link, spec, after_spec).await {
            Ok(link) => Some(Started {
                link: Some(link),
                ..self.execd.into_started()
            }),
            Err(_) => {
                close(self.execd).await;
                None
            }
        }
    }

    async fn close(self) {
        drop(self.link);
        close(self.execd).await;
    }
}

/// Writes `spec` to a linked spare (see `spec::Spare`), and in the same
/// write `after_spec`, the first bytes the child reads on its channel: the
/// link, ready for the child's opening over it. Awaited, not blocking: a spec
/// with a large statespace may not fit the socket's buffer while the spare
/// is still getting ready.
pub(crate) async fn send_spec(
    link: StdUnixStream,
    spec: &SpawnSpec,
    after_spec: &[u8],
) -> io::Result<LocalStream> {
    let mut frame = super::spec::frame(spec)?;
    frame.extend_from_slice(after_spec);
    let mut link = LocalStream::from_std(link)?;
    link.write_all(&frame).await?;
    Ok(link)
}

async fn close(mut execd: Execd) {
    execd.start_kill();
    execd.wait().await;
    crate::ipc::local::remove_prebound(execd.pid());
}

/// The spares of one spawner: at most one, started after each spawn that
/// used the backend.
pub(crate) struct ExecSpares {
    /// Held while a spare starts, so a spawn waits for one that is on its
    /// way rather than start a process of its own.
    slot: Arc<tokio::sync::Mutex<Option<ExecSpare>>>,
    /// No more spares: the spawner is finishing.
    closing: CancellationToken,
    /// When the last spawn was.
    last_spawn: Mutex<Option<Instant>>,
}

impl ExecSpares {
    pub(crate) fn new() -> Self {
        ExecSpares {
            slot: Arc::default(),
            closing: CancellationToken::new(),
            last_spawn: Mutex::new(None),
        }
    }

    /// Starts the child `spec` describes from the spare if one fits (it
    /// gets `after_spec` after its spec), else afresh. The next spare is
    /// for [`refill_after`](Self::refill_after).
    pub(crate) async fn spawn(
        &self,
        spec: &SpawnSpec,
        after_spec: &[u8],
        tasks: &TaskTracker,
    ) -> io::Result<Started> {
        let spare = self.slot.lock().await.take();
        let started = match spare {
            Some(spare) if spare.fits(spec) => spare.hand(spec, after_spec).await,
            Some(misfit) => {
                tasks.spawn(misfit.close());
                None
            }
            None => None,
        };
        let started = match started {
            Some(started) => started,
            None => super::SpawnBackend::spawn(&exec::Exec, spec, after_spec).await?,
        };
        Ok(started)
    }

    /// Starts the next spare, for spawns like `spec`, once `done` resolves
    /// (the child just spawned has exited) or a moment has passed,
    /// whichever comes first: on a machine with few cores, a program
    /// starting up beside the new child and its first calls slows them
    /// down more than the spare saves the next spawn. In a burst of spawns
    /// no quiet moment comes, and the next spare starts at once.
    pub(crate) fn refill_after(
        self: &Arc<Self>,
        spec: &SpawnSpec,
        tasks: &TaskTracker,
        done: impl Future<Output = ExitStatus> + Send + 'static,
    ) {
        let (exec_args, workers) = (spec.exec_args.clone(), spec.workers);
        let now = Instant::now();
        let previous = lock(&self.last_spawn).replace(now);
        if previous.is_some_and(|previous| now - previous < BURST) {
            // Spawns come faster than a quiet moment: keep one coming.
            self.refill(exec_args, workers, tasks);
            return;
        }
        let spares = self.clone();
        let tracker = tasks.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = done => {}
                () = tokio::time::sleep(REFILL_AFTER) => {}
                () = spares.closing.cancelled() => return,
            }
            spares.refill(exec_args, workers, &tracker);
        });
    }

    fn refill(&self, exec_args: Vec<String>, workers: usize, tasks: &TaskTracker) {
        if self.closing.is_cancelled() {
            return;
        }
        // Taken now, so the next spawn waits for this spare.
        let Ok(mut slot) = self.slot.clone().try_lock_owned() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let closing = self.closing.clone();
        tasks.spawn(async move {
            match ExecSpare::start(exec_args, workers).await {
                Ok(spare) if closing.is_cancelled() => spare.close().await,
                Ok(spare) => *slot = Some(spare),
                Err(err) => tracing::debug!("could not start a spare: {err}"),
            }
        });
    }

    /// No more spares from now on (the spawner is finishing); the one
    /// there is stays until [`close`](Self::close).
    pub(crate) fn stop(&self) {
        self.closing.cancel();
    }

    /// No more spares: the one there is goes, and is reaped.
    pub(crate) async fn close(&self) {
        self.closing.cancel();
        let spare = self.slot.lock().await.take();
        if let Some(spare) = spare {
            spare.close().await;
        }
    }

    /// Kills the spare at once, if one is ready: the last resort of an
    /// actor about to exit.
    pub(crate) fn kill_now(&self) {
        self.closing.cancel();
        if let Ok(slot) = self.slot.try_lock()
            && let Some(spare) = &*slot
        {
            spare.execd.killer().kill_now();
        }
    }
}
