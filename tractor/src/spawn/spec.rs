//! [`SpawnSpec`]: everything a child needs to become an actor.
//!
//! It holds the tree's secret, so it never goes through the environment or
//! argv (which other users can read in `/proc`, and which processes the
//! child starts would inherit). An exec'd child gets it as its standard
//! input, an anonymous in-memory file (a memfd) no other process holds;
//! its environment says only which descriptor to read. The child reads it
//! and points its standard input at `/dev/null` before anything else runs.
//! A forked child gets it from the fork server's control socket.

use serde::{Deserialize, Serialize};

use crate::uid::ActorUid;

/// The environment variable that turns a process into a child actor: the
/// number of the descriptor its spec is to be read from.
pub(crate) const SPEC_FD_ENV: &str = "TRACTOR_SPAWN_FD";

/// A spec is a few hundred bytes plus the statespace; more than this is
/// not one of ours.
const MAX_SPEC: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpawnSpec {
    pub uid: ActorUid,
    /// The parent: the child connects back to it (through its socket, on
    /// this host, or at its TCP address).
    pub parent: ActorUid,
    pub parent_addr: Option<String>,
    /// Checked right after start: if the parent is already gone, exit.
    pub parent_pid: u32,
    pub registrar_addr: String,
    pub parent_is_registrar: bool,
    pub enable_modules: Vec<String>,
    pub statespace: Vec<(String, Vec<u8>)>,
    pub loglevel: Option<String>,
    /// The arguments that make this executable a child (see
    /// `Settings::exec_args`); passed on to grandchildren.
    pub exec_args: Vec<String>,
    /// How this child starts its own children.
    pub start_method: super::StartMethod,
    /// Worker threads for the child's runtime.
    pub workers: usize,
    /// Worker threads for the child's own children, unless their spawn
    /// says otherwise (the tree's default, handed down).
    pub child_workers: usize,
    /// Calls one peer may have running in the child at once.
    pub max_concurrent_calls: usize,
    /// The tree's secret.
    pub secret: crate::auth::Secret,
    /// Single-use: the child proves the secret over it when it first
    /// connects to its parent.
    pub challenge: [u8; crate::auth::NONCE],
}

impl SpawnSpec {
    /// The spec in a fresh memfd, read from its start; close-on-exec (the
    /// spawner clears that flag in the one child meant to inherit it).
    pub(crate) fn to_memfd(&self) -> std::io::Result<std::fs::File> {
        use std::io::{Seek, Write};
        let bytes = postcard::to_allocvec(self).map_err(std::io::Error::other)?;
        let fd = rustix::fs::memfd_create("tractor-spawn-spec", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&bytes)?;
        file.rewind()?;
        Ok(file)
    }

    /// Reads the spec this process was spawned with, and closes its
    /// descriptor; removes the variable that named it.
    ///
    /// `None` for a root process; an error if the variable is there but
    /// the spec is unreadable (a parent from a different build).
    pub(crate) fn take_from_env() -> Option<Result<Self, String>> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let fd = std::env::var_os(SPEC_FD_ENV)?;
        // SAFETY: called first thing when the process starts, before the
        // runtime or any thread of ours exists (under libtest, the harness'
        // other threads are idle waiting for this one test).
        unsafe { std::env::remove_var(SPEC_FD_ENV) };
        let Some(fd) = fd.to_str().and_then(|fd| fd.parse::<i32>().ok()) else {
            return Some(Err(format!("{SPEC_FD_ENV} is not a descriptor number")));
        };
        // SAFETY: a descriptor the parent made for this process alone; no
        // other code here uses it yet.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if rustix::io::fcntl_getfd(fd).is_err() {
            return Some(Err(format!("{SPEC_FD_ENV} names no open descriptor")));
        }
        let mut bytes = Vec::new();
        if let Err(err) = read_all(fd, &mut bytes) {
            return Some(Err(format!("the spawn spec could not be read: {err}")));
        }
        // Done with it: standard input becomes /dev/null, as for any child
        // (a descriptor past stdio is just closed).
        if fd.as_raw_fd() == 0 {
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = rustix::stdio::dup2_stdin(&null);
            }
        } else {
            // SAFETY: ours alone, as above; closed once, here.
            drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd.as_raw_fd()) });
        }
        Some(postcard::from_bytes(&bytes).map_err(|err| err.to_string()))
    }
}

/// Reads what `fd` holds, up to [`MAX_SPEC`]: a memfd's size is known, so
/// one read takes it all (the child's start waits on this), else until the
/// end.
fn read_all(fd: std::os::fd::BorrowedFd<'_>, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let size = rustix::fs::fstat(fd).map_or(0, |stat| stat.st_size.max(0) as u64);
    if size > 0 && size <= MAX_SPEC {
        bytes.resize(size as usize, 0);
        let mut filled = 0;
        while filled < bytes.len() {
            match rustix::io::read(fd, &mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        bytes.truncate(filled);
        return Ok(());
    }
    let file = std::fs::File::from(rustix::io::dup(fd)?);
    file.take(MAX_SPEC).read_to_end(bytes).map(drop)
}
