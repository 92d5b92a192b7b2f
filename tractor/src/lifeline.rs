//! No orphans: a child actor never outlives its parent.
//!
//! Three mechanisms, from most to least graceful:
//! 1. the channel to the parent closing cancels the actor (see `actor`);
//! 2. the kernel's parent-death signal (`PR_SET_PDEATHSIG`, SIGKILL) kills
//!    the child when the parent dies, even by SIGKILL. Linux ties it to the
//!    parent *thread* that forked the child, which is why parents fork from
//!    a dedicated thread that never exits (see `spawn::exec`);
//! 3. a re-check of `getppid()` right after arming, for a parent that died
//!    before the signal was armed.

/// Arms the parent-death signal; exits at once if the parent is already
/// gone.
pub(crate) fn arm(parent_pid: u32) {
    if let Err(err) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        tracing::warn!("could not arm the parent-death signal: {err}");
    }
    if std::os::unix::process::parent_id() != parent_pid {
        eprintln!("tractor: the parent actor (pid {parent_pid}) is already gone; exiting");
        std::process::exit(1);
    }
}
