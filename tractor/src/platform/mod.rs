//! What tractor needs from the operating system beyond POSIX sockets and
//! processes, behind one boundary.
//!
//! tractor runs on Linux today. The core (channels, nurseries, spawning
//! logic) never calls the OS for these things itself; it calls this
//! module, so a port to another platform replaces this module (a sibling
//! of `linux.rs`) rather than touching the core. What each function relies
//! on, and what macOS would use instead, is in `docs/design.md`
//! ("Platforms").
//!
//! | need | Linux |
//! | --- | --- |
//! | a child dies with its parent | `PR_SET_PDEATHSIG` + `getppid` re-check |
//! | wait for / kill a process without pid reuse races | pidfds |
//! | start this executable again | `/proc/self/exe` |
//! | count an actor's threads | `/proc/self/stat` |
//! | map in the code a fork runs as it exits, ahead | `dl_iterate_phdr` |
//! | run code before `main` (the fork server) | an `.init_array` entry |
//! | close every inherited descriptor in a fork | `close_range`, else `/proc/self/fd` |
//! | enough descriptors for many peers | `setrlimit(RLIMIT_NOFILE)` to the hard limit |
//! | start a process in the background, preempted by the busy ones | `sched_setattr` time slice (EEVDF, Linux 6.12+; ignored before) |

#[cfg(target_os = "linux")]
mod exit_path;
#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
pub(crate) use exit_path::prefault_exit_path;

#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!(
    "tractor runs on Linux today; docs/design.md (\"Platforms\") lists what a port needs"
);
