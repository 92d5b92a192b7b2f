//! Deadlines: how long a call may take, handed down a chain of calls.
//!
//! A call made with [`Call::timeout`](crate::Call::timeout) carries the
//! time it has left to the callee, which serves it with that deadline in
//! force (a task-local) and answers [`Error::Timeout`](crate::Error) when
//! it passes. Calls the serving task makes without a timeout of their own
//! inherit what is left, so when the outermost deadline passes every task
//! down the chain is cancelled by its own actor — even if the actors in
//! between are frozen or cut off. The time left travels, not the instant:
//! clocks of two hosts need not agree.
//!
//! Only the task serving the call (and what it awaits) sees the deadline;
//! a task it `tokio::spawn`s does not.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The deadline of the call this task is serving, if it has one (set by
/// its caller's [`Call::timeout`](crate::Call::timeout), or inherited from
/// further up the chain of calls).
///
/// Calls made from this task without a timeout of their own end by then.
///
/// ```
/// #[tractor::rpc]
/// async fn patient() -> String {
///     match tractor::current_deadline() {
///         Some(deadline) => format!("{:?} left", deadline - std::time::Instant::now()),
///         None => "no hurry".to_string(),
///     }
/// }
/// ```
pub fn current_deadline() -> Option<std::time::Instant> {
    inherited().map(Instant::into_std)
}

pub(crate) fn inherited() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// The deadline of a call with timeout `own`, made now: its own, else the
/// one this task inherited.
pub(crate) fn for_call(own: Option<Duration>) -> Option<Instant> {
    match own {
        // A timeout too large to add is no deadline at all.
        Some(timeout) => Instant::now().checked_add(timeout),
        None => inherited(),
    }
}

/// Runs `body` (a served call) with `deadline` in force.
pub(crate) async fn serve<F: Future>(deadline: Option<Instant>, body: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, body).await,
        None => body.await,
    }
}
