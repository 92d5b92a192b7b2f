//! The `exec` backend: start this executable again.
//!
//! Processes are started from one dedicated, never-exiting thread. Linux
//! delivers a child's parent-death signal (which every child asks for, see
//! `platform::die_with_parent`) when the *thread* that forked it exits, so
//! forking from a runtime thread that may be retired would kill children
//! early.

use std::future::Future;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::pin::Pin;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::spec::SPEC_FD_ENV;
use super::{KillNow, Process, SpawnBackend, SpawnSpec, Spawning, Started};
use crate::platform::{Pidfd, SELF_EXE};

pub(crate) struct Exec;

/// A child started by exec: the runtime reaps it, its pidfd kills it.
pub(crate) struct Execd {
    child: tokio::process::Child,
    pid: u32,
    pidfd: std::sync::Arc<Pidfd>,
}

struct Job {
    command: Command,
    /// Kept open until the process has started (see [`pass_spec`]).
    keep: Option<std::os::fd::OwnedFd>,
    runtime: Handle,
    /// Started in the background (a spare): see
    /// `platform::set_background`.
    background: bool,
    reply: oneshot::Sender<io::Result<Execd>>,
}

impl SpawnBackend for Exec {
    /// Never linked: `after_spec` goes unused.
    fn spawn(&self, spec: &SpawnSpec, _after_spec: &[u8]) -> Spawning {
        let mut command = this_executable(&spec.exec_args);
        let started = pass_spec(&mut command, spec).map(|()| start(command, None, false));
        Box::pin(async move { Ok(started?.await?.into_started()) })
    }
}

impl Execd {
    /// Kills through the pidfd, which stays valid (and cannot name another
    /// process) for as long as it is held.
    pub(crate) fn killer(&self) -> Box<dyn KillNow> {
        Box::new(self.pidfd.clone())
    }

    /// The process as a backend hands it over.
    pub(crate) fn into_started(self) -> Started {
        let killer = self.killer();
        Started {
            process: Box::new(self),
            killer,
            link: None,
        }
    }
}

impl KillNow for std::sync::Arc<Pidfd> {
    fn kill_now(&self) {
        self.kill();
    }
}

impl Process for Execd {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn start_kill(&mut self) {
        self.pidfd.kill();
    }

    fn wait(&mut self) -> Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> {
        Box::pin(async move {
            match self.child.wait().await {
                Ok(status) => status,
                Err(err) => {
                    // Only if the runtime's child reaper is gone; the kernel
                    // reaps it with us then.
                    tracing::warn!(pid = self.pid, "could not wait for a child: {err}");
                    ExitStatus::from_raw(libc::SIGKILL)
                }
            }
        })
    }
}

/// Hands `spec` to the child `command` starts, as its standard input: a
/// memfd, close-on-exec here, that only that child gets (as descriptor 0,
/// which it reads and then points at `/dev/null`; see `spec`). No code
/// runs between fork and exec, so the spawn keeps the fast `posix_spawn`
/// path.
fn pass_spec(command: &mut Command, spec: &SpawnSpec) -> io::Result<()> {
    command
        .stdin(Stdio::from(spec.to_memfd()?))
        .env(SPEC_FD_ENV, "0");
    Ok(())
}

/// This executable, to be started again with `args` (what makes it a child
/// under libtest), stdin closed (unless the caller sets it), in a process
/// group of its own: a Ctrl-C at
/// the terminal reaches the root alone, which winds the tree down in
/// order (children need not ignore SIGINT, so the processes they start do
/// not inherit an ignored SIGINT either).
pub(crate) fn this_executable(args: &[String]) -> Command {
    let mut command = Command::new(SELF_EXE);
    if let Some(argv0) = std::env::args_os().next() {
        // So `ps` shows the real program, not /proc/self/exe.
        command.arg0(argv0);
    }
    command.args(args).stdin(Stdio::null()).process_group(0);
    command
}

/// Starts `command` from the spawner thread; the child is reaped by the
/// current runtime. `keep` stays open until the process has started: a
/// descriptor the child's `pre_exec` refers to by number. A `background`
/// child (a spare getting ready ahead of its spawn) starts with a long
/// time slice, so the processes doing the work of the moment preempt it
/// whenever they wake; it takes the default slice again once it is needed.
pub(crate) fn start(
    command: Command,
    keep: Option<std::os::fd::OwnedFd>,
    background: bool,
) -> impl Future<Output = io::Result<Execd>> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        command,
        keep,
        runtime: Handle::current(),
        background,
        reply,
    };
    let sent = spawner().send(job).is_ok();
    async move {
        if !sent {
            return Err(io::Error::other("the spawner thread is gone"));
        }
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

fn spawn_job(command: Command) -> io::Result<Execd> {
    let child = tokio::process::Command::from(command).spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("a fresh child has no pid"))?;
    // Our unreaped child: the pid cannot have been reused yet.
    match Pidfd::open(pid) {
        Ok(pidfd) => Ok(Execd {
            child,
            pid,
            pidfd: std::sync::Arc::new(pidfd),
        }),
        Err(err) => {
            // Without a handle we could not kill it safely later: stop it
            // now (the runtime reaps what it leaves behind).
            let mut child = child;
            let _ = child.start_kill();
            Err(err)
        }
    }
}

fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("tractor-spawner".into())
            .spawn(move || {
                for job in queue {
                    // The child is registered with the runtime that will
                    // reap it.
                    let _entered = job.runtime.enter();
                    if job.background {
                        crate::platform::set_background(true);
                    }
                    let started = spawn_job(job.command);
                    if job.background {
                        crate::platform::set_background(false);
                    }
                    drop(job.keep);
                    let _ = job.reply.send(started);
                }
            });
        if let Err(err) = started {
            // The queue went down with the closure: every spawn will fail
            // with "the spawner thread is gone".
            tracing::error!("could not start the tractor-spawner thread: {err}");
        }
        jobs
    })
}
