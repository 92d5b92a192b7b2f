//! The registrar's table of live actors.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

use crate::ipc::Channel;
use crate::ipc::msg::Handshake;
use crate::uid::ActorUid;

/// The registrar's table; present only in the registrar actor.
pub(crate) struct Registrar {
    entries: Mutex<Entries>,
    /// Bumped on every registration, so waiters re-check.
    version: watch::Sender<u64>,
}

#[derive(Default)]
struct Entries {
    by_uuid: HashMap<Uuid, Entry>,
    next_seq: u64,
}

struct Entry {
    uid: ActorUid,
    addr: Option<String>,
    /// Registration order: a later one wins among equal names.
    seq: u64,
}

/// A registered actor and where to reach it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Found {
    pub(crate) uid: ActorUid,
    /// Its TCP address, if it has one; on this host it is reached through
    /// the socket its uuid names.
    pub(crate) addr: Option<String>,
    /// Which registration this is: a lookup that found it dead skips this
    /// one, not the uuid, which a restarted child registers again.
    pub(crate) registration: u64,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            entries: Mutex::default(),
            version: watch::Sender::new(0),
        }
    }
}

impl Registrar {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `uid`, reachable at TCP address `addr` if it has one.
    pub(crate) fn register(&self, uid: ActorUid, addr: Option<String>) {
        tracing::debug!(actor = %uid, ?addr, "registered");
        {
            let mut entries = self.entries();
            let seq = entries.next_seq;
            entries.next_seq += 1;
            let entry = Entry { uid, addr, seq };
            entries.by_uuid.insert(entry.uid.uuid(), entry);
        }
        self.version.send_modify(|version| *version += 1);
    }

    pub(crate) fn unregister(&self, uid: &ActorUid) {
        if let Some(entry) = self.entries().by_uuid.remove(&uid.uuid()) {
            tracing::debug!(actor = %entry.uid, "unregistered");
        }
    }

    /// A peer introduced itself asking to be registered.
    pub(crate) fn introduced(&self, peer: &Handshake) {
        if peer.register {
            self.register(peer.uid.clone(), peer.addr.clone());
        }
    }

    /// A channel closed, or its peer said it is leaving: if that channel
    /// was a registration, the actor is gone.
    pub(crate) fn registration_ended(&self, channel: &Channel) {
        if channel.peer_registers() {
            self.unregister(channel.peer());
        }
    }

    /// The most recently registered actor called `name`, other than the
    /// registrations in `skip`.
    pub(crate) fn find(&self, name: &str, skip: &[u64]) -> Option<Found> {
        self.entries()
            .by_uuid
            .values()
            .filter(|entry| entry.uid.name() == name && !skip.contains(&entry.seq))
            .max_by_key(|entry| entry.seq)
            .map(|entry| Found {
                uid: entry.uid.clone(),
                addr: entry.addr.clone(),
                registration: entry.seq,
            })
    }

    /// Waits until an actor called `name`, other than the registrations in
    /// `skip`, is registered.
    pub(crate) async fn wait(&self, name: &str, skip: &[u64]) -> Found {
        let mut version = self.version.subscribe();
        loop {
            version.borrow_and_update();
            if let Some(found) = self.find(name, skip) {
                return found;
            }
            // The sender lives as long as the registrar, which outlives
            // this call.
            if version.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_registration_does_not_hide_the_same_uid_registered_again() {
        let registrar = Registrar::default();
        let uid = ActorUid::new("worker");
        registrar.register(uid.clone(), None);
        let first = registrar.find("worker", &[]).expect("registered");
        // A lookup found it dead and skips that registration...
        assert!(registrar.find("worker", &[first.registration]).is_none());
        // ...but the restarted process, same uid, is found.
        registrar.register(uid.clone(), None);
        let again = registrar
            .find("worker", &[first.registration])
            .expect("registered again");
        assert_eq!(again.uid, uid);
        assert_ne!(again.registration, first.registration);
    }
}
