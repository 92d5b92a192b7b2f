//! The cancellation budget: every figure of an actor's shutdown, in one
//! place.
//!
//! Cancelling an actor is a promise with a deadline. The parent sends a
//! cancel request carrying a grace `G` and, `G` later, kills whatever is
//! left. For the graceful path to win that race, the actor must answer
//! *before* `G`, and it can only answer once its own children are gone,
//! which must therefore happen earlier still. [`Budget`] is the one type
//! that splits `G` into those steps, for the actor and, recursively, for
//! its subtree:
//!
//! ```text
//! request                                                     deadline (G)
//!   |-- tasks unwind, children cancelled --|-- reap --|-- answer, exit --|
//!   0                                children_by   answer_by             G
//!                                        = answer_by - R   = G - M
//! ```
//!
//! - `M`, the *margin*, is kept for the answer to reach the parent and for
//!   the process to exit after answering;
//! - `R`, the *reap allowance*, is kept for killing (SIGKILL) and reaping
//!   children that are still there at `children_by`;
//! - each child is given the grace that ends at `children_by`, so its own
//!   budget nests inside this one. A grace shorter than [`MIN_GRACE`] is
//!   not worth a request: such children are killed at once.
//!
//! **The guarantee.** An actor cancelled with grace `G` answers within
//! `G - M` and exits right after; every descendant has exited by then too,
//! gracefully where its own budget allowed, killed where not. Only when the
//! actor itself cannot answer (frozen, or blocked in code that ignores
//! cancellation past its budget) does the parent kill it at `G`, and then
//! the whole subtree ends within `G` plus the time the kernel takes to
//! deliver a SIGKILL and the parent to reap (the `cancel_bound` test
//! measures it on a three-level tree with a frozen grandchild).

use std::time::Duration;

use tokio::time::Instant;

/// The grace a cancel request gives when nobody chose one: by
/// `portal.cancel_actor()`, `n.cancel()`, a failing nursery and a root
/// winding down.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_millis(1000);

/// The longest grace a peer may ask for; a request beyond it is a
/// protocol error.
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(60);

/// Below this, children are killed rather than asked: a request that
/// short cannot be honoured anyway.
pub(crate) const MIN_GRACE: Duration = Duration::from_millis(10);

/// A tenth of the grace, kept within these bounds, is set aside for the
/// margin `M` and again for the reap allowance `R`.
const SHARE_MIN: Duration = Duration::from_millis(5);
const SHARE_MAX: Duration = Duration::from_millis(100);

/// One actor's shutdown plan, from the moment it was asked to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    start: Instant,
    grace: Duration,
}

impl Budget {
    /// A budget of `grace` starting now.
    pub(crate) fn new(grace: Duration) -> Self {
        Budget {
            start: Instant::now(),
            grace: grace.min(MAX_GRACE),
        }
    }

    /// The grace this budget was made with.
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    fn share(&self) -> Duration {
        (self.grace / 10).clamp(SHARE_MIN, SHARE_MAX)
    }

    /// When whoever asked gives up and kills.
    pub(crate) fn deadline(&self) -> Instant {
        self.start + self.grace
    }

    /// When the actor answers the request, done or not.
    pub(crate) fn answer_by(&self) -> Instant {
        self.deadline()
            .checked_sub(self.share())
            .unwrap_or(self.start)
            .max(self.start)
    }

    /// When the actor's tasks and children must be gone; children still
    /// there are killed then.
    pub(crate) fn children_by(&self) -> Instant {
        self.answer_by()
            .checked_sub(self.share())
            .unwrap_or(self.start)
            .max(self.start)
    }

    /// The grace to give a child asked to cancel now: what is left until
    /// [`children_by`](Self::children_by), or zero (kill it at once) when
    /// that is less than [`MIN_GRACE`].
    pub(crate) fn child_grace(&self) -> Duration {
        let left = self.children_by().saturating_duration_since(Instant::now());
        if left < MIN_GRACE {
            Duration::ZERO
        } else {
            left
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn steps_nest_inside_the_grace() {
        let budget = Budget::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(budget.deadline() - start, Duration::from_millis(1000));
        assert_eq!(budget.answer_by() - start, Duration::from_millis(900));
        assert_eq!(budget.children_by() - start, Duration::from_millis(800));
        assert_eq!(budget.child_grace(), Duration::from_millis(800));
        // A child's whole budget ends before its parent must answer.
        let child = Budget::new(budget.child_grace());
        assert!(child.deadline() <= budget.children_by());
        tokio::time::advance(Duration::from_millis(795)).await;
        assert_eq!(budget.child_grace(), Duration::ZERO, "too late to ask");
    }

    #[tokio::test(start_paused = true)]
    async fn tiny_and_huge_graces_stay_sane() {
        let tiny = Budget::new(Duration::from_millis(3));
        assert!(tiny.children_by() <= tiny.answer_by());
        assert!(tiny.answer_by() <= tiny.deadline());
        assert_eq!(tiny.child_grace(), Duration::ZERO);
        let huge = Budget::new(Duration::from_secs(3600));
        assert_eq!(huge.grace(), MAX_GRACE);
    }
}
