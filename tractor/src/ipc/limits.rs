//! How much one peer may have this actor serve at once.
//!
//! Every call (or stream) a peer opens is admitted before it runs: it
//! takes one of the channel's call slots and a share of its in-flight
//! byte budget, sized by the call's frame (its arguments), and gives both
//! back when it ends. When either is used up the channel's reader stops
//! reading from that peer until a call finishes, so the socket pushes back
//! on the peer instead of this actor queueing on its say-so: what a peer
//! can make an actor hold is bounded by `calls` tasks and
//! [`MAX_IN_FLIGHT_BYTES`] of arguments, plus what they produce.
//!
//! A stream counts for as long as it runs. A peer that keeps `calls`
//! calls open, each waiting for something only a further call on the same
//! channel would bring, waits for ever: raise the limit for such a peer.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Calls one peer may have running in an actor at once, unless the root
/// or the spawn says otherwise.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 256;

/// Bytes of arguments one peer may have in calls running at once; a single
/// larger call is admitted alone.
pub(crate) const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;

/// The byte budget is counted in units of this many bytes.
const UNIT: usize = 4096;
const UNITS: usize = MAX_IN_FLIGHT_BYTES / UNIT;

/// One channel's admission control; cheap to clone.
#[derive(Clone)]
pub(crate) struct Limits {
    calls: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

/// A call's admission: held while it runs.
pub(crate) struct Admission {
    _call: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Limits {
    pub(crate) fn new(max_calls: usize) -> Self {
        Limits {
            calls: Arc::new(Semaphore::new(max_calls.max(1))),
            bytes: Arc::new(Semaphore::new(UNITS)),
        }
    }

    fn units(frame_len: usize) -> u32 {
        (frame_len / UNIT).clamp(1, UNITS) as u32
    }

    /// Admits a call of `frame_len` bytes if there is room now.
    pub(crate) fn try_admit(&self, frame_len: usize) -> Option<Admission> {
        let call = self.calls.clone().try_acquire_owned().ok()?;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(Self::units(frame_len))
            .ok()?;
        Some(Admission {
            _call: call,
            _bytes: bytes,
        })
    }

    /// Admits a call of `frame_len` bytes once there is room.
    pub(crate) async fn admit(&self, frame_len: usize) -> Admission {
        // The semaphores are never closed, so acquiring only waits.
        let call = self.calls.clone().acquire_owned().await;
        let bytes = self
            .bytes
            .clone()
            .acquire_many_owned(Self::units(frame_len))
            .await;
        match (call, bytes) {
            (Ok(call), Ok(bytes)) => Admission {
                _call: call,
                _bytes: bytes,
            },
            _ => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_and_bytes_are_both_bounded() {
        let limits = Limits::new(2);
        let a = limits.try_admit(10).unwrap();
        let b = limits.try_admit(10).unwrap();
        assert!(limits.try_admit(10).is_none(), "two calls at most");
        drop(a);
        assert!(
            limits.try_admit(usize::MAX).is_none(),
            "a huge call waits for the bytes"
        );
        drop(b);
        let big = limits.try_admit(usize::MAX).expect("one huge call alone");
        assert!(limits.try_admit(10).is_none(), "no bytes left beside it");
        drop(big);
        assert!(limits.try_admit(10).is_some());
    }
}
