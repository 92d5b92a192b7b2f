//! Credit-based flow control, both sides.
//!
//! A stream's consumer grants the producer a window of items up front and
//! more as it takes them. The producer spends one unit per item and waits
//! when it has none ([`Credit`]), so a fast producer never fills its
//! consumer's memory beyond the window, and a slow consumer slows the
//! producer down rather than failing it. The consumer does not take that
//! on trust: its reader counts what arrives against what it granted
//! ([`Granted`]), and a producer that sends past its credit gets its
//! stream failed.
//!
//! It lives with the channel because the channel routes credit frames to
//! the producer they are for, checks deliveries, and closes every
//! producer's credit when it goes down; streams (`stream`) only spend and
//! grant it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;

/// Outstanding credit is capped: a peer granting absurd amounts only lets
/// its producer run freely, it cannot overflow anything.
const MAX_OUTSTANDING: u64 = 1 << 40;

/// The items a producer may still send.
///
/// Producers take it in bulk ([`take_up_to`](Credit::take_up_to)): one
/// atomic operation buys a whole batch of items.
pub(crate) struct Credit {
    available: AtomicU64,
    closed: AtomicBool,
    changed: Notify,
    /// The one poll-based producer (a `MsgStream`'s sink), if it waits.
    polled: AtomicWaker,
}

impl Credit {
    pub(crate) fn new(window: u32) -> Self {
        Credit {
            available: AtomicU64::new(window.into()),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
            polled: AtomicWaker::new(),
        }
    }

    /// The consumer took `n` more items.
    pub(crate) fn grant(&self, n: u32) {
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                Some(available.saturating_add(n.into()).min(MAX_OUTSTANDING))
            });
        self.wake();
    }

    /// The consumer is gone: waiting producers give up.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn wake(&self) {
        self.changed.notify_waiters();
        self.polled.wake();
    }

    /// Takes what is there, at most `max`; 0 when there is none.
    fn try_take_up_to(&self, max: u32) -> u32 {
        let mut taken = 0;
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                taken = available.min(max.into()) as u32;
                (taken > 0).then(|| available - u64::from(taken))
            });
        taken
    }

    /// Spends one unit, waiting for the consumer if there is none; `false`
    /// once the consumer is gone.
    pub(crate) async fn take(&self) -> bool {
        self.take_up_to(1).await == 1
    }

    /// Takes between 1 and `max` units, waiting for the consumer if there
    /// are none; 0 once the consumer is gone.
    pub(crate) async fn take_up_to(&self, max: u32) -> u32 {
        loop {
            let taken = self.try_take_up_to(max);
            if taken > 0 {
                return taken;
            }
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_closed() {
                return 0;
            }
            let taken = self.try_take_up_to(max);
            if taken > 0 {
                return taken;
            }
            changed.await;
        }
    }

    /// As [`take_up_to`](Self::take_up_to), for one poll-based producer:
    /// `Ready(0)` once the consumer is gone.
    pub(crate) fn poll_take_up_to(&self, cx: &mut Context<'_>, max: u32) -> Poll<u32> {
        let taken = self.try_take_up_to(max);
        if taken > 0 {
            return Poll::Ready(taken);
        }
        self.polled.register(cx.waker());
        if self.is_closed() {
            return Poll::Ready(0);
        }
        match self.try_take_up_to(max) {
            0 => Poll::Pending,
            taken => Poll::Ready(taken),
        }
    }
}

/// The consumer's account of one stream: how many items it allowed the
/// producer, and how many arrived.
#[derive(Debug)]
pub(crate) struct Granted {
    allowed: AtomicU64,
    received: AtomicU64,
}

impl Granted {
    pub(crate) fn new(window: u32) -> Self {
        Granted {
            allowed: AtomicU64::new(window.into()),
            received: AtomicU64::new(0),
        }
    }

    /// The consumer grants `n` more items (before the credit frame goes
    /// out, so the producer can never be ahead of this count).
    pub(crate) fn grant(&self, n: u32) {
        self.allowed.fetch_add(n.into(), Ordering::AcqRel);
    }

    /// `n` more items arrived: `Err((received, allowed))` if that is more
    /// than the consumer allowed.
    pub(crate) fn receive(&self, n: u64) -> Result<(), (u64, u64)> {
        let received = self
            .received
            .fetch_add(n, Ordering::AcqRel)
            .saturating_add(n);
        let allowed = self.allowed.load(Ordering::Acquire);
        if received > allowed {
            Err((received, allowed))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spends_waits_and_closes() {
        let credit = std::sync::Arc::new(Credit::new(2));
        assert!(credit.take().await);
        assert!(credit.take().await);
        let waiter = tokio::spawn({
            let credit = credit.clone();
            async move { credit.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no credit left: the producer waits");
        credit.grant(1);
        assert!(waiter.await.unwrap());
        credit.grant(5);
        assert_eq!(credit.take_up_to(3).await, 3);
        assert_eq!(credit.take_up_to(3).await, 2);
        credit.close();
        assert!(!credit.take().await);
        credit.grant(u32::MAX);
        credit.grant(u32::MAX);
    }

    #[test]
    fn deliveries_past_the_grant_are_caught() {
        let granted = Granted::new(2);
        assert!(granted.receive(2).is_ok());
        assert_eq!(granted.receive(1), Err((3, 2)));
        let granted = Granted::new(2);
        granted.grant(1);
        assert!(granted.receive(3).is_ok());
    }
}
