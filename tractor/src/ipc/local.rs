//! The private directory where one user's actors meet.
//!
//! Actors on one host talk over Unix sockets in a directory only their
//! user can enter (mode 0700, checked to be ours): other users cannot
//! connect to them, race on them or replace them, and both ends check the
//! other's uid with `SO_PEERCRED` besides. Every path in it is computed
//! here from something we already know — an actor's uuid, the registrar
//! address — never taken from a peer, so no peer can make us dial or
//! unlink a file of its choosing.
//!
//! - `<dir>/<uuid>.sock`: the socket of the actor with that uuid;
//! - `<dir>/registrar-<address>.sock`: the rendezvous of the tree whose
//!   registrar address is a loopback `host:port` (or a `local:<name>`);
//!   the root that binds it is the registrar, a second program given the
//!   same address joins it. No loopback TCP port is used, so a user who
//!   squats that port gets nothing from us.
//!
//! The directory is `$XDG_RUNTIME_DIR/tractor`, else `/tmp/tractor-<uid>`
//! if that is ours and private, else `$HOME/.tractor/run` (another user
//! squatting the `/tmp` name cannot stop us).

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use uuid::Uuid;

/// A registrar address naming a tree on this host only, with no port:
/// `local:<name>`.
pub(crate) const LOCAL_PREFIX: &str = "local:";

/// The user's private socket directory, made on first use.
pub(crate) fn dir() -> io::Result<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(find_dir)
        .as_deref()
        .map_err(|why| io::Error::new(io::ErrorKind::PermissionDenied, why.clone()))
}

fn find_dir() -> Result<PathBuf, String> {
    let uid = rustix::process::getuid().as_raw();
    let mut candidates = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        candidates.push(PathBuf::from(runtime).join("tractor"));
    }
    candidates.push(std::env::temp_dir().join(format!("tractor-{uid}")));
    if let Some(home) = std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
        candidates.push(PathBuf::from(home).join(".tractor").join("run"));
    }
    let mut refused = Vec::new();
    for dir in candidates {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        match std::fs::symlink_metadata(&dir) {
            Ok(meta)
                if meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0 =>
            {
                return Ok(dir);
            }
            Ok(_) => refused.push(format!(
                "{} (not a directory private to uid {uid})",
                dir.display()
            )),
            Err(err) => refused.push(format!("{} ({err})", dir.display())),
        }
    }
    Err(format!(
        "no private directory for actor sockets: tried {}; set XDG_RUNTIME_DIR to a directory \
         only this user can enter",
        refused.join(", ")
    ))
}

/// The socket of the actor `uuid` on this host.
pub(crate) fn actor_socket(uuid: Uuid) -> io::Result<PathBuf> {
    Ok(dir()?.join(format!("{}.sock", uuid.simple())))
}

/// The socket of the actor `uuid`, if it exists on this host.
pub(crate) fn existing_actor_socket(uuid: Uuid) -> Option<PathBuf> {
    actor_socket(uuid).ok().filter(|path| path.exists())
}

/// The rendezvous socket for registrar address `addr`, if that address is
/// one this host keeps to itself: a loopback `host:port` or `local:<name>`.
pub(crate) fn rendezvous(addr: &str) -> Option<String> {
    if let Some(name) = addr.strip_prefix(LOCAL_PREFIX) {
        return Some(name.to_owned());
    }
    let port = addr.rsplit_once(':')?.1;
    let host = host_of(addr);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (loopback && port.parse::<u16>().is_ok()).then(|| format!("{host}-{port}"))
}

/// The host part of `host:port` (an IPv6 address without its brackets).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The path of rendezvous `name` (see [`rendezvous`]).
pub(crate) fn rendezvous_socket(name: &str) -> io::Result<PathBuf> {
    // Nothing but a file name in our directory, whatever the name holds.
    let safe: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .take(64)
        .collect();
    Ok(dir()?.join(format!("registrar-{safe}.sock")))
}

/// What is at a socket path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Something listens there (or its backlog is full).
    Alive,
    /// A socket file nobody listens on: left by an actor that was killed.
    Stale,
    /// No such file.
    Missing,
}

/// Looks at `path` without ever blocking: a connect that would wait (a
/// full backlog) counts as alive.
pub(crate) fn probe(path: &Path) -> Probe {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return Probe::Missing;
    };
    let socket = match rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    ) {
        Ok(socket) => socket,
        // Out of descriptors: assume someone is there rather than unlink.
        Err(_) => return Probe::Alive,
    };
    match rustix::net::connect(socket.as_fd(), &addr) {
        Err(rustix::io::Errno::CONNREFUSED) => Probe::Stale,
        Err(rustix::io::Errno::NOENT) => Probe::Missing,
        Ok(()) | Err(_) => Probe::Alive,
    }
}

/// Removes what killed actors left in the directory: sockets nobody
/// listens on any more, and the temporary names (see [`bind`]) of sockets
/// whose binder died before it could rename them into place.
pub(crate) fn sweep_stale() {
    let Ok(dir) = dir() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = match path.extension().and_then(|ext| ext.to_str()) {
            Some("sock") => probe(&path) == Probe::Stale,
            Some("new") => binder(&path).is_some_and(|pid| !is_running(pid)),
            _ => false,
        };
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The pid of the process that binds a temporary socket name,
/// `<name>.<pid>.new`.
fn binder(path: &Path) -> Option<u32> {
    let (_, pid) = path.file_stem()?.to_str()?.rsplit_once('.')?;
    pid.parse().ok()
}

/// Whether process `pid` exists (a process of another user, or a zombie,
/// counts: its file is left for a later sweep).
fn is_running(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// An exclusive lock on the directory's `rendezvous.lock`, held while a
/// root decides whether it binds a rendezvous (so two roots starting
/// together do not both become the registrar); released when dropped. One
/// file for every rendezvous, never removed: it is held for microseconds.
pub(crate) struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    pub(crate) fn take() -> io::Result<Lock> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir()?.join("rendezvous.lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Lock(file))
    }
}

/// Binds a socket at `path` (mode 0600), replacing whatever is there (a
/// stale socket: the caller knows nobody listens at `path`).
///
/// The socket is bound and listening under a temporary name first, then
/// renamed into place: a socket file at a `.sock` path is always one that
/// listens, so another actor's [`sweep_stale`] never mistakes one being set
/// up (bound, not yet listening) for one left behind.
pub(crate) fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    Unplaced::bind(path.with_extension(format!("{}.new", std::process::id())))?.place(path)
}

/// A socket bound and listening under its temporary name (see [`bind`]),
/// not yet in place. A spare binds one before it knows which actor it
/// will be, so that becoming one only renames it ([`prebind`]); dropped
/// unplaced, its file goes.
pub(crate) struct Unplaced {
    listener: Option<std::os::unix::net::UnixListener>,
    path: PathBuf,
}

impl Unplaced {
    fn bind(path: PathBuf) -> io::Result<Unplaced> {
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        // Removed on error from here on.
        let unplaced = Unplaced {
            listener: Some(listener),
            path,
        };
        std::fs::set_permissions(&unplaced.path, std::fs::Permissions::from_mode(0o600))?;
        Ok(unplaced)
    }

    /// Renames the socket to `path`, where it is found from now on.
    pub(crate) fn place(mut self, path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
        std::fs::rename(&self.path, path)?;
        let listener = self.listener.take().expect("placed once");
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

impl Drop for Unplaced {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A socket for an actor not known yet, `<dir>/spare.<pid>.new` (the
/// sweep leaves it while this process lives).
pub(crate) fn prebind() -> io::Result<Unplaced> {
    Unplaced::bind(prebound_path(std::process::id())?)
}

/// Removes what spare `pid`, killed and reaped, may have bound ahead.
pub(crate) fn remove_prebound(pid: u32) {
    if let Ok(path) = prebound_path(pid) {
        let _ = std::fs::remove_file(path);
    }
}

fn prebound_path(pid: u32) -> io::Result<PathBuf> {
    Ok(dir()?.join(format!("spare.{pid}.new")))
}

/// Checks that the process on the other end of `stream` runs as our user.
pub(crate) fn check_peer(stream: impl std::os::fd::AsFd) -> io::Result<()> {
    let ours = rustix::process::getuid().as_raw();
    let theirs = rustix::net::sockopt::socket_peercred(stream)?.uid.as_raw();
    if theirs != ours {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("a local peer runs as uid {theirs}, not as this user ({ours})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_kept_on_this_host_have_a_rendezvous() {
        assert_eq!(
            rendezvous("127.0.0.1:1616").as_deref(),
            Some("127.0.0.1-1616")
        );
        assert_eq!(rendezvous("[::1]:7").as_deref(), Some("::1-7"));
        assert_eq!(rendezvous("localhost:9").as_deref(), Some("localhost-9"));
        assert_eq!(rendezvous("local:tree").as_deref(), Some("tree"));
        assert_eq!(rendezvous("10.0.0.1:1616"), None);
        assert_eq!(rendezvous("example.org:1616"), None);
        let path = rendezvous_socket("../../etc/x").unwrap();
        assert_eq!(path.parent(), Some(dir().unwrap()));
    }

    #[test]
    fn a_sweep_removes_the_temporary_name_a_dead_binder_left_and_keeps_a_live_ones() {
        let dead = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            child.id()
        };
        let left = |pid: u32| {
            let path = actor_socket(Uuid::new_v4())
                .unwrap()
                .with_extension(format!("{pid}.new"));
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            path
        };
        let (orphan, live) = (left(dead), left(std::process::id()));
        assert_eq!(binder(&orphan), Some(dead));
        sweep_stale();
        assert!(!orphan.exists(), "left by a process that is gone");
        assert!(live.exists(), "a live process may still be renaming it");
        std::fs::remove_file(&live).unwrap();
    }
}
