//! How the remote tasks of one actor ended, for tests to ask about
//! through an rpc of their own: a task holds a [`Guard`] while it runs and
//! [`finish`](Guard::finish)es it just before returning; a guard dropped
//! unfinished (the task's future was dropped: cancelled, or it failed)
//! counts as cancelled.
//!
//! The counts live in a process-wide `watch`, so an rpc can wait for an
//! event ([`wait_until`]) instead of sleeping and looking. The rpcs that
//! ask are here too; a daemon serves them once it enables [`MODULE`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The tasks of this actor that held a [`Guard`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Running now.
    pub live: u64,
    /// Ended by returning.
    pub finished: u64,
    /// Ended without returning: dropped (cancelled) or failed.
    pub cancelled: u64,
}

static TALLY: LazyLock<watch::Sender<Tally>> =
    LazyLock::new(|| watch::Sender::new(Tally::default()));

/// Held by a task while it runs.
pub struct Guard {
    finished: bool,
}

impl Guard {
    /// Counts a task live.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Guard {
        TALLY.send_modify(|tally| tally.live += 1);
        Guard { finished: false }
    }

    /// The task returns.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let finished = self.finished;
        TALLY.send_modify(|tally| {
            tally.live -= 1;
            if finished {
                tally.finished += 1;
            } else {
                tally.cancelled += 1;
            }
        });
    }
}

/// The tally now.
pub fn now() -> Tally {
    *TALLY.borrow()
}

/// Waits until `condition` holds of the tally; the tally then.
pub async fn wait_until(mut condition: impl FnMut(&Tally) -> bool) -> Tally {
    let mut tally = TALLY.subscribe();
    *tally
        .wait_for(|t| condition(t))
        .await
        .expect("the tally's sender is a static")
}

/// The module of the rpcs below, for `enable_modules`.
pub const MODULE: &str = module_path!();

/// Answers "pong": the actor still serves.
#[tractor::rpc]
pub async fn ping() -> String {
    "pong".into()
}

/// The actor's process id.
#[tractor::rpc]
pub async fn pid() -> u32 {
    std::process::id()
}

/// How the actor's guarded tasks have ended so far.
#[tractor::rpc]
pub async fn tally_now() -> Tally {
    now()
}

/// Returns once `n` guarded tasks of the actor have been cancelled and
/// none is running.
#[tractor::rpc]
pub async fn wait_cancelled(n: u64) -> Tally {
    wait_until(|t| t.cancelled >= n && t.live == 0).await
}

/// Returns once `n` guarded tasks of the actor have returned and none is
/// running.
#[tractor::rpc]
pub async fn wait_finished(n: u64) -> Tally {
    wait_until(|t| t.finished >= n && t.live == 0).await
}
