//! The `exec` backend: start `/proc/self/exe` again.
//!
//! Processes are started from one dedicated, never-exiting thread. Linux
//! delivers a child's parent-death signal (which every child asks for, see
//! `lifeline`) when the *thread* that forked it exits, so forking from a
//! runtime thread that may be retired would kill children early.

use std::future::Future;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::spec::SPEC_ENV;
use super::{Process, SpawnBackend, SpawnSpec, Spawning};

pub(crate) struct Exec;

struct Job {
    command: Command,
    runtime: Handle,
    reply: oneshot::Sender<io::Result<tokio::process::Child>>,
}

impl SpawnBackend for Exec {
    fn spawn(&self, spec: &SpawnSpec) -> Spawning {
        let mut command = this_executable(&spec.exec_args);
        command.env(SPEC_ENV, spec.encode());
        let started = start(command);
        Box::pin(async move { Ok(Box::new(started.await?) as Box<dyn Process>) })
    }
}

/// This executable, to be started again with `args` (what makes it a child
/// under libtest), stdin closed.
pub(crate) fn this_executable(args: &[String]) -> Command {
    let mut command = Command::new("/proc/self/exe");
    if let Some(argv0) = std::env::args_os().next() {
        // So `ps` shows the real program, not /proc/self/exe.
        command.arg0(argv0);
    }
    command.args(args).stdin(Stdio::null());
    command
}

/// Starts `command` from the spawner thread; the child is reaped by the
/// current runtime.
pub(crate) fn start(command: Command) -> impl Future<Output = io::Result<tokio::process::Child>> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        command,
        runtime: Handle::current(),
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
                    let spawned = tokio::process::Command::from(job.command).spawn();
                    let _ = job.reply.send(spawned);
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
