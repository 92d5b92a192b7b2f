//! The registrar service: the table of a tree's live actors (in the one
//! actor that is the registrar) and every actor's link to it.
//!
//! One actor per tree, normally the first root on a host, is the
//! *registrar*: it keeps `(name, uuid) -> address` for every live actor
//! ([`Registrar`]). An actor is registered while its registration channel
//! (the one whose opening asked for it) is open, and leaves the table when
//! that channel closes, when its parent reaps it, or when it says it is
//! going (before it stops listening, so a lookup never hands out an actor
//! that refuses connections on purpose). The table is fed by those events
//! from the actor; it calls nobody.
//!
//! Every actor holds a [`RegistrarLink`]: the channel its lookups go
//! through, dialed again when it was lost. The public lookups built on
//! these (`find_actor` and friends) live in `discovery`.

mod link;
mod table;

pub(crate) use link::RegistrarLink;
pub(crate) use table::{Found, Registrar};
