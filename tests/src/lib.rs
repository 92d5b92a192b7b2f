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

/// A loopback address with a port that was free a moment ago, for a
/// program that must not use the default registrar port.
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

/// [`exits_within`] for code outside a runtime.
pub fn exits_within_blocking(pid: u32, within: Duration) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(exits_within(pid, within))
}
