//! Actor identity.
//!
//! Names are chosen by people and may repeat (two programs may each run a
//! "worker"); the uuid makes every actor unique for the life of a tree.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of an actor: the name it was spawned with and a uuid unique
/// to this one process.
///
/// Cheap to clone. `Display` shows the name and the first eight hex digits
/// of the uuid, e.g. `worker[1a2b3c4d]`.
///
/// ```
/// # #[tractor::rpc] fn noop() {}
/// # async fn example(portal: tractor::Portal) {
/// let uid: &tractor::ActorUid = portal.uid();
/// println!("talking to {uid} (named {})", uid.name());
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActorUid {
    name: Arc<str>,
    uuid: Uuid,
}

impl ActorUid {
    /// A fresh identity for an actor called `name`.
    pub(crate) fn new(name: &str) -> Self {
        ActorUid {
            name: name.into(),
            uuid: Uuid::new_v4(),
        }
    }

    /// The name the actor was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The uuid that tells this actor apart from others of the same name.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl fmt::Display for ActorUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = &self.uuid.simple().to_string()[..8];
        write!(f, "{}[{short}]", self.name)
    }
}

impl fmt::Debug for ActorUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ActorUid")
            .field(&&*self.name)
            .field(&self.uuid)
            .finish()
    }
}
