//! Helpers shared by tractor's integration tests: watching processes that
//! are not our children (a grandchild, a re-parented orphan) end.
//!
//! Waiting uses a pidfd, which becomes readable when the process exits:
//! an event, not a polling loop.

use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open};
use tokio::io::unix::AsyncFd;

/// Waits up to `within` for process `pid` to exit; true if it did (or was
/// already gone).
pub async fn exits_within(pid: u32, within: Duration) -> bool {
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return true;
    };
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        // ESRCH: no such process any more.
        Err(_) => return true,
    };
    // SAFETY: `fd` is an open pidfd that the AsyncFd owns from here on.
    let Ok(fd) = (unsafe { AsyncFd::register(fd) }) else {
        panic!("a pidfd can be polled");
    };
    tokio::time::timeout(within, fd.readable()).await.is_ok()
}

/// Whether `pid` is a running (not exited) process.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; Z and X are
        // exited processes waiting to be (or being) reaped.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Sends SIGKILL to `pid`.
pub fn kill(pid: u32) {
    signal(pid, Signal::KILL);
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Sends `signal` to the process group led by `leader`.
pub fn signal_group(leader: u32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(leader as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// This process's id, for a remote function to report.
pub fn pid() -> u32 {
    std::process::id()
}

/// A registrar address of this host no other test uses (`local:` and a
/// name unique to this process and call), for a program that must not
/// use the default registrar. Such a tree meets in the user's private
/// socket directory; no port is involved, so unlike a port that was free a
/// moment ago, no other test can pick the same one.
pub fn private_registrar() -> String {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("local:test-{}-{n}", std::process::id())
}

/// A loopback address with a port that was free a moment ago, for a
/// program listening on TCP itself (a TLS-only tree); elsewhere use
/// [`private_registrar`], which cannot collide.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a bound address").to_string()
}

/// Every live process descended from `root` (children, grandchildren, ..),
/// found by scanning `/proc` for parent links.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && is_alive(pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// [`descendants`] of `root` except spares still waiting for a spawn (a
/// spawning actor keeps one ready; it waits with a pipe as its standard
/// input, which an actor never has): the processes that are actors, or
/// fork servers.
pub fn descendants_but_spares(root: u32) -> Vec<u32> {
    descendants(root)
        .into_iter()
        .filter(|&pid| !is_waiting_spare(pid))
        .collect()
}

/// Whether process `pid` is a spare still waiting for a spawn: its
/// standard input is a pipe (an exec'd spare's) or a socket (a forked
/// one's, linked to its actor), which an actor's never is, and no other of
/// its descriptors is that same file. (A fork server lends a spare's end
/// of the link as its own standard input for the instant of the fork,
/// while it still holds that end under another number: however slowly it
/// runs then, it is not taken for a spare.)
pub fn is_waiting_spare(pid: u32) -> bool {
    let Ok(stdin) = std::fs::read_link(format!("/proc/{pid}/fd/0")) else {
        return false;
    };
    let name = stdin.to_string_lossy();
    if !(name.starts_with("pipe:") || name.starts_with("socket:")) {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    !fds.flatten()
        .filter(|fd| fd.file_name() != "0")
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == stdin))
}

/// The scheduler time slice of every thread of process `pid`, as the
/// kernel reports it (`sched_getattr`); empty if it is gone.
pub fn thread_slices(pid: u32) -> Vec<u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| task.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(slice_of)
        .collect()
}

/// The time slice of the calling thread.
pub fn own_slice() -> u64 {
    slice_of(0).expect("sched_getattr of the calling thread")
}

fn slice_of(tid: i32) -> Option<u64> {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: sched_attr is plain data; all zeroes is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is a writable sched_attr of `size` bytes.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &raw mut attr, size, 0) };
    (got == 0).then_some(attr.sched_runtime)
}

/// [`exits_within`] for code outside a runtime.
pub fn exits_within_blocking(pid: u32, within: Duration) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(exits_within(pid, within))
}

/// Asserts that every one of `pids` exits within `within` (each measured
/// from when its turn comes): what a program's descendants must do once it
/// has gone.
pub fn assert_all_exit(pids: impl IntoIterator<Item = u32>, within: Duration) {
    for pid in pids {
        assert!(
            exits_within_blocking(pid, within),
            "descendant {pid} outlived the program"
        );
    }
}

/// A separately started program (a test binary of this crate) whose stdout
/// the test reads line by line; killed if dropped.
pub struct Program {
    pub child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Program {
    /// Starts `binary role` with `env` set, stdin/stdout/stderr piped.
    pub fn start(binary: &str, role: &str, env: &[(&str, &str)]) -> Program {
        use std::process::Stdio;
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(binary)
            .arg(role)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a program");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Program { child, lines }
    }

    /// The next line on its stdout.
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("the program prints within 10 s")
            .unwrap()
            .expect("the program printed nothing more")
    }

    /// Reads lines until one starts with `prefix`, recording
    /// `pid <name> <pid>` lines on the way.
    pub async fn expect(
        &mut self,
        prefix: &str,
        pids: &mut std::collections::HashMap<String, u32>,
    ) -> String {
        loop {
            let line = self.line().await;
            if let Some(rest) = line.strip_prefix("pid ") {
                if let Some((name, pid)) = rest.split_once(' ') {
                    pids.insert(name.to_owned(), pid.parse().unwrap_or_default());
                }
            }
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits (up to 10 s) for it to exit; its status and stderr.
    pub async fn finish(mut self) -> (std::process::ExitStatus, String) {
        use tokio::io::AsyncReadExt;
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the program exits within 10 s")
            .unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        (status, stderr)
    }
}

/// A chaos test's seed and round count: `TRACTOR_CHAOS_SEED` (to replay a
/// run) else a fresh one, and `TRACTOR_CHAOS_ROUNDS` else `default_rounds`.
pub fn chaos_settings(default_rounds: usize) -> (u64, usize) {
    let seed = std::env::var("TRACTOR_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let rounds = std::env::var("TRACTOR_CHAOS_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(default_rounds);
    (seed, rounds)
}

pub mod tally;
pub mod wire;

/// Where the actors of a test report their pids to the test's root (from
/// a remote function the root serves), and where the test waits for them.
#[derive(Default)]
pub struct PidBoard {
    pids: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    arrived: tokio::sync::Notify,
}

impl PidBoard {
    /// Records `name`'s pid.
    pub fn report(&self, name: String, pid: u32) {
        self.pids.lock().unwrap().insert(name, pid);
        self.arrived.notify_waiters();
    }

    /// Waits until `name` has reported its pid.
    pub async fn pid_of(&self, name: &str) -> u32 {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(pid) = self.pids.lock().unwrap().get(name) {
                return *pid;
            }
            arrived.await;
        }
    }

    /// Every report whose name starts with `prefix`.
    pub fn starting_with(&self, prefix: &str) -> Vec<(String, u32)> {
        self.pids
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, pid)| (name.clone(), *pid))
            .collect()
    }
}

/// The TCP ports process `pid` listens on (what any local user can learn
/// from `/proc/net/tcp` and the process's descriptors, or by scanning).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
                    Some(inode.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address st .. inode
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.iter().any(|ours| ours == inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect()
}

/// A certificate authority for TLS tests, its files in a fresh directory
/// (removed when dropped).
pub struct TestCa {
    dir: std::path::PathBuf,
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
    /// The CA's certificate (PEM).
    pub ca: std::path::PathBuf,
}

impl TestCa {
    /// A fresh CA called `label`.
    pub fn new(label: &str) -> TestCa {
        let dir = std::env::temp_dir().join(format!(
            "tractor-test-ca-{label}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        TestCa {
            dir,
            key,
            params,
            ca,
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this
    /// CA, with its key: (cert, key) PEM files.
    pub fn issue(&self, file: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params
            .signed_by(&key, &rcgen::Issuer::new(self.params.clone(), &self.key))
            .unwrap();
        let paths = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        paths
    }

    /// The environment that makes a program use TLS only, with `cert`.
    pub fn env(&self, cert: &(std::path::PathBuf, std::path::PathBuf)) -> Vec<(String, String)> {
        vec![
            (tractor::TRANSPORT_ENV.into(), "tls".into()),
            (tractor::TLS_CERT_ENV.into(), cert.0.display().to_string()),
            (tractor::TLS_KEY_ENV.into(), cert.1.display().to_string()),
            (tractor::TLS_CA_ENV.into(), self.ca.display().to_string()),
        ]
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `what` within 10 s, or the test fails: a guard against hangs, never a
/// success.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
}

/// Cuts every connection of this process to other actors, as a broken
/// network would (sockets with a named peer: TCP, or another actor's Unix
/// socket; and an unnamed socket pair another process made, the link a
/// forked child opens its parent's channel over; the runtime's own socket
/// pairs are left alone): its channels close, the process stays.
pub fn sever_actor_connections() {
    use rustix::net::{AddressFamily, SocketAddrUnix};
    use std::os::fd::BorrowedFd;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for fd in fds.flatten() {
        let Ok(fd) = fd.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: the descriptor stays open for this loop iteration.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(Some(peer)) = rustix::net::getpeername(borrowed) else {
            continue;
        };
        let to_an_actor = match peer.address_family() {
            AddressFamily::INET | AddressFamily::INET6 => true,
            AddressFamily::UNIX => {
                SocketAddrUnix::try_from(peer).is_ok_and(|unix| unix.path().is_some())
                    || rustix::net::sockopt::socket_peercred(borrowed).is_ok_and(|peer| {
                        peer.pid.as_raw_nonzero().get() as u32 != std::process::id()
                    })
            }
            _ => false,
        };
        if to_an_actor {
            let _ = rustix::net::shutdown(borrowed, rustix::net::Shutdown::Both);
        }
    }
}
pub mod netns;
