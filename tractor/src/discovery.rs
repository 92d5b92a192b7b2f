//! Discovery: the registrar and finding actors by name.
//!
//! One actor per tree, normally the first root on a host, is the
//! *registrar*: it keeps `(name, uuid) -> address` for every live actor.
//! An actor is registered while its registration channel (the handshake
//! that asked for it) is open, so an actor that dies, however it dies,
//! disappears from lookups as soon as its channel is lost. Lookups return
//! the most recently registered live actor of a name.
//!
//! Portals from discovery connect straight to the found actor, reusing the
//! channel this actor already has to it, if any.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

use crate::actor::{Actor, current_actor};
use crate::error::{Error, Result};
use crate::portal::Portal;
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
    addr: String,
    local: Option<String>,
    /// Registration order: a later one wins among equal names.
    seq: u64,
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

    pub(crate) fn register(&self, uid: ActorUid, addr: String, local: Option<String>) {
        tracing::debug!(actor = %uid, %addr, "registered");
        {
            let mut entries = self.entries();
            let seq = entries.next_seq;
            entries.next_seq += 1;
            let entry = Entry {
                uid,
                addr,
                local,
                seq,
            };
            entries.by_uuid.insert(entry.uid.uuid(), entry);
        }
        self.version.send_modify(|version| *version += 1);
    }

    pub(crate) fn unregister(&self, uid: &ActorUid) {
        self.unregister_uuid(uid.uuid());
    }

    pub(crate) fn unregister_uuid(&self, uuid: Uuid) {
        if let Some(entry) = self.entries().by_uuid.remove(&uuid) {
            tracing::debug!(actor = %entry.uid, "unregistered");
        }
    }

    /// The most recently registered actor called `name`.
    pub(crate) fn find(&self, name: &str) -> Option<Found> {
        self.entries()
            .by_uuid
            .values()
            .filter(|entry| entry.uid.name() == name)
            .max_by_key(|entry| entry.seq)
            .map(|entry| Found {
                uid: entry.uid.clone(),
                addr: entry.addr.clone(),
                local: entry.local.clone(),
            })
    }

    /// Waits until an actor called `name` is registered.
    pub(crate) async fn wait(&self, name: &str) -> Found {
        let mut version = self.version.subscribe();
        loop {
            version.borrow_and_update();
            if let Some(found) = self.find(name) {
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

/// A registered actor and where to reach it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Found {
    uid: ActorUid,
    addr: String,
    local: Option<String>,
}

fn this_registrar() -> Result<Actor> {
    let actor = current_actor();
    if actor.registrar().is_none() {
        return Err(Error::other(format!(
            "actor {} is not the registrar",
            actor.uid()
        )));
    }
    Ok(actor)
}

/// Registrar side of [`find_actor`].
#[crate::rpc]
async fn find(name: String) -> Result<Option<Found>> {
    let actor = this_registrar()?;
    Ok(actor
        .registrar()
        .and_then(|registrar| registrar.find(&name)))
}

/// Registrar side of [`wait_for_actor`].
#[crate::rpc]
async fn wait(name: String) -> Result<Found> {
    let actor = this_registrar()?;
    match actor.registrar() {
        Some(registrar) => Ok(registrar.wait(&name).await),
        None => Err(Error::Cancelled),
    }
}

/// A portal to this tree's registrar.
///
/// ```no_run
/// # async fn example() -> tractor::Result<()> {
/// let registrar = tractor::get_registrar().await?;
/// println!("the registrar is {}", registrar.uid());
/// # Ok(())
/// # }
/// ```
pub async fn get_registrar() -> Result<Portal> {
    let actor = Actor::current()?;
    let channel = actor.registrar_channel().await?;
    Ok(Portal::new(actor, channel))
}

/// A portal to the most recently registered live actor called `name`, or
/// `None` if there is none.
///
/// ```no_run
/// # async fn example() -> tractor::Result<()> {
/// match tractor::find_actor("worker").await? {
///     Some(worker) => println!("found {}", worker.uid()),
///     None => println!("no worker running"),
/// }
/// # Ok(())
/// # }
/// ```
pub async fn find_actor(name: &str) -> Result<Option<Portal>> {
    let registrar = get_registrar().await?;
    match registrar.run(find::call(name.to_owned())).await? {
        Some(found) => Ok(Some(portal_to(&registrar, &found).await?)),
        None => Ok(None),
    }
}

/// A portal to the actor called `name`, waiting until one registers.
///
/// The registrar answers as soon as the name is registered: the caller
/// does not poll. Wrap it in `tokio::time::timeout` to bound the wait.
///
/// ```no_run
/// # async fn example() -> tractor::Result<()> {
/// let gretchen = tractor::wait_for_actor("gretchen").await?;
/// # Ok(())
/// # }
/// ```
pub async fn wait_for_actor(name: &str) -> Result<Portal> {
    let registrar = get_registrar().await?;
    let found = registrar.run(wait::call(name.to_owned())).await?;
    portal_to(&registrar, &found).await
}

async fn portal_to(registrar: &Portal, found: &Found) -> Result<Portal> {
    registrar
        .actor()
        .portal_to(&found.uid, &found.addr, found.local.as_deref())
        .await
}
