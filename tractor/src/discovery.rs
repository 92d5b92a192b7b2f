//! Discovery: finding actors by name.
//!
//! Lookups ask the tree's registrar (see `registrar`) over this actor's
//! link to it, and the portals they return connect straight to the found
//! actor, reusing the channel this actor already has to it, if any. The
//! registrar's side of each lookup is a remote function here too, served
//! by the registrar actor like any other call.

use crate::actor::{Actor, current_actor};
use crate::error::{Error, Result};
use crate::portal::Portal;
use crate::registrar::{Found, Registrar};

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

/// Registrar side of [`find_actor`].
#[crate::rpc]
async fn find(name: String) -> Result<Option<Found>> {
    with_registrar(async |registrar| registrar.find(&name, &[])).await
}

/// Registrar side of [`wait_for_actor`].
#[crate::rpc]
async fn wait(name: String) -> Result<Found> {
    with_registrar(async |registrar| registrar.wait(&name).await).await
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
        Some(found) => Ok(Some(portal_to(&found).await?)),
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
    portal_to(&found).await
}

async fn portal_to(found: &Found) -> Result<Portal> {
    let actor = Actor::current()?;
    let channel = actor
        .channel_to(&found.uid, &found.addr, found.local.as_deref())
        .await?;
    Ok(Portal::new(actor, channel))
}
