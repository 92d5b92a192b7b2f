//! Where a `run_in_actor` child's answer waits for `RunPortal::result`.
//!
//! Filled once by the nursery's task that awaits the answer; read by the
//! nursery (did it fail?) and taken once by the body.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::uid::ActorUid;

pub(crate) struct ResultSlot {
    actor: ActorUid,
    answer: watch::Sender<Option<Result<Bytes>>>,
    taken: AtomicBool,
}

impl ResultSlot {
    pub(crate) fn new(actor: ActorUid) -> Self {
        ResultSlot {
            actor,
            answer: watch::Sender::new(None),
            taken: AtomicBool::new(false),
        }
    }

    pub(crate) fn fill(&self, answer: Result<Bytes>) {
        self.answer.send_replace(Some(answer));
    }

    /// `None` until the answer arrived; then whether it is an error (and
    /// which).
    pub(crate) fn outcome(&self) -> Option<Result<(), Error>> {
        self.answer
            .borrow()
            .as_ref()
            .map(|answer| answer.as_ref().map(|_| ()).map_err(Clone::clone))
    }

    /// Waits for the answer and takes it; only the first caller gets it.
    pub(crate) async fn take(&self) -> Result<Bytes> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return Err(Error::ResultTaken {
                actor: self.actor.clone(),
            });
        }
        let mut answer = self.answer.subscribe();
        let answer = answer.wait_for(Option::is_some).await;
        match answer.as_deref() {
            Ok(Some(answer)) => answer.clone(),
            // The sender lives in this slot, so it outlives the wait.
            _ => Err(Error::Cancelled),
        }
    }
}
