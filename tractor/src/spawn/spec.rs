//! [`SpawnSpec`]: everything a child needs to become an actor.
//!
//! It holds the tree's secret, so it never goes through the environment or
//! argv (which other users can read in `/proc`, and which processes the
//! child starts would inherit). An exec'd child gets it as its standard
//! input, an anonymous in-memory file (a memfd) no other process holds;
//! its environment says only which descriptor to read. The child reads it
//! and points its standard input at `/dev/null` before anything else runs.
//! A forked child gets it from the fork server's control socket.
//!
//! A *spare* is a child started before anyone asked for it (see
//! `spawn::spare`): it does every step of its start that does not depend
//! on its spec (exec and linking, the function table, its runtime, its
//! socket), then waits for the spec on its standard input, a socket pair
//! only its spawner holds the other end of: the spec comes over it
//! length-prefixed, and it stays open as the child's channel to that
//! spawner.

use serde::{Deserialize, Serialize};

use crate::uid::ActorUid;

/// The environment variable that turns a process into a child actor: the
/// number of the descriptor its spec is to be read from.
pub(crate) const SPEC_FD_ENV: &str = "TRACTOR_SPAWN_FD";

/// Set (to `"<spawner pid> <worker threads>"`) in the environment of an
/// exec'd spare, beside [`SPEC_FD_ENV`]: read the spec once ready.
pub(crate) const SPARE_ENV: &str = "TRACTOR_SPARE";

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
    /// Set for a child placed on another host: what that host's
    /// environment cannot tell it. Its `parent_pid` is then 0: it dies
    /// with the process that started it there (see `spawn::ssh`).
    pub remote: Option<Remote>,
    /// The tree's heartbeat on channels between hosts.
    pub heartbeat: crate::ipc::heartbeat::Heartbeat,
    /// The tree's registrars beside `registrar_addr`.
    pub other_registrars: Vec<String>,
}

/// What a child on another host needs from its parent's host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Remote {
    /// The parent's transport settings, certificate included.
    pub transport: crate::ipc::tls::Portable,
    /// Where it listens for TCP: the host it was placed on, as its parent
    /// named it.
    pub listen_host: String,
}

/// How a child process begins: with its spec, or as a spare that gets it
/// once ready.
pub(crate) enum Begin {
    Spec(Box<SpawnSpec>),
    Spare(Spare),
}

/// What a spare knows before its spec comes. A spare is *linked*: its
/// standard input is a socket to the actor that will spawn it, which the
/// spec comes over (length-prefixed) and which stays open as the child's
/// channel to that parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spare {
    /// Its spawner: the spare dies with it.
    pub parent_pid: u32,
    /// Worker threads for its runtime, built before the spec comes; a spec
    /// asking for another number gets a runtime of its own.
    pub workers: usize,
}

impl Spare {
    fn from_setting(setting: &str) -> Option<Spare> {
        let (parent, workers) = setting.split_once(' ')?;
        Some(Spare {
            parent_pid: parent.parse().ok()?,
            workers: workers.parse().ok()?,
        })
    }

    /// The setting for [`SPARE_ENV`].
    pub(crate) fn setting(&self) -> String {
        format!("{} {}", self.parent_pid, self.workers)
    }
}

impl SpawnSpec {
    /// The spec as its spawner sends it.
    pub(crate) fn encode(&self) -> std::io::Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(std::io::Error::other)
    }

    /// The spec in a fresh memfd, read from its start; close-on-exec (the
    /// spawner clears that flag in the one child meant to inherit it).
    pub(crate) fn to_memfd(&self) -> std::io::Result<std::fs::File> {
        use std::io::{Seek, Write};
        let bytes = self.encode()?;
        let fd = rustix::fs::memfd_create("tractor-spawn-spec", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&bytes)?;
        file.rewind()?;
        Ok(file)
    }

    /// How this process was spawned, from its environment (whose
    /// variables are removed): `None` for a root process; an error if the
    /// variables are there but unusable (a parent from a different build).
    /// A child with its spec reads it here; a spare reads it later, with
    /// [`SpawnSpec::read_stdin`].
    pub(crate) fn take_from_env() -> Option<Result<Begin, String>> {
        let fd = std::env::var_os(SPEC_FD_ENV)?;
        let spare = std::env::var_os(SPARE_ENV);
        // SAFETY: called first thing when the process starts, before the
        // runtime or any thread of ours exists (under libtest, the harness'
        // other threads are idle waiting for this one test).
        unsafe {
            std::env::remove_var(SPEC_FD_ENV);
            std::env::remove_var(SPARE_ENV);
        }
        let Some(fd) = fd.to_str().and_then(|fd| fd.parse::<i32>().ok()) else {
            return Some(Err(format!("{SPEC_FD_ENV} is not a descriptor number")));
        };
        if let Some(spare) = spare {
            return Some(match spare.to_str().and_then(Spare::from_setting) {
                Some(spare) if fd == 0 => Ok(Begin::Spare(spare)),
                _ => Err(format!("bad {SPARE_ENV} setting")),
            });
        }
        Some(match read_spec(fd) {
            Ok(Some(spec)) => Ok(Begin::Spec(Box::new(spec))),
            Ok(None) => Err("the spawn spec is empty".to_owned()),
            Err(err) => Err(err),
        })
    }

    /// A spare's spec (see [`Spare`]), length-prefixed on its standard
    /// input, and the link itself, moved off descriptor 0
    /// (which becomes `/dev/null`, as for any child). `None` if the link
    /// closed with no spec (the spare is not needed).
    pub(crate) fn read_link() -> Result<Option<(Self, std::os::fd::OwnedFd)>, String> {
        let stdin = rustix::stdio::stdin();
        let mut len = [0u8; 4];
        match read_exactly(stdin, &mut len) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(err) => return Err(format!("the spawn spec could not be read: {err}")),
        }
        let len = u32::from_le_bytes(len) as u64;
        if len == 0 || len > MAX_SPEC {
            return Err(format!("a spawn spec of {len} bytes"));
        }
        let mut bytes = vec![0u8; len as usize];
        match read_exactly(stdin, &mut bytes) {
            Ok(true) => {}
            Ok(false) => return Err("the link closed in the middle of the spec".to_owned()),
            Err(err) => return Err(format!("the spawn spec could not be read: {err}")),
        }
        let spec = postcard::from_bytes(&bytes).map_err(|err| err.to_string())?;
        let link = rustix::io::fcntl_dupfd_cloexec(stdin, 3)
            .map_err(|err| format!("the link to the parent could not be kept: {err}"))?;
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = rustix::stdio::dup2_stdin(&null);
        }
        Ok(Some((spec, link)))
    }
}

/// `value` as a length-prefixed postcard frame: how a spec travels to a
/// spare over its link, and every fork server message.
pub(crate) fn frame<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(value).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Fills `buf` from `fd`; `false` if the stream ended before its first
/// byte.
fn read_exactly(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::io::read(fd, &mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(true)
}

/// Reads the spec descriptor `fd` holds, then closes it (descriptor 0, the
/// standard input, becomes `/dev/null` instead, as for any child).
fn read_spec(fd: i32) -> Result<Option<SpawnSpec>, String> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: a descriptor the parent made for this process alone; no
    // other code here uses it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if rustix::io::fcntl_getfd(fd).is_err() {
        return Err(format!("{SPEC_FD_ENV} names no open descriptor"));
    }
    let mut bytes = Vec::new();
    let read = read_all(fd, &mut bytes);
    if fd.as_raw_fd() == 0 {
        if let Ok(null) = std::fs::File::open("/dev/null") {
            let _ = rustix::stdio::dup2_stdin(&null);
        }
    } else {
        // SAFETY: ours alone, as above; closed once, here.
        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd.as_raw_fd()) });
    }
    if let Err(err) = read {
        return Err(format!("the spawn spec could not be read: {err}"));
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|err| err.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_setting_round_trips_and_nothing_else_parses() {
        let spare = Spare {
            parent_pid: 42,
            workers: 3,
        };
        assert_eq!(Spare::from_setting(&spare.setting()), Some(spare));
        for bad in ["42", "42 3 4", "x 3", "42 -1", ""] {
            assert_eq!(Spare::from_setting(bad), None, "{bad:?}");
        }
    }
}
