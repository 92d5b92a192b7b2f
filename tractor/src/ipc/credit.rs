//! Credit-based flow control, both sides, in items and in bytes.
//!
//! A stream's consumer grants the producer a window up front and more as
//! it takes items: a number of items and a number of bytes. The producer
//! spends items one per item and bytes as it sends, and waits when either
//! runs out ([`Credit`]), so a fast producer never fills its consumer's
//! memory beyond the window, and a slow consumer slows the producer down
//! rather than failing it. The byte window is what lets the item window be
//! large (small items go fast) without large items taking as much memory
//! times as many.
//!
//! A batch may start whenever some bytes are left and may overshoot them:
//! a single item larger than the byte window must still go. The consumer
//! does not take any of it on trust: its reader counts what arrives
//! against what it granted ([`Granted`]) — every item within the item
//! window, every frame started while bytes were left — and a producer that
//! sends past its credit gets its stream failed.
//!
//! It lives with the channel because the channel routes credit frames to
//! the producer they are for, checks deliveries, and closes every
//! producer's credit when it goes down; streams (`stream`) only spend and
//! grant it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;

/// Outstanding credit is capped: a peer granting absurd amounts only lets
/// its producer run freely, it cannot overflow anything.
const MAX_OUTSTANDING: u64 = 1 << 40;

/// A stream's window: how far its sender may run ahead of its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) items: u32,
    pub(crate) bytes: u32,
}

impl Window {
    /// No credit (until the receiver grants some).
    pub(crate) const NONE: Window = Window { items: 0, bytes: 0 };

    /// The most a peer may ask this actor to buffer for it: the window a
    /// context's function grants its caller is the one asked for, within
    /// these.
    const MOST: Window = Window {
        items: 1 << 20,
        bytes: 16 << 20,
    };

    /// This window, within what this actor buffers for a peer.
    pub(crate) fn within_bounds(self) -> Window {
        Window {
            items: self.items.clamp(1, Window::MOST.items),
            bytes: self.bytes.clamp(1, Window::MOST.bytes),
        }
    }
}

/// What a producer may still send.
///
/// Producers take items in bulk ([`take_up_to`](Credit::take_up_to)): one
/// atomic operation buys a whole batch.
pub(crate) struct Credit {
    available: AtomicU64,
    /// May go below zero by the last batch's overshoot.
    bytes: AtomicI64,
    closed: AtomicBool,
    changed: Notify,
    /// The one poll-based producer (a `MsgStream`'s sink), if it waits.
    polled: AtomicWaker,
}

impl Credit {
    pub(crate) fn new(window: Window) -> Self {
        Credit {
            available: AtomicU64::new(window.items.into()),
            bytes: AtomicI64::new(window.bytes.into()),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
            polled: AtomicWaker::new(),
        }
    }

    /// The consumer took `n` more items, of `bytes` bytes.
    pub(crate) fn grant(&self, n: u32, bytes: u32) {
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                Some(available.saturating_add(n.into()).min(MAX_OUTSTANDING))
            });
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                Some(
                    left.saturating_add(bytes.into())
                        .min(MAX_OUTSTANDING as i64),
                )
            });
        self.wake();
    }

    /// Gives back `n` items taken and not sent.
    pub(crate) fn give_back(&self, n: u32) {
        if n > 0 {
            self.grant(n, 0);
        }
    }

    /// `bytes` went out.
    pub(crate) fn spend_bytes(&self, bytes: usize) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The bytes the producer may still send (at most one batch may
    /// overshoot them).
    pub(crate) fn bytes_left(&self) -> i64 {
        self.bytes.load(Ordering::Acquire)
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

    /// Takes what is there, at most `max`, if some bytes are left too and
    /// the consumer is still there; 0 otherwise.
    fn try_take_up_to(&self, max: u32) -> u32 {
        if self.bytes_left() <= 0 || self.is_closed() {
            return 0;
        }
        let mut taken = 0;
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                taken = available.min(max.into()) as u32;
                (taken > 0).then(|| available - u64::from(taken))
            });
        taken
    }

    /// Spends one item, waiting for the consumer if there is none (or no
    /// bytes are left); `false` once the consumer is gone.
    pub(crate) async fn take(&self) -> bool {
        self.take_up_to(1).await == 1
    }

    /// Takes between 1 and `max` items, waiting for the consumer if there
    /// are none (or no bytes are left); 0 once the consumer is gone.
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

    /// Waits (poll-based) until some bytes are left; `Ready(false)` once
    /// the consumer is gone.
    pub(crate) fn poll_bytes(&self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.bytes_left() > 0 {
            return Poll::Ready(true);
        }
        self.polled.register(cx.waker());
        if self.is_closed() {
            return Poll::Ready(false);
        }
        if self.bytes_left() > 0 {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    }
}

/// The consumer's account of one stream: what it allowed the producer so
/// far, and what arrived.
#[derive(Debug)]
pub(crate) struct Granted {
    allowed: AtomicU64,
    received: AtomicU64,
    allowed_bytes: AtomicU64,
    received_bytes: AtomicU64,
}

/// What the producer of a stream sent past its credit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Overrun {
    /// `received` items arrived on a window of `allowed`.
    Items { received: u64, allowed: u64 },
    /// A frame began after `received` bytes, the window being `allowed`.
    Bytes { received: u64, allowed: u64 },
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Overrun::Items { received, allowed } => {
                write!(f, "{received} items with credit for {allowed}")
            }
            Overrun::Bytes { received, allowed } => write!(
                f,
                "a batch after {received} bytes with credit for {allowed} bytes"
            ),
        }
    }
}

impl Granted {
    pub(crate) fn new(window: Window) -> Self {
        Granted {
            allowed: AtomicU64::new(window.items.into()),
            received: AtomicU64::new(0),
            allowed_bytes: AtomicU64::new(window.bytes.into()),
            received_bytes: AtomicU64::new(0),
        }
    }

    /// The consumer grants `n` more items and `bytes` more bytes (before
    /// the credit frame goes out, so the producer can never be ahead of
    /// this count).
    pub(crate) fn grant(&self, n: u32, bytes: u32) {
        self.allowed.fetch_add(n.into(), Ordering::AcqRel);
        self.allowed_bytes.fetch_add(bytes.into(), Ordering::AcqRel);
    }

    /// A frame of `n` items in `bytes` bytes arrived: an [`Overrun`] if
    /// the producer had no credit for it.
    pub(crate) fn receive(&self, n: u64, bytes: u64) -> Result<(), Overrun> {
        let before = self.received_bytes.fetch_add(bytes, Ordering::AcqRel);
        let allowed_bytes = self.allowed_bytes.load(Ordering::Acquire);
        if before >= allowed_bytes {
            return Err(Overrun::Bytes {
                received: before,
                allowed: allowed_bytes,
            });
        }
        let received = self
            .received
            .fetch_add(n, Ordering::AcqRel)
            .saturating_add(n);
        let allowed = self.allowed.load(Ordering::Acquire);
        if received > allowed {
            return Err(Overrun::Items { received, allowed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Window = Window {
        items: 2,
        bytes: 100,
    };

    #[tokio::test]
    async fn spends_waits_and_closes() {
        let credit = std::sync::Arc::new(Credit::new(WINDOW));
        assert!(credit.take().await);
        assert!(credit.take().await);
        let waiter = tokio::spawn({
            let credit = credit.clone();
            async move { credit.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no credit left: the producer waits");
        credit.grant(1, 0);
        assert!(waiter.await.unwrap());
        credit.grant(5, 0);
        assert_eq!(credit.take_up_to(3).await, 3);
        assert_eq!(credit.take_up_to(3).await, 2);
        credit.close();
        assert!(!credit.take().await);
        credit.grant(u32::MAX, u32::MAX);
        credit.grant(u32::MAX, u32::MAX);
    }

    #[tokio::test]
    async fn no_bytes_left_holds_the_producer_back() {
        let credit = std::sync::Arc::new(Credit::new(WINDOW));
        credit.spend_bytes(250);
        let waiter = tokio::spawn({
            let credit = credit.clone();
            async move { credit.take().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "items but no bytes: the producer waits"
        );
        credit.grant(0, 100);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "still 50 bytes over");
        credit.grant(0, 51);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn deliveries_past_the_grant_are_caught() {
        let granted = Granted::new(WINDOW);
        assert!(granted.receive(2, 10).is_ok());
        assert_eq!(
            granted.receive(1, 10),
            Err(Overrun::Items {
                received: 3,
                allowed: 2
            })
        );
        let granted = Granted::new(WINDOW);
        granted.grant(1, 0);
        assert!(granted.receive(3, 10).is_ok());
        // A frame may overshoot the bytes; the next one may not start.
        let granted = Granted::new(WINDOW);
        assert!(granted.receive(1, 500).is_ok());
        assert_eq!(
            granted.receive(1, 1),
            Err(Overrun::Bytes {
                received: 500,
                allowed: 100
            })
        );
    }
}
