//! Discovery: finding actors by name.
//!
//! Lookups ask the tree's registrar (see `registrar`) over this actor's
//! link to it, and the portals they return connect straight to the found
//! actor, reusing the channel this actor already has to it, if any. The
//! registrar's side of each lookup is a remote function here too, served
//! by the registrar actor like any other call.
//!
//! A tree across hosts may have several registrars (every actor registers
//! with each): `find_actor` asks them in turn, `wait_for_actor` waits at
//! all of them at once, so a registrar lost (its host down) leaves
//! lookups answering through the others.
//!
//! A lookup answers a live actor or none: an entry whose actor cannot be
//! reached (it exited, and the registrar has not heard yet) is passed over
//! and the next most recent actor of that name is tried. Actors leave the
//! registrar before they stop listening, so this only happens with actors
//! that were killed.

use crate::actor::{Actor, current_actor};
use crate::error::{Error, Result};
use crate::portal::Portal;
use crate::registrar::{Found, Registrar};

/// Entries passed over in one lookup before it gives up on the name (each
/// one is a dead actor the registrar has not heard of yet).
const MAX_SKIPPED: usize = 64;

/// Runs `f` with this actor's registrar table, or fails if this actor is
/// not the registrar.
async fn with_registrar<T>(f: impl AsyncFnOnce(&Registrar) -> T) -> Result<T> {
    let actor = current_actor();
    match actor.registrar() {
        Some(registrar) => Ok(f(registrar).await),
        None => Err(Error::other(format!(
            "actor {} is not the registrar",
            actor.uid()
        ))),
    }
}

/// Registrar side of [`find_actor`]: the most recent actor called `name`
/// but the registrations in `skip`.
#[crate::rpc]
async fn find(name: String, skip: Vec<u64>) -> Result<Option<Found>> {
    with_registrar(async |registrar| registrar.find(&name, &skip)).await
}

/// Registrar side of [`wait_for_actor`].
#[crate::rpc]
async fn wait(name: String, skip: Vec<u64>) -> Result<Found> {
    with_registrar(async |registrar| registrar.wait(&name, &skip).await).await
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
    let actor = Actor::current()?;
    // Asked in turn: the first that knows a live one answers; one that
    // cannot be reached is passed over, and only if none can be is that
    // an error.
    let mut first_error = None;
    let mut answered = false;
    for index in 0..actor.registrar_count() {
        let found = match actor.registrar_channel_at(index).await {
            Ok(channel) => find_through(&Portal::new(actor.clone(), channel), name).await,
            Err(err) => Err(err),
        };
        match found {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => answered = true,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) if !answered => Err(err),
        _ => Ok(None),
    }
}

/// [`find_actor`] through one registrar.
async fn find_through(registrar: &Portal, name: &str) -> Result<Option<Portal>> {
    let mut skip = Vec::new();
    while skip.len() < MAX_SKIPPED {
        let Some(found) = registrar
            .run(find::call(name.to_owned(), skip.clone()))
            .await?
        else {
            return Ok(None);
        };
        match portal_to(&found).await {
            Err(Error::Unreachable { .. }) => skip.push(found.registration),
            reached => return reached.map(Some),
        }
    }
    Ok(None)
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
    let actor = Actor::current()?;
    if actor.registrar_count() == 1 {
        return wait_through(&get_registrar().await?, name).await;
    }
    // Waited for at every registrar at once: the first to see one answers,
    // and one that is lost meanwhile leaves the others waiting.
    let waits = (0..actor.registrar_count()).map(|index| {
        let actor = actor.clone();
        Box::pin(async move {
            let channel = actor.registrar_channel_at(index).await?;
            wait_through(&Portal::new(actor, channel), name).await
        })
    });
    futures::future::select_ok(waits)
        .await
        .map(|(portal, _)| portal)
}

/// [`wait_for_actor`] through one registrar.
async fn wait_through(registrar: &Portal, name: &str) -> Result<Portal> {
    let mut skip = Vec::new();
    loop {
        let found = registrar
            .run(wait::call(name.to_owned(), skip.clone()))
            .await?;
        match portal_to(&found).await {
            // A dead entry: wait for the next one of that name. Forgetting
            // the oldest bounds what a churning name makes us remember.
            Err(Error::Unreachable { .. }) => {
                if skip.len() == MAX_SKIPPED {
                    skip.remove(0);
                }
                skip.push(found.registration);
            }
            reached => return reached,
        }
    }
}

async fn portal_to(found: &Found) -> Result<Portal> {
    let actor = Actor::current()?;
    let channel = actor.channel_to(&found.uid, found.addr.as_deref()).await?;
    Ok(Portal::new(actor, channel))
}
