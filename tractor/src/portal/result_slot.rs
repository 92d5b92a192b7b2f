//! Where a `run_in_actor` child's result waits for `RunPortal::result`.
//!
//! For a plain call the slot receives the answer once; for a stream call
//! it holds the stream until the body takes it (or the nursery drains it).
//! Either way the nursery reads the outcome from here to know whether the
//! child is done, and whether it failed.

use crate::lock::lock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::stream::RawStream;
use crate::uid::ActorUid;

pub(crate) struct ResultSlot {
    actor: ActorUid,
    /// How the run ended, once it has.
    outcome: watch::Sender<Option<Result<()>>>,
    value: Mutex<Option<Result<Bytes>>>,
    stream: Mutex<Option<RawStream>>,
    taken: AtomicBool,
}

impl ResultSlot {
    pub(crate) fn new(actor: ActorUid) -> Self {
        ResultSlot {
            actor,
            outcome: watch::Sender::new(None),
            value: Mutex::new(None),
            stream: Mutex::new(None),
            taken: AtomicBool::new(false),
        }
    }

    /// A plain call's answer arrived.
    pub(crate) fn fill(&self, answer: Result<Bytes>) {
        let outcome = answer.as_ref().map(|_| ()).map_err(Clone::clone);
        *lock(&self.value) = Some(answer);
        self.outcome.send_replace(Some(outcome));
    }

    /// A stream call's stream, for the body to take.
    pub(crate) fn hold(&self, stream: RawStream) {
        *lock(&self.stream) = Some(stream);
    }

    /// A stream call ended.
    pub(crate) fn finish(&self, outcome: Result<()>) {
        self.outcome.send_replace(Some(outcome));
    }

    /// Ends a run that has not ended with `error` (its child will not run
    /// it again).
    pub(crate) fn fail_if_pending(&self, error: Error) {
        if self.outcome.borrow().is_some() {
            return;
        }
        *lock(&self.value) = Some(Err(error.clone()));
        self.outcome.send_replace(Some(Err(error)));
    }

    /// The child restarts and runs its call again: what the last run left
    /// goes, and the next run's outcome is the one `result()` gives (even
    /// to a caller that took the last run's).
    pub(crate) fn rerun(&self) {
        *lock(&self.value) = None;
        *lock(&self.stream) = None;
        self.taken.store(false, Ordering::Release);
        self.outcome.send_replace(None);
    }

    fn claim(&self) -> Result<()> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return Err(Error::ResultTaken {
                actor: self.actor.clone(),
            });
        }
        Ok(())
    }

    /// Waits for a plain call's answer and takes it; only the first caller
    /// gets it. Cancel-safe: a caller that stops waiting takes nothing, and
    /// the value stays for the next.
    pub(crate) async fn take_value(&self) -> Result<Bytes> {
        let mut outcome = self.outcome.subscribe();
        // The sender lives in this slot, so it outlives the wait.
        let _ = outcome.wait_for(Option::is_some).await;
        // From here on nothing awaits: the value is taken whole or not at all.
        self.claim()?;
        lock(&self.value).take().unwrap_or(Err(Error::Cancelled))
    }

    /// Takes a stream call's stream; only the first caller gets it.
    pub(crate) fn take_stream(&self) -> Result<RawStream> {
        self.claim()?;
        lock(&self.stream).take().ok_or(Error::ResultTaken {
            actor: self.actor.clone(),
        })
    }

    /// The stream, if the body never took it (so the nursery drains it).
    pub(crate) fn untaken_stream(&self) -> Option<RawStream> {
        let mut stream = lock(&self.stream);
        if stream.is_none() || self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        stream.take()
    }
}
