//! The `forkserver` backend: children forked from a small server process.
//!
//! Re-executing the program for every child costs a full exec, dynamic
//! linking and runtime start. Instead, the first time an actor spawns with
//! this backend, it starts one *fork server*: this executable again, which
//! becomes a single-threaded loop before any runtime exists. For each
//! request the server forks; the fork skips straight to being the child
//! actor (it has the program's code and its link-time table already).
//!
//! Why a fresh exec for the server rather than a fork of the actor itself:
//! forking a process whose other threads may hold locks (an allocator
//! arena, stderr, a mutex of ours) leaves those locks held forever in the
//! fork. The server is forked from nothing but a clean, idle process, and
//! it closes every descriptor but stdio in its forks.
//!
//! The server is the children's OS parent: it reaps them and reports each
//! exit over its control socket, and it kills on request (it alone knows
//! whether a pid is still its unreaped child). Its own parent-death signal
//! ties it to the actor that started it, and every child's to the server,
//! so killing an actor still takes its children with it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::oneshot;

use super::{Process, SpawnBackend, SpawnSpec, Spawning, exec};

/// Set (to `"<fd> <parent pid>"`) in the environment of a fork server.
pub(crate) const SERVER_ENV: &str = "TRACTOR_FORKSERVER";

/// Largest control message: a spawn spec is a few hundred bytes.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
enum Request {
    Spawn(Box<SpawnSpec>),
    Kill(u32),
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Spawned(u32),
    SpawnFailed(i32),
    Exited { pid: u32, status: i32 },
}

/// An actor's connection to its fork server.
pub(crate) struct ForkServer {
    requests: tokio::sync::Mutex<OwnedWriteHalf>,
    state: Mutex<State>,
    /// Resolves once the server process has exited and been reaped.
    exited: tokio_util::sync::CancellationToken,
}

#[derive(Default)]
struct State {
    /// Spawn requests in the order sent: replies come in the same order.
    spawning: VecDeque<oneshot::Sender<io::Result<u32>>>,
    waiting: HashMap<u32, oneshot::Sender<ExitStatus>>,
    /// Exits that came before anyone waited for them.
    exited: HashMap<u32, ExitStatus>,
    /// The server is gone.
    gone: bool,
}

impl ForkServer {
    /// Starts a fork server for the current actor.
    pub(crate) async fn start(exec_args: &[String]) -> io::Result<Arc<ForkServer>> {
        let (ours, theirs) = StdUnixStream::pair()?;
        let fd = theirs.as_raw_fd();
        let mut command = exec::this_executable(exec_args);
        command.env(SERVER_ENV, format!("{fd} {}", std::process::id()));
        // SAFETY: between fork and exec only fcntl runs, which is
        // async-signal-safe; it lets the server keep its end of the socket.
        unsafe {
            command.pre_exec(move || {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
                Ok(())
            });
        }
        let mut server = exec::start(command).await?;
        drop(theirs);
        // The server lives as long as this actor's connection to it; reap
        // it whenever it ends.
        let exited = tokio_util::sync::CancellationToken::new();
        let reaped = exited.clone();
        tokio::spawn(async move {
            let _ = server.wait().await;
            reaped.cancel();
        });
        ours.set_nonblocking(true)?;
        let (mut replies, requests) = UnixStream::from_std(ours)?.into_split();
        let client = Arc::new(ForkServer {
            requests: tokio::sync::Mutex::new(requests),
            state: Mutex::default(),
            exited,
        });
        let reader = client.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(reply)) = read_message::<Reply, _>(&mut replies, &mut buf).await {
                reader.receive(reply);
            }
            reader.lost();
        });
        Ok(client)
    }

    /// Tells the server to go (closing its control socket) and waits until
    /// it has exited.
    pub(crate) async fn shut_down(&self) {
        let _ = self.requests.lock().await.shutdown().await;
        self.exited.cancelled().await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn receive(&self, reply: Reply) {
        let mut state = self.state();
        match reply {
            Reply::Spawned(pid) => {
                if let Some(waiter) = state.spawning.pop_front() {
                    let _ = waiter.send(Ok(pid));
                }
            }
            Reply::SpawnFailed(errno) => {
                if let Some(waiter) = state.spawning.pop_front() {
                    let _ = waiter.send(Err(io::Error::from_raw_os_error(errno)));
                }
            }
            Reply::Exited { pid, status } => {
                let status = ExitStatus::from_raw(status);
                match state.waiting.remove(&pid) {
                    Some(waiter) => {
                        let _ = waiter.send(status);
                    }
                    None => {
                        state.exited.insert(pid, status);
                    }
                }
            }
        }
    }

    /// The server died: its children died with it (their parent-death
    /// signal is SIGKILL).
    fn lost(&self) {
        let mut state = self.state();
        state.gone = true;
        for waiter in state.spawning.drain(..) {
            let _ = waiter.send(Err(io::Error::other("the fork server is gone")));
        }
        for (_, waiter) in state.waiting.drain() {
            let _ = waiter.send(ExitStatus::from_raw(libc::SIGKILL));
        }
    }

    async fn send(&self, request: &Request) -> io::Result<()> {
        let frame = frame(request)?;
        self.requests.lock().await.write_all(&frame).await
    }

    /// Forks the actor `spec` describes.
    async fn fork(self: &Arc<Self>, spec: &SpawnSpec) -> io::Result<Box<dyn Process>> {
        let (tx, spawned) = oneshot::channel();
        let frame = frame(&Request::Spawn(Box::new(spec.clone())))?;
        {
            // Queue the waiter and send under one lock, so replies match
            // requests in order.
            let mut requests = self.requests.lock().await;
            {
                let mut state = self.state();
                if state.gone {
                    return Err(io::Error::other("the fork server is gone"));
                }
                state.spawning.push_back(tx);
            }
            requests.write_all(&frame).await?;
        }
        let pid = spawned
            .await
            .map_err(|_| io::Error::other("the fork server is gone"))??;
        let (tx, exit) = oneshot::channel();
        {
            let mut state = self.state();
            match state.exited.remove(&pid) {
                Some(status) => {
                    let _ = tx.send(status);
                }
                None if state.gone => {
                    let _ = tx.send(ExitStatus::from_raw(libc::SIGKILL));
                }
                None => {
                    state.waiting.insert(pid, tx);
                }
            }
        }
        Ok(Box::new(Forked {
            pid,
            exit,
            server: self.clone(),
            status: None,
        }))
    }
}

impl SpawnBackend for Arc<ForkServer> {
    fn spawn(&self, spec: &SpawnSpec) -> Spawning {
        let server = self.clone();
        let spec = spec.clone();
        Box::pin(async move { server.fork(&spec).await })
    }
}

/// A child forked by the server.
struct Forked {
    pid: u32,
    exit: oneshot::Receiver<ExitStatus>,
    server: Arc<ForkServer>,
    status: Option<ExitStatus>,
}

impl Process for Forked {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn start_kill(&mut self) -> io::Result<()> {
        let server = self.server.clone();
        let pid = self.pid;
        tokio::spawn(async move {
            let _ = server.send(&Request::Kill(pid)).await;
        });
        Ok(())
    }

    fn wait(
        &mut self,
    ) -> std::pin::Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + '_>> {
        Box::pin(async move {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let status = (&mut self.exit)
                .await
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
            self.status = Some(status);
            Ok(status)
        })
    }
}

async fn read_message<T, R>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<T>>
where
    T: for<'de> Deserialize<'de>,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other("oversized fork server message"));
    }
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    postcard::from_bytes(buf)
        .map(Some)
        .map_err(io::Error::other)
}

// --- the server side -------------------------------------------------------

/// If this process was started as a fork server, serves until its actor
/// goes away, then exits; otherwise returns.
pub(crate) fn serve_if_asked() {
    let Some(setting) = std::env::var_os(SERVER_ENV) else {
        return;
    };
    // SAFETY: first thing in the process, before any thread of ours (see
    // SpawnSpec::take_from_env).
    unsafe { std::env::remove_var(SERVER_ENV) };
    let parsed = setting.to_str().and_then(|setting| {
        let (fd, parent) = setting.split_once(' ')?;
        Some((fd.parse::<RawFd>().ok()?, parent.parse::<u32>().ok()?))
    });
    let Some((fd, parent)) = parsed else {
        eprintln!("tractor: bad {SERVER_ENV} setting");
        std::process::exit(2);
    };
    crate::lifeline::arm(parent);
    crate::signals::ignore_interrupts();
    // SAFETY: the parent passed this descriptor to us and nothing else in
    // this process owns it.
    let control = unsafe { OwnedFd::from_raw_fd(fd) };
    let code = match Server::new(control).run() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("tractor: fork server failed: {err}");
            1
        }
    };
    std::process::exit(code);
}

struct Server {
    control: StdUnixStream,
    inbox: Vec<u8>,
    children: Vec<(u32, OwnedFd)>,
}

impl Server {
    fn new(control: OwnedFd) -> Self {
        Server {
            control: StdUnixStream::from(control),
            inbox: Vec::new(),
            children: Vec::new(),
        }
    }

    fn run(mut self) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags, poll};
        loop {
            let (control_ready, exited) = {
                let mut fds = Vec::with_capacity(1 + self.children.len());
                fds.push(PollFd::new(&self.control, PollFlags::IN));
                for (_, pidfd) in &self.children {
                    fds.push(PollFd::new(pidfd, PollFlags::IN));
                }
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(err) => return Err(err.into()),
                }
                let exited: Vec<usize> = fds[1..]
                    .iter()
                    .enumerate()
                    .filter(|(_, fd)| !fd.revents().is_empty())
                    .map(|(i, _)| i)
                    .collect();
                (!fds[0].revents().is_empty(), exited)
            };
            for index in exited.into_iter().rev() {
                let (pid, _pidfd) = self.children.swap_remove(index);
                let status = reap(pid);
                self.reply(&Reply::Exited { pid, status })?;
            }
            if control_ready && !self.read_requests()? {
                // Our actor is gone: so are we, and whatever we forked.
                for (pid, _) in &self.children {
                    signal(*pid, libc::SIGKILL);
                }
                return Ok(());
            }
        }
    }

    /// Reads and serves what arrived; `false` on end of stream.
    fn read_requests(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.control.read(&mut chunk)?;
        if read == 0 {
            return Ok(false);
        }
        self.inbox.extend_from_slice(&chunk[..read]);
        while self.inbox.len() >= 4 {
            let len =
                u32::from_le_bytes([self.inbox[0], self.inbox[1], self.inbox[2], self.inbox[3]])
                    as usize;
            if len > MAX_MESSAGE {
                return Err(io::Error::other("oversized request"));
            }
            if self.inbox.len() < 4 + len {
                break;
            }
            let request: Request =
                postcard::from_bytes(&self.inbox[4..4 + len]).map_err(io::Error::other)?;
            self.inbox.drain(..4 + len);
            match request {
                Request::Spawn(spec) => self.fork(*spec)?,
                Request::Kill(pid) => {
                    // Only a child not reaped yet: its pid cannot have been
                    // reused.
                    if self.children.iter().any(|(child, _)| *child == pid) {
                        signal(pid, libc::SIGKILL);
                    }
                }
            }
        }
        Ok(true)
    }

    fn fork(&mut self, mut spec: SpawnSpec) -> io::Result<()> {
        spec.parent_pid = std::process::id();
        // SAFETY: this process is single-threaded (nothing but this loop
        // ever ran here), so the fork inherits no lock held by another
        // thread.
        match unsafe { libc::fork() } {
            0 => {
                // The new actor keeps stdio only.
                // SAFETY: closing descriptors this process owns and will not
                // use again.
                unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                crate::runtime::child_main(spec)
            }
            -1 => {
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                self.reply(&Reply::SpawnFailed(errno))
            }
            pid => {
                let pid = pid as u32;
                let pid_id = rustix::process::Pid::from_raw(pid as i32)
                    .ok_or_else(|| io::Error::other("fork returned pid 0 in the parent"))?;
                let pidfd =
                    rustix::process::pidfd_open(pid_id, rustix::process::PidfdFlags::empty())?;
                self.children.push((pid, pidfd));
                self.reply(&Reply::Spawned(pid))
            }
        }
    }

    fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.control.write_all(&frame(reply)?)
    }
}

/// Waits for child `pid` (which has exited) and returns its raw status.
fn reap(pid: u32) -> i32 {
    let mut status = 0;
    // SAFETY: plain waitpid on our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    status
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, signal) };
}

/// `value` as a length-prefixed postcard frame.
fn frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(value).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}
