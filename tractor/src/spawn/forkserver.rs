//! The `forkserver` backend: children forked from a small server process.
//!
//! Re-executing the program for every child costs a full exec, dynamic
//! linking and runtime start. Instead, the first time an actor spawns with
//! this backend, it starts one *fork server*: this executable again, which
//! becomes a single-threaded loop before `main` runs (the runtime installs
//! [`serve_if_asked`] as a pre-main hook, see `platform::before_main`). For
//! each request the server forks; the fork skips straight to being the
//! child actor (it has the program's code and its link-time table already).
//!
//! Why a fresh exec for the server rather than a fork of the actor itself:
//! forking a process whose other threads may hold locks (an allocator
//! arena, stderr, a mutex of ours) leaves those locks held forever in the
//! fork. The server runs before `main` (so before libtest's threads, in a
//! test binary), checks before every fork that it is still the only thread
//! of its process, and closes every descriptor but stdio in its forks.
//!
//! The server is the children's OS parent: it reaps them and reports each
//! exit over its control socket, and it kills on request (it alone knows
//! whether a pid is still its unreaped child). With each new child's pid it
//! passes the actor a pidfd on it, opened while the child was surely its
//! own: the actor learns of the exit from the kernel at once, without
//! waiting for the server to reap and report. Its own parent-death signal
//! ties it to the actor that started it, and every child's to the server,
//! so killing an actor, or its fork server, takes those children with it.
//!
//! After the first request the server keeps two forks ready, *spares*
//! (see `spawn::spare`): each builds its runtime and waits for its spec.
//! A spare is *linked*: its standard input is one end of a socket pair
//! whose other end the server passes to the actor (with a pidfd on the
//! spare). The actor's next spawn writes the spec straight to the oldest
//! spare and the child opens its channel over that same socket: no hop
//! through the server, no dial, no accept. The server is only told the
//! spare was taken, so that it counts it as a child.
//!
//! Why two: a fork is kernel work that is not preempted, and a fresh
//! spare's start takes a core for a while. Replacing a taken spare at once
//! put both beside the child it became, on a machine with few cores, just
//! when that child answered and wound down: the child waited its turn. With
//! a second spare ready, the one taken is replaced once that child has
//! ended (or the server has had nothing to do for a moment), and a spawn
//! right after another still finds a spare.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::sync::oneshot;

use super::exec::{self, Execd};
use super::spec::{Begin, Spare, frame};
use super::{Gone, KillNow, Process, SpawnBackend, SpawnSpec, Spawning, Started};
use crate::ipc::unix_stream::{LocalReadHalf, LocalStream, LocalWriteHalf};
use crate::platform::{self, Forked, Pidfd};

/// Set (to `"<fd> <parent pid>"`) in the environment of a fork server.
pub(crate) const SERVER_ENV: &str = "TRACTOR_FORKSERVER";

/// How many spares the server keeps ready: two, so that the one a spawn
/// takes need not be replaced at once (see `Request::Took`).
const SPARES: usize = 2;

/// How much of its control socket the server reads at once (a request is
/// a few hundred bytes; a longer one is read over several rounds).
const READ_CHUNK: usize = 4096;

/// How long the server waits with nothing to do before it makes a spare.
const SPARE_AFTER: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 1_000_000,
};

/// Largest control message: a spawn spec is a few hundred bytes.
const MAX_MESSAGE: usize = 1 << 20;

/// Pidfds received and not yet matched with their `Spawned` reply: each
/// comes with its own reply, so more than this means the stream is wrong.
const MAX_UNCLAIMED_FDS: usize = 16;

#[derive(Serialize, Deserialize)]
enum Request {
    Spawn(Box<SpawnSpec>),
    /// The actor gave its spec to the spare `pid`: it is a child now.
    /// The server replaces it at once only if it has no other spare left
    /// (see the module docs).
    Took(u32),
    Kill(u32),
}

#[derive(Serialize, Deserialize)]
enum Reply {
    /// Sent with a pidfd on the child (`SCM_RIGHTS`).
    Spawned(u32),
    /// A linked spare for runtimes of `workers` threads, sent with the
    /// actor's end of its link, then a pidfd on it.
    Spare {
        pid: u32,
        workers: usize,
    },
    SpawnFailed(i32),
    Exited {
        pid: u32,
        status: i32,
    },
    /// The server would not fork (it is not single-threaded).
    Refused(String),
}

/// A child the server forked: its pid, and the pidfd that came with it.
type NewChild = (u32, Option<Pidfd>);

/// A linked spare, as its actor holds it.
struct HeldSpare {
    pid: u32,
    workers: usize,
    /// Our end of its standard input.
    link: StdUnixStream,
    pidfd: Pidfd,
}

/// An actor's connection to its fork server.
pub(crate) struct ForkServer {
    requests: tokio::sync::Mutex<LocalWriteHalf>,
    state: Mutex<State>,
    /// Resolves once the server process has exited and been reaped.
    exited: tokio_util::sync::CancellationToken,
    /// Kills the server process (and, through their parent-death signal,
    /// every child it forked).
    killer: Box<dyn KillNow>,
}

#[derive(Default)]
struct State {
    /// Spawn requests in the order sent: replies come in the same order.
    spawning: VecDeque<oneshot::Sender<io::Result<NewChild>>>,
    waiting: HashMap<u32, oneshot::Sender<ExitStatus>>,
    /// Exits that came before anyone waited for them.
    exited: HashMap<u32, ExitStatus>,
    /// The linked spares the server gave us, oldest first, until spawns
    /// take them.
    spares: VecDeque<HeldSpare>,
    /// Spares we were given and did not take: their exits are no child's.
    untaken: HashSet<u32>,
    /// The server is gone.
    gone: bool,
}

impl ForkServer {
    /// Starts a fork server for the current actor. `exec_args` make this
    /// executable reach its entry point when the pre-main hook is missing.
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
        // The spawner holds our copy of the server's end until the server
        // has started (see `exec::start`).
        let mut server: Execd = exec::start(command, Some(theirs.into()), false).await?;
        let killer = server.killer();
        // The server lives as long as this actor's connection to it; reap
        // it whenever it ends.
        let exited = tokio_util::sync::CancellationToken::new();
        let reaped = exited.clone();
        tokio::spawn(async move {
            server.wait().await;
            reaped.cancel();
        });
        // Watched for reading only: registered for writing as well, the
        // socket would wake this runtime each time the server reads a
        // request (see `ipc::unix_stream`), on the core of the child that
        // request just started.
        let (replies, requests) = LocalStream::from_std(ours)?.into_split();
        let client = Arc::new(ForkServer {
            requests: tokio::sync::Mutex::new(requests),
            state: Mutex::default(),
            exited,
            killer,
        });
        let reader = client.clone();
        tokio::spawn(async move {
            let mut replies = Replies::new(replies);
            loop {
                match replies.next().await {
                    Ok(Some((reply, fds))) => reader.receive(reply, fds),
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!("unreadable reply from the fork server: {err}");
                        reader.kill_now();
                        break;
                    }
                }
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

    /// Kills the server at once, and so every child it forked.
    pub(crate) fn kill_now(&self) {
        self.killer.kill_now();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn receive(&self, reply: Reply, fds: Vec<OwnedFd>) {
        let mut state = self.state();
        let mut fds = fds.into_iter();
        match reply {
            Reply::Spawned(pid) => {
                if let Some(waiter) = state.spawning.pop_front() {
                    let _ = waiter.send(Ok((pid, fds.next().map(Pidfd::received))));
                }
            }
            Reply::Spare { pid, workers } => {
                state.untaken.insert(pid);
                // Without both, it is of no use: dropping the link (if
                // any) tells it so.
                if let (Some(link), Some(pidfd)) = (fds.next(), fds.next()) {
                    state.spares.push_back(HeldSpare {
                        pid,
                        workers,
                        link: StdUnixStream::from(link),
                        pidfd: Pidfd::received(pidfd),
                    });
                }
            }
            Reply::SpawnFailed(errno) => {
                if let Some(waiter) = state.spawning.pop_front() {
                    let _ = waiter.send(Err(io::Error::from_raw_os_error(errno)));
                }
            }
            Reply::Refused(why) => {
                if let Some(waiter) = state.spawning.pop_front() {
                    let _ = waiter.send(Err(io::Error::other(why)));
                }
            }
            Reply::Exited { pid, status } => {
                if state.untaken.remove(&pid) {
                    return;
                }
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
        state.spares.clear();
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

    /// Starts the actor `spec` describes: our linked spare becomes it if
    /// it fits (reading `after_spec` after its spec), else the server
    /// forks it.
    async fn fork(self: &Arc<Self>, spec: &SpawnSpec, after_spec: &[u8]) -> io::Result<Started> {
        // One that does not fit is dropped: it reads that as "not needed".
        let spare = {
            let mut state = self.state();
            loop {
                match state.spares.pop_front() {
                    Some(spare) if spare.workers == spec.workers => break Some(spare),
                    Some(_misfit) => continue,
                    None => break None,
                }
            }
        };
        if let Some(spare) = spare {
            match self.take(spare, spec, after_spec).await {
                Ok(started) => return Ok(started),
                Err(err) => tracing::debug!("the spare could not take its spec ({err}); forking"),
            }
        }
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
        let (pid, pidfd) = spawned
            .await
            .map_err(|_| io::Error::other("the fork server is gone"))??;
        Ok(self.started(pid, pidfd, None))
    }

    /// Gives `spec` (and `after_spec`) to the linked `spare`, which
    /// becomes that child, and tells the server so.
    async fn take(
        self: &Arc<Self>,
        spare: HeldSpare,
        spec: &SpawnSpec,
        after_spec: &[u8],
    ) -> io::Result<Started> {
        self.state().untaken.remove(&spare.pid);
        // Sent before anything else about this pid (a kill) can be, and
        // before the spec: a server left without a spare, woken first,
        // forks the next on a core of its own, and the new child, woken
        // second, goes to the core we leave (measured on two cores with
        // one spare: whole cycles 0.869 -> 0.791 ms; the other way round,
        // the fork held up the child on the core both had been woken on).
        let told = self.send(&Request::Took(spare.pid)).await;
        let link = match super::spare::send_spec(spare.link, spec, after_spec).await {
            Ok(link) => link,
            Err(err) => {
                // Dead before it took the spec: its report is nobody's.
                let mut state = self.state();
                if state.exited.remove(&spare.pid).is_none() {
                    state.untaken.insert(spare.pid);
                }
                return Err(err);
            }
        };
        let started = self.started(spare.pid, Some(spare.pidfd), Some(link));
        // The server is gone: so is the spare, with it.
        told.map(|()| started)
    }

    /// The process handle of child `pid`, whose exit `pidfd` (if we have
    /// one) tells of before the server's report does.
    fn started(
        self: &Arc<Self>,
        pid: u32,
        pidfd: Option<Pidfd>,
        link: Option<LocalStream>,
    ) -> Started {
        // Without it (it could not be watched here) the server's report
        // alone tells of the exit.
        // SAFETY: a `Pidfd` owns its descriptor and always names that one.
        let pidfd = pidfd.and_then(|pidfd| {
            unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }.ok()
        });
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
        Started {
            process: Box::new(ForkedChild {
                pid,
                pidfd,
                exit,
                server: self.clone(),
                status: None,
            }),
            killer: Box::new(self.clone()),
            link,
        }
    }
}

/// Without a runtime, a single forked child cannot be asked for: the
/// server goes, and its children with it (only an actor that is exiting
/// anyway does this).
impl KillNow for Arc<ForkServer> {
    fn kill_now(&self) {
        ForkServer::kill_now(self);
    }
}

impl SpawnBackend for Arc<ForkServer> {
    fn spawn(&self, spec: &SpawnSpec, after_spec: &[u8]) -> Spawning {
        let server = self.clone();
        let spec = spec.clone();
        let after_spec = after_spec.to_vec();
        Box::pin(async move { server.fork(&spec, &after_spec).await })
    }
}

/// A child forked by the server.
struct ForkedChild {
    pid: u32,
    /// Readable once the child has exited (taken by `take_gone`).
    pidfd: Option<AsyncFd<Pidfd>>,
    /// How it ended, as the server reports once it has reaped it.
    exit: oneshot::Receiver<ExitStatus>,
    server: Arc<ForkServer>,
    status: Option<ExitStatus>,
}

impl Process for ForkedChild {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn start_kill(&mut self) {
        // The server alone may signal this pid: it knows whether it is
        // still its unreaped child.
        let server = self.server.clone();
        let pid = self.pid;
        tokio::spawn(async move {
            let _ = server.send(&Request::Kill(pid)).await;
        });
    }

    fn wait(&mut self) -> std::pin::Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> {
        Box::pin(async move {
            if let Some(status) = self.status {
                return status;
            }
            let status = (&mut self.exit)
                .await
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
            self.status = Some(status);
            status
        })
    }

    fn take_gone(&mut self) -> Option<Gone> {
        let pidfd = self.pidfd.take()?;
        Some(Box::pin(async move {
            if pidfd.readable().await.is_err() {
                // Cannot tell: the server's report will.
                std::future::pending::<()>().await;
            }
        }))
    }
}

/// The actor's end of the control socket: replies, each `Spawned` with the
/// pidfd sent along with it.
struct Replies {
    stream: LocalReadHalf,
    inbox: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl Replies {
    fn new(stream: LocalReadHalf) -> Self {
        Replies {
            stream,
            inbox: Vec::new(),
            fds: VecDeque::new(),
        }
    }

    /// The next reply and the descriptors sent with it, `None` at the end
    /// of the stream.
    async fn next(&mut self) -> io::Result<Option<(Reply, Vec<OwnedFd>)>> {
        loop {
            if let Some(reply) = take_frame::<Reply>(&mut self.inbox)? {
                // Descriptors arrive with the first byte of their reply, so
                // they are here by the time the whole reply is.
                let count = match reply {
                    Reply::Spawned(_) => 1,
                    Reply::Spare { .. } => 2,
                    _ => 0,
                };
                let fds = self.fds.drain(..count.min(self.fds.len())).collect();
                return Ok(Some((reply, fds)));
            }
            if self.receive().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads what the socket has, keeping any descriptors that came with it.
    async fn receive(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let received = self
            .stream
            .read_with(|stream| {
                let flags = rustix::net::RecvFlags::CMSG_CLOEXEC | rustix::net::RecvFlags::DONTWAIT;
                rustix::net::recvmsg(
                    stream,
                    &mut [IoSliceMut::new(&mut chunk)],
                    &mut control,
                    flags,
                )
                .map_err(io::Error::from)
            })
            .await?;
        for message in control.drain() {
            if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = message {
                self.fds.extend(fds);
            }
        }
        // Descriptors the kernel dropped would pair the rest with the
        // wrong replies. (A read never takes those of two replies, and
        // one reply sends two at most: this does not happen.)
        if received.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            return Err(io::Error::other(
                "descriptors from the fork server were cut off",
            ));
        }
        if self.fds.len() > MAX_UNCLAIMED_FDS {
            return Err(io::Error::other("descriptors without a reply to go with"));
        }
        self.inbox.extend_from_slice(&chunk[..received.bytes]);
        Ok(received.bytes)
    }
}

/// Takes the first whole length-prefixed frame off `inbox`, if there is
/// one.
fn take_frame<T: for<'de> Deserialize<'de>>(inbox: &mut Vec<u8>) -> io::Result<Option<T>> {
    let Some(len) = inbox.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_MESSAGE {
        return Err(io::Error::other("oversized fork server message"));
    }
    if inbox.len() < 4 + len {
        return Ok(None);
    }
    let value = postcard::from_bytes(&inbox[4..4 + len]).map_err(io::Error::other)?;
    inbox.drain(..4 + len);
    Ok(Some(value))
}

// --- the server side -------------------------------------------------------

/// If this process was started as a fork server, serves until its actor
/// goes away, then exits; otherwise returns. Each fork becomes a child
/// actor through `child_main`.
///
/// Meant to run before `main` (see the module docs); under `main` it still
/// works, but refuses to fork while other threads exist.
pub(crate) fn serve_if_asked(child_main: fn(Begin) -> !) {
    let Some(setting) = std::env::var_os(SERVER_ENV) else {
        return;
    };
    // SAFETY: the process is single-threaded here (before main, or first
    // thing in it; the server refuses to fork otherwise, see `fork`).
    unsafe { std::env::remove_var(SERVER_ENV) };
    let parsed = setting.to_str().and_then(|setting| {
        let (fd, parent) = setting.split_once(' ')?;
        Some((fd.parse::<RawFd>().ok()?, parent.parse::<u32>().ok()?))
    });
    let Some((fd, parent)) = parsed else {
        eprintln!("tractor: bad {SERVER_ENV} setting");
        std::process::exit(2);
    };
    platform::die_with_parent(parent);
    crate::signals::ignore_interrupts();
    // The server's forks, of spares above all, are made while the actor
    // and its newest child are busy: in the background (each fork
    // inherits it, and an actor leaves it as it starts).
    platform::set_background(true);
    // SAFETY: the parent passed this descriptor to us and nothing else in
    // this process owns it.
    let control = unsafe { OwnedFd::from_raw_fd(fd) };
    let code = match Server::new(control, child_main).run() {
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
    children: Vec<(u32, Pidfd)>,
    /// Forks made ready ahead of the next requests (see `spawn::spare`).
    spares: Vec<ForkedSpare>,
    /// The worker threads the last spawn asked for: what a spare is made
    /// with (none before the first request, or after a spare could not be
    /// made, until the next).
    spare_workers: Option<usize>,
    child_main: fn(Begin) -> !,
    /// What counts this process's threads before each fork.
    threads: Result<platform::ThreadCount, String>,
    /// Where requests are read into, before they join `inbox`.
    chunk: Vec<u8>,
}

/// A linked spare forked by the server, waiting for its spec from the
/// actor (which holds the other end of its standard input).
struct ForkedSpare {
    pid: u32,
    pidfd: Pidfd,
}

impl Server {
    fn new(control: OwnedFd, child_main: fn(Begin) -> !) -> Self {
        Server {
            control: StdUnixStream::from(control),
            inbox: Vec::new(),
            children: Vec::new(),
            spares: Vec::new(),
            spare_workers: None,
            child_main,
            threads: platform::ThreadCount::open().map_err(|err| err.to_string()),
            chunk: vec![0; READ_CHUNK],
        }
    }

    fn run(mut self) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags, poll};
        loop {
            let (control_ready, exited, spare_died) = {
                let mut fds = Vec::with_capacity(2 + self.children.len());
                fds.push(PollFd::new(&self.control, PollFlags::IN));
                for (_, pidfd) in &self.children {
                    fds.push(PollFd::new(pidfd, PollFlags::IN));
                }
                for spare in &self.spares {
                    fds.push(PollFd::new(&spare.pidfd, PollFlags::IN));
                }
                // Spares are made once nothing else is going on: right
                // after a child ends, or after a moment with nothing to
                // do, rather than while a fresh fork or a spare's child
                // starts (they would compete for the cores). Only the last
                // one taken is replaced at once (see `Request::Took`).
                let idle = match self.wants_spare() {
                    true => Some(&SPARE_AFTER),
                    false => None,
                };
                match poll(&mut fds, idle) {
                    Ok(0) => {
                        drop(fds);
                        self.make_spare()?;
                        continue;
                    }
                    Ok(_) => {}
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(err) => return Err(err.into()),
                }
                let children = 1 + self.children.len();
                (
                    !fds[0].revents().is_empty(),
                    ready(&fds[1..children]),
                    ready(&fds[children..]),
                )
            };
            for index in spare_died.into_iter().rev() {
                let spare = self.spares.remove(index);
                let status = platform::reap(spare.pid);
                crate::ipc::local::remove_prebound(spare.pid);
                // The actor hears of it, in case it took the spare just now.
                self.reply(&Reply::Exited {
                    pid: spare.pid,
                    status,
                })?;
                // Not needed (the actor dropped it): the next one is made
                // when idle. Died otherwise: the next request forks afresh,
                // and only then is a spare tried again (one that cannot
                // live is not forked over and over).
                if status != 0 {
                    self.spare_workers = None;
                }
            }
            let any_exited = !exited.is_empty();
            for index in exited.into_iter().rev() {
                let (pid, _pidfd) = self.children.swap_remove(index);
                let status = platform::reap(pid);
                self.reply(&Reply::Exited { pid, status })?;
            }
            if any_exited {
                self.make_spare()?;
            }
            if control_ready && !self.read_requests()? {
                // Our actor is gone: so are we, and whatever we forked.
                for (_, pidfd) in &self.children {
                    pidfd.kill();
                }
                self.drop_spares();
                return Ok(());
            }
        }
    }

    /// Reads and serves what arrived; `false` on end of stream.
    fn read_requests(&mut self) -> io::Result<bool> {
        let read = self.control.read(&mut self.chunk)?;
        if read == 0 {
            return Ok(false);
        }
        self.inbox.extend_from_slice(&self.chunk[..read]);
        while let Some(request) = take_frame::<Request>(&mut self.inbox)? {
            match request {
                Request::Spawn(spec) => self.spawn(*spec)?,
                Request::Took(pid) => {
                    if let Some(index) = self.spares.iter().position(|spare| spare.pid == pid) {
                        let spare = self.spares.remove(index);
                        self.children.push((spare.pid, spare.pidfd));
                        if self.spares.is_empty() {
                            // The next is made at once, to be ready for a
                            // spawn that follows soon.
                            self.make_spare()?;
                        }
                    }
                }
                Request::Kill(pid) => {
                    // Only a child not reaped yet, through its pidfd.
                    if let Some((_, pidfd)) = self.children.iter().find(|(child, _)| *child == pid)
                    {
                        pidfd.kill();
                    }
                }
            }
        }
        Ok(true)
    }

    /// Forks the child `spec` describes (the actor asks only when it has
    /// no spare that fits: a spare it holds, or one on its way to it, is
    /// its to take or drop).
    fn spawn(&mut self, mut spec: SpawnSpec) -> io::Result<()> {
        spec.parent_pid = std::process::id();
        let workers = spec.workers;
        if self.fork_child(spec)? {
            self.spare_workers = Some(workers);
        }
        Ok(())
    }

    /// Why this process must not fork, if it must not: forking is only
    /// sound with no other thread, so it is checked before every fork
    /// rather than trusted from how this process was started.
    fn unfit_to_fork(&self) -> Option<String> {
        let threads = match &self.threads {
            Ok(threads) => threads.now().map_err(|err| err.to_string()),
            Err(err) => Err(err.clone()),
        };
        match threads {
            Ok(1) => None,
            Ok(threads) => Some(format!(
                "the fork server runs {threads} threads and will not fork; it must start before \
                 main (is the pre-main hook linked in?)"
            )),
            Err(err) => Some(format!("the fork server cannot count its threads: {err}")),
        }
    }

    fn wants_spare(&self) -> bool {
        self.spares.len() < SPARES && self.spare_workers.is_some()
    }

    /// Forks the child `spec` describes and tells the actor how that went;
    /// `false` if this process refused to fork.
    fn fork_child(&mut self, spec: SpawnSpec) -> io::Result<bool> {
        if let Some(why) = self.unfit_to_fork() {
            self.reply(&Reply::Refused(why))?;
            return Ok(false);
        }
        match self.fork_actor(None, Begin::Spec(Box::new(spec))) {
            Ok((pid, pidfd)) => self.spawned(pid, pidfd)?,
            Err(err) => self.reply(&Reply::SpawnFailed(err.raw_os_error().unwrap_or(0)))?,
        }
        Ok(true)
    }

    /// Forks a linked spare for a coming request, unless there are
    /// [`SPARES`] already (or no request came yet), and gives it to the
    /// actor. It waits for its spec on its stdin, with nothing else open
    /// but stdio. If it cannot be made, the next request forks as before,
    /// and no spare is tried again until then.
    fn make_spare(&mut self) -> io::Result<()> {
        if self.spares.len() >= SPARES {
            return Ok(());
        }
        let Some(workers) = self.spare_workers.take() else {
            return Ok(());
        };
        if self.unfit_to_fork().is_some() {
            return Ok(());
        }
        let Ok((actors, its)) = StdUnixStream::pair() else {
            return Ok(());
        };
        let spare = Spare {
            parent_pid: std::process::id(),
            workers,
        };
        let Ok((pid, pidfd)) = self.fork_actor(Some(its.into()), Begin::Spare(spare)) else {
            return Ok(());
        };
        self.send_with(
            &Reply::Spare { pid, workers },
            &[actors.as_fd(), pidfd.as_fd()],
        )?;
        self.spares.push(ForkedSpare { pid, pidfd });
        self.spare_workers = Some(workers);
        Ok(())
    }

    /// Forks a process that becomes an actor as `begin` says, with `stdin`
    /// (if given) as its standard input and nothing else open but stdio;
    /// the caller has checked that this process is single-threaded. Its
    /// pid and a pidfd on it, or why there is none (a fork that could not
    /// be watched is killed and reaped).
    fn fork_actor(&mut self, stdin: Option<OwnedFd>, begin: Begin) -> io::Result<(u32, Pidfd)> {
        // The server lends its own standard input for the fork, so that the
        // new process has `stdin` from the instant it exists: whoever looks
        // at it then (a spare is told from an actor by its stdin) sees what
        // it is.
        let _lent = stdin.as_ref().map(LentStdin::lend).transpose()?;
        // SAFETY: single-threaded (checked by the caller).
        match unsafe { platform::fork() }? {
            Forked::Child => {
                // A process group of its own, as an exec'd child has (see
                // `exec::this_executable`).
                let _ = rustix::process::setpgid(None, None);
                // The new actor keeps stdio only; one that cannot drop the
                // rest must not run with descriptors it does not know of.
                if let Err(err) = platform::close_inherited_fds() {
                    eprintln!("tractor: a forked actor could not close inherited files: {err}");
                    std::process::exit(1);
                }
                (self.child_main)(begin)
            }
            Forked::Parent(pid) => match Pidfd::open(pid) {
                // Our unreaped child: the pid is still its own.
                Ok(pidfd) => Ok((pid, pidfd)),
                Err(err) => {
                    // Cannot watch it: do not keep it either.
                    // SAFETY: plain kill(2) of our own unreaped child.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    platform::reap(pid);
                    Err(err)
                }
            },
        }
    }

    /// Kills and reaps the spares.
    fn drop_spares(&mut self) {
        for spare in self.spares.drain(..) {
            kill_spare(spare);
        }
    }

    fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.control.write_all(&frame(reply)?)
    }

    /// Tells the actor child `pid` exists, passing it a pidfd on it (ours
    /// is kept: we reap).
    fn spawned(&mut self, pid: u32, pidfd: Pidfd) -> io::Result<()> {
        self.send_with(&Reply::Spawned(pid), &[pidfd.as_fd()])?;
        self.children.push((pid, pidfd));
        Ok(())
    }

    /// Sends `reply` with copies of `fds` (`SCM_RIGHTS`).
    fn send_with(&mut self, reply: &Reply, fds: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<()> {
        let frame = frame(reply)?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        if !control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("too many descriptors for one reply"));
        }
        let sent = rustix::net::sendmsg(
            &self.control,
            &[IoSlice::new(&frame)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )?;
        self.control.write_all(&frame[sent..])
    }
}

/// The server's standard input, replaced by another descriptor until
/// this is dropped.
struct LentStdin(OwnedFd);

impl LentStdin {
    fn lend(stdin: &OwnedFd) -> io::Result<Self> {
        let own = rustix::io::dup(rustix::stdio::stdin())?;
        rustix::stdio::dup2_stdin(stdin)?;
        Ok(LentStdin(own))
    }
}

impl Drop for LentStdin {
    fn drop(&mut self) {
        let _ = rustix::stdio::dup2_stdin(&self.0);
    }
}

/// The indices of the descriptors `poll` found ready.
fn ready(fds: &[rustix::event::PollFd<'_>]) -> Vec<usize> {
    fds.iter()
        .enumerate()
        .filter(|(_, fd)| !fd.revents().is_empty())
        .map(|(i, _)| i)
        .collect()
}

fn kill_spare(spare: ForkedSpare) {
    spare.pidfd.kill();
    platform::reap(spare.pid);
    crate::ipc::local::remove_prebound(spare.pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process a pidfd is on, as the kernel says.
    fn pid_of(fd: &impl AsRawFd) -> Option<u32> {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
        info.lines()
            .find_map(|line| line.strip_prefix("Pid:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    #[tokio::test]
    async fn each_reply_brings_the_descriptors_sent_with_it() {
        let (server, actor) = StdUnixStream::pair().unwrap();
        actor.set_nonblocking(true).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = Pidfd::open(child.id()).unwrap();
        let mut server = Server::new(server.into(), |_| std::process::exit(0));
        server.reply(&Reply::Exited { pid: 7, status: 0 }).unwrap();
        server.spawned(child.id(), pidfd).unwrap();
        let (replies, _requests) = LocalStream::from_std(actor).unwrap().into_split();
        let mut replies = Replies::new(replies);
        let (first, fds) = replies.next().await.unwrap().unwrap();
        assert!(matches!(first, Reply::Exited { pid: 7, status: 0 }));
        assert!(fds.is_empty());
        let (second, fds) = replies.next().await.unwrap().unwrap();
        assert!(matches!(second, Reply::Spawned(pid) if pid == child.id()));
        assert_eq!(fds.len(), 1);
        // The received pidfd is on that very process: it turns readable
        // when the process exits.
        let fd = Pidfd::received(fds.into_iter().next().unwrap());
        assert_eq!(pid_of(&fd), Some(child.id()));
        // SAFETY: a `Pidfd` owns its descriptor and always names that one.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.unwrap();
        let _ready = tokio::time::timeout(std::time::Duration::from_secs(10), fd.readable())
            .await
            .expect("the process exits")
            .unwrap();
        child.wait().unwrap();
        // A spare comes with two: the link, then the pidfd.
        let (link, _its) = StdUnixStream::pair().unwrap();
        let spare = Pidfd::open(std::process::id()).unwrap();
        let spare_reply = Reply::Spare { pid: 9, workers: 1 };
        server
            .send_with(&spare_reply, &[link.as_fd(), spare.as_fd()])
            .unwrap();
        let (third, fds) = replies.next().await.unwrap().unwrap();
        assert!(matches!(third, Reply::Spare { pid: 9, workers: 1 }));
        assert_eq!(fds.len(), 2);
        let kind = rustix::fs::fstat(&fds[0]).unwrap().st_mode & libc::S_IFMT;
        assert_eq!(kind, libc::S_IFSOCK, "the link first");
        assert_eq!(pid_of(&fds[1]), Some(std::process::id()), "then the pidfd");
        drop(server);
        assert!(replies.next().await.unwrap().is_none(), "end of stream");
    }
}
