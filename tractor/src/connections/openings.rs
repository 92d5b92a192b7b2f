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
//! round trip, so a flood of idle connections cannot crowd it out.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Openings in progress at once, in all.
pub(crate) const MAX_PENDING: usize = 64;
/// Openings in progress at once from one remote host (TCP).
pub(crate) const MAX_PENDING_PER_HOST: usize = 16;

/// The openings in progress.
#[derive(Clone, Default)]
pub(crate) struct Openings(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    next: u64,
    pending: VecDeque<Entry>,
}

struct Entry {
    id: u64,
    host: Option<IpAddr>,
    evict: CancellationToken,
}

/// One opening in progress; dropping it ends its count.
pub(crate) struct Opening {
    openings: Openings,
    id: u64,
    /// Cancelled when a newer connection took this one's place.
    pub(crate) evicted: CancellationToken,
}

impl Openings {
    /// Counts a new connection from `host` (`None`: a local peer), evicting
    /// the oldest opening if the cap is reached.
    pub(crate) fn admit(&self, host: Option<IpAddr>) -> Opening {
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let same_host = |entry: &Entry| host.is_some() && entry.host == host;
        if host.is_some()
            && queue.pending.iter().filter(|e| same_host(e)).count() >= MAX_PENDING_PER_HOST
        {
            if let Some(at) = queue.pending.iter().position(same_host) {
                if let Some(oldest) = queue.pending.remove(at) {
                    oldest.evict.cancel();
                }
            }
        }
        if queue.pending.len() >= MAX_PENDING {
            if let Some(oldest) = queue.pending.pop_front() {
                oldest.evict.cancel();
            }
        }
        let id = queue.next;
        queue.next += 1;
        let evicted = CancellationToken::new();
        queue.pending.push_back(Entry {
            id,
            host,
            evict: evicted.clone(),
        });
        Opening {
            openings: self.clone(),
            id,
            evicted,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().pending.len()
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut queue = self.openings.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = queue.pending.iter().position(|entry| entry.id == self.id) {
            queue.pending.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_opening_makes_room() {
        let openings = Openings::default();
        let held: Vec<_> = (0..MAX_PENDING).map(|_| openings.admit(None)).collect();
        assert_eq!(openings.len(), MAX_PENDING);
        let newest = openings.admit(None);
        assert!(held[0].evicted.is_cancelled());
        assert!(!held[1].evicted.is_cancelled());
        assert!(!newest.evicted.is_cancelled());
        assert_eq!(openings.len(), MAX_PENDING);
        drop(held);
        assert_eq!(openings.len(), 1);
    }

    #[test]
    fn one_host_cannot_take_every_place() {
        let openings = Openings::default();
        let flood: IpAddr = "10.0.0.9".parse().unwrap();
        let other = openings.admit(Some("10.0.0.1".parse().unwrap()));
        let held: Vec<_> = (0..MAX_PENDING_PER_HOST)
            .map(|_| openings.admit(Some(flood)))
            .collect();
        let _more = openings.admit(Some(flood));
        assert!(held[0].evicted.is_cancelled());
        assert!(!other.evicted.is_cancelled());
    }
}
