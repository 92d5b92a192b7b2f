//! Credit-based flow control, producer side.
//!
//! It lives with the channel because the channel routes credit frames to
//! the producer they are for and closes every producer's credit when it
//! goes down; streams (`stream`) only spend it.
//!
//! A stream's consumer grants the producer a window of items up front and
//! more as it takes them. The producer spends one unit per item and waits
//! when it has none, so a fast producer never fills its consumer's memory
//! beyond the window, and a slow consumer slows the producer down rather
//! than failing it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Outstanding credit is capped: a peer granting absurd amounts only lets
/// its producer run freely, it cannot overflow anything.
const MAX_OUTSTANDING: u64 = 1 << 40;

/// The items a producer may still send.
pub(crate) struct Credit {
    available: AtomicU64,
    closed: AtomicBool,
    changed: Notify,
}

impl Credit {
    pub(crate) fn new(window: u32) -> Self {
        Credit {
            available: AtomicU64::new(window.into()),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The consumer took `n` more items.
    pub(crate) fn grant(&self, n: u32) {
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                Some(available.saturating_add(n.into()).min(MAX_OUTSTANDING))
            });
        self.changed.notify_waiters();
    }

    /// The consumer is gone: waiting producers give up.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn try_take(&self) -> bool {
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                available.checked_sub(1)
            })
            .is_ok()
    }

    /// Spends one unit, waiting for the consumer if there is none; `false`
    /// once the consumer is gone.
    pub(crate) async fn take(&self) -> bool {
        loop {
            if self.try_take() {
                return true;
            }
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            if self.try_take() {
                return true;
            }
            changed.await;
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
        credit.close();
        assert!(!credit.take().await);
        credit.grant(u32::MAX);
        credit.grant(u32::MAX);
    }
}
