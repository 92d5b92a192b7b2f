//! A bound on connections that have not proven themselves yet.
//!
//! Anyone who can reach a listener can open connections and say nothing.
//! Each costs a descriptor and a task until the opening deadline, so
//! without a bound a few hundred connections a second exhaust the
//! descriptor limit and the actor can no longer accept its own children.
//! Openings in progress are capped — in all, and per remote host for TCP —
//! and a new connection over the cap evicts the *oldest* pending one of
//! the same kind rather than being refused: a silent connection is old by
//! the time it matters, while a real peer completes its opening within a
//! few round trips, so a flood of idle connections cannot crowd it out.
//! An opening younger than [`MIN_AGE`] is not evicted (a burst of real
//! peers, fifty children connecting back over TLS at once, say, must not
//! evict one another) unless the hard cap is reached. At the hard cap the
//! accept loop accepts nothing more until an opening ends: it evicts the
//! oldest and waits for its descriptor to be closed, so connections wait
//! in the kernel's backlog, not in our descriptor table.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Openings in progress at once, in all, before the oldest is evicted.
pub(crate) const MAX_PENDING: usize = 128;
/// Openings in progress at once from one remote host (TCP), before that
/// host's oldest is evicted.
pub(crate) const MAX_PENDING_PER_HOST: usize = 64;
/// Openings in progress at once, whatever their age.
pub(crate) const HARD_MAX_PENDING: usize = 2 * MAX_PENDING;
/// Younger openings are evicted only at the hard cap.
pub(crate) const MIN_AGE: Duration = Duration::from_millis(50);

/// The openings in progress.
#[derive(Clone)]
pub(crate) struct Openings {
    queue: Arc<Mutex<Queue>>,
    /// One permit per opening in progress, up to the hard cap.
    room: Arc<Semaphore>,
}

impl Default for Openings {
    fn default() -> Self {
        Openings {
            queue: Arc::default(),
            room: Arc::new(Semaphore::new(HARD_MAX_PENDING)),
        }
    }
}

#[derive(Default)]
struct Queue {
    next: u64,
    pending: VecDeque<Entry>,
}

struct Entry {
    id: u64,
    host: Option<IpAddr>,
    since: Instant,
    evict: CancellationToken,
}

/// One opening in progress; dropping it ends its count.
pub(crate) struct Opening {
    openings: Openings,
    id: u64,
    _room: OwnedSemaphorePermit,
    /// Cancelled when a newer connection took this one's place.
    pub(crate) evicted: CancellationToken,
}

impl Openings {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for one more opening, to take before accepting a connection:
    /// at the hard cap, the oldest opening is evicted and this waits until
    /// it has ended.
    pub(crate) async fn room(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(room) = self.room.clone().try_acquire_owned() {
                return room;
            }
            if let Some(oldest) = self.queue().pending.pop_front() {
                oldest.evict.cancel();
            }
            // The semaphore is never closed.
            if let Ok(room) = self.room.clone().acquire_owned().await {
                return room;
            }
        }
    }

    /// Counts a new connection from `host` (`None`: a local peer), holding
    /// `room`; evicts the oldest opening if a cap is reached.
    pub(crate) fn admit(&self, host: Option<IpAddr>, room: OwnedSemaphorePermit) -> Opening {
        self.admit_at(host, room, Instant::now())
    }

    fn admit_at(&self, host: Option<IpAddr>, room: OwnedSemaphorePermit, now: Instant) -> Opening {
        let mut queue = self.queue();
        let same_host = |entry: &Entry| host.is_some() && entry.host == host;
        let from_host = queue.pending.iter().filter(|e| same_host(e)).count();
        let oldest = if host.is_some() && from_host >= MAX_PENDING_PER_HOST {
            queue.pending.iter().position(same_host)
        } else if queue.pending.len() >= MAX_PENDING {
            Some(0)
        } else {
            None
        };
        if let Some(at) = oldest {
            let old_enough = now.duration_since(queue.pending[at].since) >= MIN_AGE;
            if old_enough {
                if let Some(oldest) = queue.pending.remove(at) {
                    oldest.evict.cancel();
                }
            }
        }
        let id = queue.next;
        queue.next += 1;
        let evicted = CancellationToken::new();
        queue.pending.push_back(Entry {
            id,
            host,
            since: now,
            evict: evicted.clone(),
        });
        Opening {
            openings: self.clone(),
            id,
            _room: room,
            evicted,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue().pending.len()
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut queue = self.openings.queue();
        if let Some(at) = queue.pending.iter().position(|entry| entry.id == self.id) {
            queue.pending.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(openings: &Openings, host: Option<IpAddr>, at: Instant) -> Opening {
        let room = openings.room.clone().try_acquire_owned().unwrap();
        openings.admit_at(host, room, at)
    }

    #[test]
    fn the_oldest_opening_makes_room_once_it_is_old_enough() {
        let openings = Openings::default();
        let start = Instant::now();
        let held: Vec<_> = (0..MAX_PENDING)
            .map(|_| admit(&openings, None, start))
            .collect();
        // A burst: nobody is old enough to go.
        let young = admit(&openings, None, start + MIN_AGE / 2);
        assert!(held.iter().all(|opening| !opening.evicted.is_cancelled()));
        assert_eq!(openings.len(), MAX_PENDING + 1);
        // Later, the oldest makes room.
        let later = admit(&openings, None, start + MIN_AGE);
        assert!(held[0].evicted.is_cancelled());
        assert!(!held[1].evicted.is_cancelled());
        assert!(!young.evicted.is_cancelled() && !later.evicted.is_cancelled());
        assert_eq!(openings.len(), MAX_PENDING + 1);
        drop(held);
        assert_eq!(openings.len(), 2);
    }

    #[tokio::test]
    async fn at_the_hard_cap_the_oldest_goes_before_another_is_accepted() {
        let openings = Openings::default();
        let now = Instant::now();
        let mut held: Vec<_> = (0..HARD_MAX_PENDING)
            .map(|_| admit(&openings, None, now))
            .collect();
        assert!(openings.room.available_permits() == 0);
        let waiting = tokio::spawn({
            let openings = openings.clone();
            async move { openings.room().await }
        });
        // The oldest was told to go; once its task drops it, there is room.
        while !held[0].evicted.is_cancelled() {
            tokio::task::yield_now().await;
        }
        held.remove(0);
        let room = waiting.await.unwrap();
        let newest = openings.admit_at(None, room, now);
        assert!(!newest.evicted.is_cancelled());
        assert_eq!(openings.len(), HARD_MAX_PENDING);
    }

    #[test]
    fn one_host_cannot_take_every_place() {
        let openings = Openings::default();
        let start = Instant::now();
        let flood: IpAddr = "10.0.0.9".parse().unwrap();
        let other = admit(&openings, Some("10.0.0.1".parse().unwrap()), start);
        let held: Vec<_> = (0..MAX_PENDING_PER_HOST)
            .map(|_| admit(&openings, Some(flood), start))
            .collect();
        let _more = admit(&openings, Some(flood), start + MIN_AGE);
        assert!(held[0].evicted.is_cancelled());
        assert!(!other.evicted.is_cancelled());
    }
}
