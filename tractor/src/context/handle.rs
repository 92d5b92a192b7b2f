//! The caller's side of a context: [`ContextHandle`].

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::budget::DEFAULT_GRACE;
use crate::context::MsgStream;
use crate::context::msg_stream::{Owner, Side, Unopened};
use crate::error::{Error, Result};
use crate::ipc::channel::{ContextOpened, Direction};
use crate::ipc::credit::Window;
use crate::ipc::{Channel, Credit};
use crate::uid::ActorUid;

/// The caller's side of a context opened with
/// [`Portal::open_context`](crate::Portal::open_context): sends `I`s,
/// receives `O`s, and finally gets the function's `T`.
///
/// Dropping the handle and its stream before the function has returned
/// cancels the function.
pub struct ContextHandle<I, O, T> {
    shared: Arc<Shared>,
    _types: PhantomData<fn(I) -> (O, T)>,
}

struct Shared {
    channel: Channel,
    id: u64,
    window: Window,
    credit: Arc<Credit>,
    stream: Unopened,
    result: tokio::sync::Mutex<Outcome>,
    /// The function's answer arrived (or the context was given up): there
    /// is nothing to cancel any more.
    over: AtomicBool,
}

struct Outcome {
    answer: Option<oneshot::Receiver<Result<Bytes>>>,
    value: Option<Result<Bytes>>,
    taken: bool,
}

impl Shared {
    /// Waits for the function's answer (cancel-safe: a waiter that gives
    /// up leaves it for the next).
    async fn settle(&self, outcome: &mut Outcome) {
        if let Some(answer) = &mut outcome.answer {
            let value = answer.await.unwrap_or_else(|_| {
                Err(Error::Disconnected {
                    actor: self.channel.peer().clone(),
                })
            });
            outcome.answer = None;
            outcome.value = Some(value);
            self.over.store(true, Ordering::Release);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if !self.over.load(Ordering::Acquire) {
            self.channel.abandon(self.id);
        }
    }
}

impl<I, O, T> ContextHandle<I, O, T> {
    /// The handle of the context `opened`, whose `started` already came.
    pub(crate) fn new(channel: Channel, window: Window, opened: ContextOpened) -> Self {
        let ContextOpened {
            id,
            result,
            inbox,
            credit,
        } = opened;
        ContextHandle {
            shared: Arc::new(Shared {
                channel,
                id,
                window,
                credit,
                stream: Mutex::new(Some(inbox)),
                result: tokio::sync::Mutex::new(Outcome {
                    answer: Some(result),
                    value: None,
                    taken: false,
                }),
                over: AtomicBool::new(false),
            }),
            _types: PhantomData,
        }
    }

    /// The actor running the context's function.
    pub fn actor(&self) -> &ActorUid {
        self.shared.channel.peer()
    }
}

impl<I: Serialize, O: DeserializeOwned, T: DeserializeOwned> ContextHandle<I, O, T> {
    /// Opens the caller's side of the two-way stream: sends `I`s, receives
    /// the function's `O`s. At most once ([`Error::Misuse`] after).
    pub async fn open_stream(&self) -> Result<MsgStream<O, I>> {
        let shared = &self.shared;
        let side = Side {
            channel: &shared.channel,
            id: shared.id,
            window: shared.window,
            sends: Direction::ToCallee,
            credit: &shared.credit,
            unopened: &shared.stream,
        };
        let owner = Owner::Caller {
            _context: shared.clone(),
        };
        MsgStream::open(side, owner)
    }

    /// Waits for the function's return value.
    ///
    /// An error it raised (after `started`) comes here as an `Err`, and so
    /// does the end of its actor. The first call takes the value; a later
    /// one answers [`Error::ResultTaken`]. Cancel-safe: a `result()` that
    /// is given up (a timeout around it) leaves the value for the next.
    pub async fn result(&self) -> Result<T> {
        let mut outcome = self.shared.result.lock().await;
        if outcome.taken {
            return Err(Error::ResultTaken {
                actor: self.actor().clone(),
            });
        }
        self.shared.settle(&mut outcome).await;
        outcome.taken = true;
        let value = outcome.value.take().unwrap_or(Err(Error::Cancelled))?;
        crate::call::decode(&value, "the context's function")
    }

    /// Cancels the function: its task is dropped in the other actor, and
    /// this waits for the acknowledgement. [`result`](Self::result) is then
    /// an `Err` with [`Error::is_cancelled`].
    ///
    /// `Ok` once acknowledged (or if the function had already ended);
    /// [`Error::Unreachable`] if the other actor did not answer within
    /// the cancellation grace (1 s).
    pub async fn cancel(&self) -> Result<()> {
        let shared = &self.shared;
        // Sent first, so that a `result()` waiting elsewhere (holding the
        // outcome) gets the acknowledgement and lets go.
        shared.channel.request_cancel(shared.id);
        let answered = tokio::time::timeout(DEFAULT_GRACE, async {
            let mut outcome = shared.result.lock().await;
            shared.settle(&mut outcome).await;
            outcome.value = Some(Err(Error::Cancelled));
        })
        .await;
        if answered.is_err() {
            shared.over.store(true, Ordering::Release);
            shared.channel.abandon(shared.id);
            let mut outcome = shared.result.lock().await;
            outcome.answer = None;
            outcome.value = Some(Err(Error::Cancelled));
            return Err(Error::Unreachable {
                actor: self.actor().clone(),
                reason: format!("it did not acknowledge the cancel within {DEFAULT_GRACE:?}"),
            });
        }
        Ok(())
    }
}

impl<I, O, T> std::fmt::Debug for ContextHandle<I, O, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextHandle")
            .field("actor", self.actor())
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}
