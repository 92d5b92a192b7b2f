//! The function's side of a context: [`Context`].

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::MsgStream;
use crate::context::msg_stream::{EndDeferral, Owner, Side, Unopened};
use crate::error::{Error, Result};
use crate::ipc::channel::Direction;
use crate::ipc::channel::StreamInbox;
use crate::ipc::credit::Window;
use crate::ipc::{Channel, Credit, frame};

/// What a `#[tractor::context]` function is given: its side of the
/// dialog with the caller.
///
/// `S` is the value [`started`](Context::started) hands the caller, `I`
/// what the caller sends, `O` what this function sends. `Send + Sync`;
/// the methods take `&self`.
///
/// ```
/// use futures::{SinkExt, StreamExt};
///
/// /// Sums what the caller sends, echoing the running total.
/// #[tractor::context]
/// async fn running_sum(ctx: tractor::Context<String, u64, u64>, start: u64) -> tractor::Result<u64> {
///     ctx.started(format!("summing from {start}")).await?;
///     let mut stream = ctx.open_stream().await?;
///     let mut total = start;
///     while let Some(n) = stream.next().await {
///         total += n?;
///         stream.send(total).await?;
///     }
///     Ok(total)
/// }
/// ```
pub struct Context<S, I, O> {
    raw: RawDialog,
    _types: PhantomData<fn(I) -> (S, O)>,
}

/// The function's side of a context, untyped: made by the server when the
/// context opens.
#[derive(Clone)]
pub(crate) struct RawDialog(Arc<Dialog>);

struct Dialog {
    channel: Channel,
    id: u64,
    window: Window,
    /// What the caller lets us send.
    credit: Arc<Credit>,
    started: AtomicBool,
    /// The caller's items, until the stream is opened.
    inbox: Unopened,
    /// The function is being polled (see [`RawDialog::run`]).
    in_poll: AtomicBool,
    /// Its stream was dropped during a poll; the end is not sent yet.
    end_deferred: AtomicBool,
}

/// See [`RawDialog::run`].
struct DeferOnDrop<'a> {
    dialog: &'a Dialog,
    armed: bool,
}

impl Drop for DeferOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.dialog.in_poll.store(true, Ordering::Release);
        }
    }
}

impl EndDeferral for Dialog {
    fn defer_end(&self) -> bool {
        if !self.in_poll.load(Ordering::Acquire) {
            return false;
        }
        self.end_deferred.store(true, Ordering::Release);
        // Dropped on another thread as the poll ended: if the runner has
        // not taken the end over, it falls to us.
        if !self.in_poll.load(Ordering::Acquire) {
            return !self.end_deferred.swap(false, Ordering::AcqRel);
        }
        true
    }
}

impl RawDialog {
    pub(crate) fn new(
        channel: Channel,
        id: u64,
        window: Window,
        credit: Arc<Credit>,
        inbox: StreamInbox,
    ) -> Self {
        RawDialog(Arc::new(Dialog {
            channel,
            id,
            window,
            credit,
            started: AtomicBool::new(false),
            inbox: Mutex::new(Some(inbox)),
            in_poll: AtomicBool::new(false),
            end_deferred: AtomicBool::new(false),
        }))
    }

    /// Runs the function's future. A stream it drops while being polled
    /// ends once that poll is over, unless the function has then failed:
    /// its error ends the caller's stream instead, as an `Err` item.
    pub(crate) async fn run<T, E>(&self, body: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let dialog = &self.0;
        let mut body = std::pin::pin!(body);
        // Declared after the body, so dropped before it: if this future is
        // dropped unfinished (the function cancelled, or out of time), a
        // stream the body drops leaves its end to the error that follows.
        let mut cancelled = DeferOnDrop {
            dialog,
            armed: true,
        };
        let outcome = std::future::poll_fn(|cx| {
            dialog.in_poll.store(true, Ordering::Release);
            let polled = body.as_mut().poll(cx);
            dialog.in_poll.store(false, Ordering::Release);
            if !matches!(polled, Poll::Ready(Err(_))) {
                self.send_deferred_end();
            }
            polled
        })
        .await;
        cancelled.armed = false;
        // Failed: the error ends the stream; the end is not needed.
        dialog.end_deferred.store(false, Ordering::Release);
        outcome
    }

    fn send_deferred_end(&self) {
        let dialog = &self.0;
        if dialog.end_deferred.swap(false, Ordering::AcqRel) {
            dialog
                .channel
                .send_end(Direction::ToCaller, dialog.id, true);
        }
    }

    /// Whether the function called `started`.
    pub(crate) fn is_started(&self) -> bool {
        self.0.started.load(Ordering::Acquire)
    }
}

impl<S, I, O> Context<S, I, O> {
    pub(crate) fn new(raw: RawDialog) -> Self {
        Context {
            raw,
            _types: PhantomData,
        }
    }
}

impl<S: Serialize, I: DeserializeOwned, O: Serialize> Context<S, I, O> {
    /// Hands the caller `value`: its `open_context` returns with it. Call
    /// it once, before [`open_stream`](Self::open_stream).
    ///
    /// Fails with [`Error::Misuse`] when called twice, and as a send does
    /// when the caller is gone.
    pub async fn started(&self, value: S) -> Result<()> {
        let dialog = &self.raw.0;
        if dialog.started.swap(true, Ordering::AcqRel) {
            return Err(Error::Misuse(
                "Context::started was already called: a context starts once".into(),
            ));
        }
        let sent = dialog
            .channel
            .send_started(dialog.id, dialog.window, |buf| {
                frame::encode_into(buf, &value)
            })
            .await;
        if let Err(Error::Codec { .. }) = &sent {
            // Nothing went out: the function may still start with another
            // value, or fail.
            dialog.started.store(false, Ordering::Release);
        }
        sent
    }

    /// Opens this side of the two-way stream: receives the caller's `I`s,
    /// sends `O`s. At most once, after [`started`](Self::started).
    pub async fn open_stream(&self) -> Result<MsgStream<I, O>> {
        let dialog = &self.raw.0;
        if !self.raw.is_started() {
            return Err(Error::Misuse(
                "Context::open_stream before Context::started: hand the caller its first \
                 value with ctx.started(..) first"
                    .into(),
            ));
        }
        let side = Side {
            channel: &dialog.channel,
            id: dialog.id,
            window: dialog.window,
            sends: Direction::ToCaller,
            credit: &dialog.credit,
            unopened: &dialog.inbox,
        };
        MsgStream::open(side, Owner::Callee(self.raw.0.clone()))
    }
}

impl<S, I, O> std::fmt::Debug for Context<S, I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("caller", self.raw.0.channel.peer())
            .field("id", &self.raw.0.id)
            .finish_non_exhaustive()
    }
}
