//! Supervisors: what a nursery does when a child fails.
//!
//! A plain [`open_nursery`](crate::open_nursery) is one-cancels-all: the
//! first failure cancels every child and the body. A nursery opened with a
//! [`Supervisor`] ([`open_nursery_with`](crate::open_nursery_with)) restarts
//! instead, the way Erlang/OTP supervisors do, with the strategy choosing
//! which children go round again and the intensity bounding how often:
//! past the limit the supervisor gives up, cancels everything, and the
//! nursery fails with [`Error::RestartsExhausted`](crate::Error::RestartsExhausted)
//! like any other failure, so the level above (another supervisor, or a
//! plain nursery) handles it in turn.
//!
//! This file holds the policy only: which children a failure takes down,
//! whether a child's end calls for a restart, the sliding window of
//! restarts, and the backoff. The nursery carries the decisions out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Which children a supervisor restarts when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    OneForOne,
    OneForAll,
    RestForOne,
}

/// How a supervised nursery handles its children's failures; passed to
/// [`open_nursery_with`](crate::open_nursery_with).
///
/// Three strategies, as in Erlang/OTP:
/// - [`one_for_one`](Self::one_for_one): the failed child alone restarts;
/// - [`one_for_all`](Self::one_for_all): every other running child is
///   cancelled gracefully, then all restart in the order they were first
///   started;
/// - [`rest_for_one`](Self::rest_for_one): the failed child and those
///   started after it.
///
/// Children that have finished their part (a `run_in_actor` child that
/// answered, a child that ended and is not restarted) are not taken down
/// by another's failure.
///
/// Whether a child restarts after its end is its [`Restart`] type. More
/// than [`max_restarts`](Self::max_restarts) restarts within the window
/// and the supervisor gives up.
///
/// ```
/// use std::time::Duration;
///
/// let supervisor = tractor::Supervisor::one_for_one()
///     .max_restarts(5, Duration::from_secs(10))
///     .backoff(Duration::from_millis(100));
/// # let _ = supervisor;
/// ```
#[derive(Debug, Clone)]
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: u32,
    within: Duration,
    backoff: Duration,
    max_backoff: Option<Duration>,
}

/// Whether a supervised child is restarted after it ends; set with
/// `.restart(..)` on either spawn builder.
///
/// A child *ends unasked* when its process exits without its nursery (or
/// `cancel_actor`) asking; it *fails* when that end is abnormal (a crash,
/// a signal, a non-zero exit status, a lost parent channel) or, for a
/// `run_in_actor` child, when its call fails. An `Err` that a daemon's
/// function returns to its caller is that caller's, not a failure of the
/// daemon.
///
/// Under a supervisor, `start_actor` children default to `Permanent` and
/// `run_in_actor` children to `Temporary`. Without one, the setting has no
/// effect: every failure cancels the nursery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Restart {
    /// Restarted after any unasked end, even a clean exit.
    Permanent,
    /// Restarted after a failure only; a clean exit lets it go.
    Transient,
    /// Never restarted: its failure cancels the nursery, as in
    /// [`open_nursery`](crate::open_nursery).
    Temporary,
}

/// How a child ended, as the supervisor weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Exited with status 0 without being asked.
    Clean,
    /// Crashed, was killed, exited non-zero, or (`run_in_actor`) its call
    /// failed.
    Failed,
}

impl Restart {
    /// Whether a child of this type restarts after `end`.
    pub(crate) fn restarts_after(self, end: End) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => end == End::Failed,
            Restart::Temporary => false,
        }
    }
}

impl Supervisor {
    fn new(strategy: Strategy) -> Self {
        Supervisor {
            strategy,
            max_restarts: 3,
            within: Duration::from_secs(5),
            backoff: Duration::ZERO,
            max_backoff: None,
        }
    }

    /// Restarts the failed child alone.
    pub fn one_for_one() -> Self {
        Supervisor::new(Strategy::OneForOne)
    }

    /// Cancels every other running child gracefully, then restarts them
    /// all in the order they were first started: for children that only
    /// make sense together.
    pub fn one_for_all() -> Self {
        Supervisor::new(Strategy::OneForAll)
    }

    /// Restarts the failed child and every child started after it: for
    /// children that depend on those started before them.
    pub fn rest_for_one() -> Self {
        Supervisor::new(Strategy::RestForOne)
    }

    /// The restart intensity: more than `n` restarts within any window of
    /// `within` (sliding) and the supervisor gives up, cancels every
    /// child, and the nursery returns
    /// [`Error::RestartsExhausted`](crate::Error::RestartsExhausted).
    /// A failure that takes several children down (one_for_all,
    /// rest_for_one) counts once. By default 3 within 5 s; `n = 0` gives
    /// up at the first failure.
    pub fn max_restarts(mut self, n: u32, within: Duration) -> Self {
        self.max_restarts = n;
        self.within = within;
        self
    }

    /// Waits `d` before each restart (none by default), so that a child
    /// failing on something outside it (a busy port, a service not yet up)
    /// does not use its restarts up at once.
    pub fn backoff(mut self, d: Duration) -> Self {
        self.backoff = d;
        self
    }

    /// Makes the backoff grow: each further restart within the intensity
    /// window waits twice as long as the one before, up to `max`, and the
    /// delay falls back to [`backoff`](Self::backoff) once the window has
    /// no restarts left in it. Without this, every restart waits the same.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = Some(max);
        self
    }
}

/// A supervisor at work: the policy plus the restarts it has made.
#[derive(Debug)]
pub(crate) struct Supervising {
    policy: Supervisor,
    /// When each restart within the window was decided.
    recent: VecDeque<Instant>,
}

/// What to do about a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after `backoff`.
    Restart { backoff: Duration },
    /// Too many restarts: give up.
    GiveUp,
}

/// Which children a failure takes down besides the failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// The failed child alone.
    Itself,
    /// Every running child.
    All,
    /// The failed child and those started after it.
    Later,
}

impl Supervising {
    pub(crate) fn new(policy: Supervisor) -> Self {
        Supervising {
            policy,
            recent: VecDeque::new(),
        }
    }

    pub(crate) fn takes(&self) -> Takes {
        match self.policy.strategy {
            Strategy::OneForOne => Takes::Itself,
            Strategy::OneForAll => Takes::All,
            Strategy::RestForOne => Takes::Later,
        }
    }

    /// Decides on a restart at `now`, counting it if it is to happen.
    pub(crate) fn decide(&mut self, now: Instant) -> Verdict {
        let window = self.policy.within;
        while self
            .recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return Verdict::GiveUp;
        }
        let backoff = match self.policy.max_backoff {
            None => self.policy.backoff,
            Some(max) => {
                let doublings = u32::try_from(self.recent.len()).unwrap_or(u32::MAX).min(31);
                self.policy
                    .backoff
                    .saturating_mul(1 << doublings)
                    .min(max.max(self.policy.backoff))
            }
        };
        self.recent.push_back(now);
        Verdict::Restart { backoff }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_types_follow_the_end() {
        assert!(Restart::Permanent.restarts_after(End::Clean));
        assert!(Restart::Permanent.restarts_after(End::Failed));
        assert!(!Restart::Transient.restarts_after(End::Clean));
        assert!(Restart::Transient.restarts_after(End::Failed));
        assert!(!Restart::Temporary.restarts_after(End::Failed));
    }

    #[test]
    fn the_window_slides() {
        let start = Instant::now();
        let mut s =
            Supervising::new(Supervisor::one_for_one().max_restarts(2, Duration::from_secs(1)));
        let zero = Verdict::Restart {
            backoff: Duration::ZERO,
        };
        assert_eq!(s.decide(start), zero);
        assert_eq!(s.decide(start + Duration::from_millis(500)), zero);
        assert_eq!(
            s.decide(start + Duration::from_millis(900)),
            Verdict::GiveUp
        );
        // The first restart has left the window.
        assert_eq!(s.decide(start + Duration::from_millis(1000)), zero);
    }

    #[test]
    fn zero_restarts_gives_up_at_once() {
        let mut s =
            Supervising::new(Supervisor::one_for_all().max_restarts(0, Duration::from_secs(1)));
        assert_eq!(s.decide(Instant::now()), Verdict::GiveUp);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Supervising::new(
            Supervisor::rest_for_one()
                .max_restarts(10, Duration::from_secs(60))
                .backoff(ms(10))
                .max_backoff(ms(35)),
        );
        let delays: Vec<_> = (0..4)
            .map(|i| match s.decide(start + ms(i)) {
                Verdict::Restart { backoff } => backoff,
                Verdict::GiveUp => panic!("gave up"),
            })
            .collect();
        assert_eq!(delays, [ms(10), ms(20), ms(35), ms(35)]);
    }
}
