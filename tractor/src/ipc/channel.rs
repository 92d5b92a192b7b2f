//! A channel: one connection between two actors, multiplexing any number of
//! calls and streams in both directions.
//!
//! Every call or stream carries an id chosen by the caller. Our own calls
//! wait in `pending` until their answer arrives (a `Return` or `Error`; for
//! a stream, `Yield`s until `Stop` or `Error`); calls and streams the peer
//! opened with us are tracked in `serving` so that a `Cancel` (or the peer
//! going away) stops them and a `Credit` reaches the right producer. Frames
//! are written by the connection's single writer task (see [`Outbox`]) and
//! read by its single reader task (see [`reader`]), which never waits on a
//! consumer: one slow stream cannot hold up the others.
//!
//! Both directions are bounded: what we send waits for room in the outbox,
//! what the peer sends is admitted within the channel's [`Limits`] and, for
//! streams, checked against the credit we granted ([`Granted`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use super::heartbeat::Heartbeat;

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::ipc::credit::{Credit, Granted, Window};
use crate::ipc::handshake::Opened;
use crate::ipc::limits::{Admission, Limits};
use crate::ipc::msg::{Handshake, Msg, WireError};
use crate::ipc::outbox::{Outbox, Pushed};
use crate::ipc::{frame, reader};
use crate::uid::ActorUid;

/// The id of a new child's main call on its parent's channel: the spawn
/// writes the call over the child's link before the channel exists (see
/// [`main_call_frame`]), and the channel awaits its answer from the start
/// (see [`ReservedCall`]). Our own ids start above it.
pub(crate) const MAIN_CALL: u64 = 0;

/// A call already sent as [`MAIN_CALL`], for a new channel to await the
/// answer of from the start: registered before its reader runs, it takes
/// an answer that came in with the peer's hello.
pub(crate) struct ReservedCall {
    /// The call's deadline, as sent.
    pub(crate) deadline: Option<tokio::time::Instant>,
}

/// The frame of call `func(args)` as [`MAIN_CALL`], with `deadline`'s time
/// left.
pub(crate) fn main_call_frame(
    func: &str,
    args: &[u8],
    deadline: Option<tokio::time::Instant>,
) -> Result<BytesMut, Error> {
    let mut frame = BytesMut::with_capacity(64 + args.len());
    let header = Msg::Call {
        id: MAIN_CALL,
        func,
        timeout_ms: timeout_ms(deadline),
    };
    frame::write(&mut frame, &header, |buf| {
        buf.extend_from_slice(args);
        Ok(())
    })?;
    Ok(frame)
}

/// A deadline as the time left, in milliseconds, that a call carries.
fn timeout_ms(deadline: Option<tokio::time::Instant>) -> Option<u32> {
    deadline.map(|deadline| {
        millis_left(deadline.saturating_duration_since(tokio::time::Instant::now()))
    })
}

/// Time left in whole milliseconds, rounded up: the callee's deadline must
/// not fall before the caller's, or the callee's timeout answer would end
/// a call before the time its caller gave it.
fn millis_left(left: Duration) -> u32 {
    u32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

/// The answer to a [`ReservedCall`], and the call's deadline.
type MainAnswer = (
    oneshot::Receiver<Result<Bytes, Error>>,
    Option<tokio::time::Instant>,
);

/// What kind of call the peer opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallKind {
    /// One answer, wanted within `timeout` if set.
    Unary { timeout: Option<Duration> },
    /// A stream; the consumer grants `window` of credit up front.
    Stream { window: Window },
    /// A context; each side grants the other `window` up front.
    Context { window: Window },
}

/// A call the peer made, admitted and ready to serve.
pub(crate) struct Incoming<'a> {
    pub(crate) id: u64,
    pub(crate) func: &'a str,
    pub(crate) kind: CallKind,
    pub(crate) args: Bytes,
    /// Held for as long as the call runs.
    pub(crate) admission: Admission,
}

/// What an actor does with the frames its peers send it.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// The peer calls (or opens a stream of) a remote function. An `Err`
    /// is a protocol violation (a call id already in use) and closes the
    /// channel.
    fn call(&self, channel: &Channel, call: Incoming<'_>) -> Result<(), Error>;
    /// The peer asks this whole actor to cancel, answering call `id` when
    /// done; the request holds `admission` until it is answered.
    fn cancel_actor(&self, channel: &Channel, id: u64, grace: Duration, admission: Admission);
    /// The peer is going and asks to be unregistered, answering `id` when
    /// done; the request holds `admission` until it is answered.
    fn leave(&self, channel: &Channel, id: u64, admission: Admission);
    /// The channel closed (either side, for any reason).
    fn closed(&self, channel: &Channel);
}

/// What arrives for one of our streams (or a context's stream, either
/// side).
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A run of batches: each `(range, n)` is a range of `chunk` holding
    /// `n` encoded items one after the other.
    Items {
        chunk: Bytes,
        batches: Vec<(std::ops::Range<usize>, u32)>,
    },
    End,
    Failed(Error),
}

/// Which way items flow on a call: from its callee to its caller
/// (streams, and a context's function sending) or the other way (a
/// context's caller sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    ToCaller,
    ToCallee,
}

/// What the caller of a context receives, apart from the stream items.
pub(crate) struct ContextOpened {
    pub(crate) id: u64,
    /// The function's return, or its error.
    pub(crate) result: oneshot::Receiver<Result<Bytes, Error>>,
    /// The function's items.
    pub(crate) inbox: StreamInbox,
    /// What the function lets us send.
    pub(crate) credit: Arc<Credit>,
}

/// A handle on an open channel; cheap to clone.
#[derive(Clone)]
pub(crate) struct Channel(Arc<Shared>);

struct Shared {
    peer: Handshake,
    outbox: Outbox,
    limits: Limits,
    next_id: AtomicU64,
    calls: Mutex<Calls>,
    closed: CancellationToken,
    /// The socket's descriptor, to ask whether the peer hung up before the
    /// reader has seen it; open for as long as `closed` is not cancelled.
    watch: std::os::fd::RawFd,
    /// The answer to [`MAIN_CALL`], until taken.
    main: Mutex<Option<MainAnswer>>,
    /// Closed because the peer said nothing for its heartbeat timeout.
    silent: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Calls {
    /// Our calls and streams awaiting their answers.
    pending: FxHashMap<u64, Waiter>,
    /// The peer's calls and streams we are running.
    serving: FxHashMap<u64, Served>,
    /// Set once, under this lock, so no call is registered after the
    /// channel closed.
    closed: bool,
}

enum Waiter {
    Unary(oneshot::Sender<Result<Bytes, Error>>),
    Stream(StreamSink),
    Context(ContextWaiter),
}

/// Where the frames of one of our contexts go.
struct ContextWaiter {
    /// Until `Started` (or an early end) arrives.
    started: Option<oneshot::Sender<Result<Bytes, Error>>>,
    result: oneshot::Sender<Result<Bytes, Error>>,
    items: StreamSink,
    /// The function stopped sending.
    items_ended: bool,
    credit: Arc<Credit>,
}

impl ContextWaiter {
    fn end_items(&mut self, how: Delivery) {
        if !self.items_ended {
            self.items_ended = true;
            let _ = self.items.items.send(how);
        }
    }

    /// The context is over: `answer` is its result.
    fn finish(mut self, answer: Result<Bytes, Error>) {
        self.credit.close();
        if let Some(started) = self.started.take() {
            let early = match answer {
                Ok(_) => Err(Error::Protocol(
                    "the context's function returned before calling started".into(),
                )),
                Err(error) => Err(error),
            };
            let _ = started.send(early.clone());
            let _ = self.result.send(early);
            return;
        }
        match &answer {
            Ok(_) => self.end_items(Delivery::End),
            Err(error) => self.end_items(Delivery::Failed(error.clone())),
        }
        let _ = self.result.send(answer);
    }
}

/// Where one of our streams' deliveries go, and what we allowed its
/// producer. The queue is unbounded in type only: the reader refuses items
/// past the credit granted, and every delivery holds at least one item.
#[derive(Clone)]
pub(crate) struct StreamSink {
    pub(crate) items: mpsc::UnboundedSender<Delivery>,
    pub(crate) granted: Arc<Granted>,
}

/// The receiving end of a [`StreamSink`]: its queue, and what was granted.
pub(crate) type StreamInbox = (mpsc::UnboundedReceiver<Delivery>, Arc<Granted>);

impl StreamSink {
    /// A sink granting `window`, and the queue its deliveries go to.
    pub(crate) fn new(window: Window) -> (StreamSink, StreamInbox) {
        let (items, received) = mpsc::unbounded_channel();
        let granted = Arc::new(Granted::new(window));
        let sink = StreamSink {
            items,
            granted: granted.clone(),
        };
        (sink, (received, granted))
    }
}

pub(crate) struct Served {
    pub(crate) token: CancellationToken,
    /// For a stream or context: the producer's credit.
    pub(crate) credit: Option<Arc<Credit>>,
    /// For a context: where the caller's items go.
    pub(crate) inbox: Option<StreamSink>,
}

impl Served {
    /// The call is over or abandoned: its producer stops, its reader ends.
    fn stop(self, why: Option<Error>) {
        self.token.cancel();
        if let Some(credit) = self.credit {
            credit.close();
        }
        if let Some(inbox) = self.inbox {
            let _ = inbox.items.send(match why {
                Some(error) => Delivery::Failed(error),
                None => Delivery::End,
            });
        }
    }
}

impl Channel {
    /// Starts the reader and writer tasks of a handshaken connection, whose
    /// first bytes out are `first` (the opening's last frame, when the
    /// caller leaves it to the channel), awaiting the answer to `main` (see
    /// [`take_main_call`](Self::take_main_call)); the peer may have
    /// `max_calls` calls running here at once. A connection over TCP
    /// keeps `heartbeat` (see [`heartbeat`](super::heartbeat)).
    pub(crate) fn start(
        opened: Opened,
        first: &[u8],
        main: Option<ReservedCall>,
        inbound: Arc<dyn Inbound>,
        max_calls: usize,
        heartbeat: Heartbeat,
    ) -> Channel {
        let heartbeat = opened.stream.is_tcp().then_some(heartbeat);
        let Opened {
            stream,
            peer,
            leftover,
        } = opened;
        let watch = stream.raw_fd();
        let mut calls = Calls::default();
        let main = main.map(|main| {
            let (tx, answer) = oneshot::channel();
            calls.pending.insert(MAIN_CALL, Waiter::Unary(tx));
            (answer, main.deadline)
        });
        let channel = Channel(Arc::new(Shared {
            watch,
            peer,
            outbox: Outbox::new(first),
            limits: Limits::new(max_calls),
            next_id: AtomicU64::new(MAIN_CALL + 1),
            calls: Mutex::new(calls),
            closed: CancellationToken::new(),
            main: Mutex::new(main),
            silent: Default::default(),
        }));
        let (mut read_half, mut write_half) = stream.into_split();
        // Each half is dropped only once the channel is marked closed: the
        // socket (whose number `is_gone` polls) stays open while it is not.
        let writer = channel.clone();
        tokio::spawn(async move {
            if let Err(err) = writer.0.outbox.run_writer(&mut write_half).await {
                tracing::debug!(peer = %writer.peer(), "write failed: {err}");
            }
            writer.close();
            drop(write_half);
        });
        if let Some(heartbeat) = heartbeat {
            tokio::spawn(super::heartbeat::send(channel.clone(), heartbeat.interval));
        }
        let silence = heartbeat.map(|heartbeat| heartbeat.timeout);
        let reader = channel.clone();
        tokio::spawn(async move {
            reader::run(&mut read_half, leftover, &reader, &*inbound, silence).await;
            reader.close();
            drop(read_half);
            inbound.closed(&reader);
        });
        channel
    }

    /// Whether both handles are the same channel.
    pub(crate) fn same(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn peer(&self) -> &ActorUid {
        &self.0.peer.uid
    }

    pub(crate) fn peer_addr(&self) -> Option<&str> {
        self.0.peer.addr.as_deref()
    }

    pub(crate) fn peer_registers(&self) -> bool {
        self.0.peer.register
    }

    /// Admission control for the peer's calls.
    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.is_cancelled()
    }

    /// Whether the channel is closed or its peer has hung up: a process
    /// that exited has closed its end before anyone can see its exit, but
    /// the reader may not have read the end of stream yet. A lookup uses
    /// this, so that it never hands out a channel to a peer that is gone.
    pub(crate) fn is_gone(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        if self.is_closed() {
            return true;
        }
        // SAFETY: the socket stays open until the channel is closed (its
        // halves are dropped only after), checked just above; should it
        // close in between, polling a descriptor only reads its state.
        let watch = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0.watch) };
        let mut fds = [PollFd::new(&watch, PollFlags::RDHUP)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(1))
            && fds[0]
                .revents()
                .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
    }

    /// Resolves once the channel has closed.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.0.closed.clone().cancelled_owned()
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            actor: self.peer().clone(),
        }
    }

    /// Closes the channel: no more frames are sent (what is queued still
    /// goes out), pending calls and streams fail, served ones are
    /// cancelled.
    pub(crate) fn close(&self) {
        let calls = {
            let mut calls = self.lock_calls();
            if calls.closed {
                return;
            }
            calls.closed = true;
            std::mem::take(&mut *calls)
        };
        self.0.outbox.close();
        self.0.closed.cancel();
        for (_, waiter) in calls.pending {
            match waiter {
                Waiter::Unary(answer) => {
                    let _ = answer.send(Err(self.disconnected()));
                }
                Waiter::Stream(sink) => {
                    let _ = sink.items.send(Delivery::Failed(self.disconnected()));
                }
                Waiter::Context(waiter) => waiter.finish(Err(self.disconnected())),
            }
        }
        for (_, served) in calls.serving {
            served.stop(Some(self.disconnected()));
        }
    }

    /// Waits until every frame queued so far has been written.
    pub(crate) async fn flushed(&self) {
        self.0.outbox.flushed().await
    }

    fn lock_calls(&self) -> MutexGuard<'_, Calls> {
        self.0
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer to the main call the channel was started awaiting, with
    /// its deadline; `None` if there was none, or it was taken.
    pub(crate) fn take_main_call(&self) -> Option<(PendingCall, Option<tokio::time::Instant>)> {
        let (answer, deadline) = crate::lock::lock(&self.0.main).take()?;
        let pending = PendingCall {
            channel: self.clone(),
            id: MAIN_CALL,
            answer,
            done: false,
        };
        Some((pending, deadline))
    }

    /// Sends a call of `func` (once there is room) and returns the future
    /// of its answer.
    pub(crate) async fn call(
        &self,
        func: &str,
        args: &[u8],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<PendingCall, Error> {
        let (tx, answer) = oneshot::channel();
        let timeout_ms = timeout_ms(deadline);
        let id = self
            .request(
                func,
                Waiter::Unary(tx),
                |id| Msg::Call {
                    id,
                    func,
                    timeout_ms,
                },
                args,
            )
            .await?;
        Ok(PendingCall {
            channel: self.clone(),
            id,
            answer,
            done: false,
        })
    }

    /// Asks the peer to cancel itself within `grace`; the answer arrives as
    /// the returned call's `Return`. Dropping the answer does not withdraw
    /// the request.
    pub(crate) fn cancel_actor(&self, grace: Duration) -> Result<PendingCall, Error> {
        let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
        self.request_now(|id| Msg::CancelActor { id, grace_ms })
    }

    /// Tells the registrar on the other end that we are going; the answer
    /// comes once it has unregistered us.
    pub(crate) fn leave(&self) -> Result<PendingCall, Error> {
        self.request_now(|id| Msg::Leave { id })
    }

    /// Sends the control request `header(id)` at once; its answer is the
    /// returned call's. Dropping the answer does not withdraw the request.
    fn request_now(&self, header: impl FnOnce(u64) -> Msg<'static>) -> Result<PendingCall, Error> {
        let (tx, answer) = oneshot::channel();
        let id = self.register(Waiter::Unary(tx))?;
        if let Err(err) = self.push_now(&header(id), |_| Ok(())) {
            self.lock_calls().pending.remove(&id);
            return Err(err);
        }
        Ok(PendingCall {
            channel: self.clone(),
            id,
            answer,
            done: true,
        })
    }

    /// Opens a stream of `func` with `window` items of credit; its
    /// deliveries arrive on the returned receiver, and what we granted is
    /// counted in the returned [`Granted`].
    pub(crate) async fn open_stream(
        &self,
        func: &str,
        args: &[u8],
        window: Window,
    ) -> Result<(u64, mpsc::UnboundedReceiver<Delivery>, Arc<Granted>), Error> {
        let (sink, (items, granted)) = StreamSink::new(window);
        let id = self
            .request(
                func,
                Waiter::Stream(sink),
                |id| Msg::OpenStream {
                    id,
                    func,
                    window: window.items,
                    window_bytes: window.bytes,
                },
                args,
            )
            .await?;
        Ok((id, items, granted))
    }

    /// Opens a context with `func(args)`, each side granting the other
    /// `window` items; the receiver gets the value `started` gave, or why
    /// the function ended before.
    pub(crate) async fn open_context(
        &self,
        func: &str,
        args: &[u8],
        window: Window,
    ) -> Result<(ContextOpened, oneshot::Receiver<Result<Bytes, Error>>), Error> {
        let (started_tx, started) = oneshot::channel();
        let (result_tx, result) = oneshot::channel();
        let (sink, inbox) = StreamSink::new(window);
        // The function grants its own window when it starts.
        let credit = Arc::new(Credit::new(Window::NONE));
        let waiter = ContextWaiter {
            started: Some(started_tx),
            result: result_tx,
            items: sink,
            items_ended: false,
            credit: credit.clone(),
        };
        let id = self
            .request(
                func,
                Waiter::Context(waiter),
                |id| Msg::OpenContext {
                    id,
                    func,
                    window: window.items,
                    window_bytes: window.bytes,
                },
                args,
            )
            .await?;
        let opened = ContextOpened {
            id,
            result,
            inbox,
            credit,
        };
        Ok((opened, started))
    }

    /// Registers `waiter` under a new id.
    fn register(&self, waiter: Waiter) -> Result<u64, Error> {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let mut calls = self.lock_calls();
        if calls.closed {
            return Err(self.disconnected());
        }
        calls.pending.insert(id, waiter);
        Ok(id)
    }

    /// Registers `waiter` under a new id, then sends `header(id)` with
    /// the encoded `args` once there is room. A message too large (or that does not
    /// encode) fails naming the call of `func`.
    async fn request<'a>(
        &self,
        func: &str,
        waiter: Waiter,
        header: impl FnOnce(u64) -> Msg<'a>,
        args: &[u8],
    ) -> Result<u64, Error> {
        let id = self.register(waiter)?;
        // Until the frame is queued, a caller that gives up (drops this
        // future while it waits for room) takes its entry with it.
        let unsent = Unsent {
            channel: self,
            id: Some(id),
        };
        let payload = |buf: &mut BytesMut| {
            buf.extend_from_slice(args);
            Ok(())
        };
        let pushed = self.push_data(&header(id), payload).await;
        let mut unsent = unsent;
        if let Err(err) = pushed {
            return Err(match err {
                Error::Codec { what, reason } => Error::Codec {
                    what: format!("the call of {func} ({what})"),
                    reason,
                },
                other => other,
            });
        }
        unsent.id = None;
        Ok(id)
    }

    /// An answer arrived for our call `id`: `Return` or `Error` (which also
    /// ends a stream or a context).
    pub(crate) fn complete(&self, id: u64, answer: Result<Bytes, Error>) {
        let waiter = self.lock_calls().pending.remove(&id);
        match (waiter, answer) {
            (Some(Waiter::Context(waiter)), answer) => waiter.finish(answer),
            (Some(Waiter::Unary(waiter)), answer) => {
                let _ = waiter.send(answer);
            }
            (Some(Waiter::Stream(sink)), Err(error)) => {
                let _ = sink.items.send(Delivery::Failed(error));
            }
            (Some(Waiter::Stream(sink)), Ok(_)) => {
                let error = Error::Protocol(format!("a plain return for stream {id}"));
                let _ = sink.items.send(Delivery::Failed(error));
            }
            (None, _) => tracing::trace!(peer = %self.peer(), id, "answer nobody awaits"),
        }
    }

    /// Our stream `id` ended normally; for a context, its function sends
    /// no more (and, on `hangup`, reads no more).
    pub(crate) fn end_stream(&self, id: u64, hangup: bool) {
        let mut calls = self.lock_calls();
        match calls.pending.get_mut(&id) {
            Some(Waiter::Stream(sink)) => {
                let _ = sink.items.send(Delivery::End);
                calls.pending.remove(&id);
            }
            Some(Waiter::Context(waiter)) => {
                waiter.end_items(Delivery::End);
                if hangup {
                    waiter.credit.close();
                }
            }
            _ => {}
        }
    }

    /// Our context `id`'s function called `started` with `value`, letting
    /// us send `window` ahead.
    pub(crate) fn context_started(&self, id: u64, window: Window, value: Bytes) {
        if let Some(Waiter::Context(waiter)) = self.lock_calls().pending.get_mut(&id) {
            if let Some(started) = waiter.started.take() {
                waiter.credit.grant(window.items, window.bytes);
                let _ = started.send(Ok(value));
            }
        }
    }

    /// The function of our context `id` took `n` more of our items, of
    /// `bytes` bytes.
    pub(crate) fn push_credit(&self, id: u64, n: u32, bytes: u32) {
        if let Some(Waiter::Context(waiter)) = self.lock_calls().pending.get(&id) {
            waiter.credit.grant(n, bytes);
        }
    }

    /// The caller of the peer's context `id` sends no more (and, on
    /// `hangup`, reads no more).
    pub(crate) fn end_push(&self, id: u64, hangup: bool) {
        let mut calls = self.lock_calls();
        let Some(served) = calls.serving.get_mut(&id) else {
            return;
        };
        if let Some(inbox) = served.inbox.take() {
            let _ = inbox.items.send(Delivery::End);
        }
        if let (true, Some(credit)) = (hangup, &served.credit) {
            credit.close();
        }
    }

    /// Where items flowing `direction` on call `id` go, for a reader that
    /// delivers many in a row without looking each one up.
    pub(crate) fn stream_sink(&self, direction: Direction, id: u64) -> Option<StreamSink> {
        let calls = self.lock_calls();
        match direction {
            Direction::ToCaller => match calls.pending.get(&id) {
                Some(Waiter::Stream(sink)) => Some(sink.clone()),
                Some(Waiter::Context(waiter)) if !waiter.items_ended => Some(waiter.items.clone()),
                _ => None,
            },
            Direction::ToCallee => calls.serving.get(&id)?.inbox.clone(),
        }
    }

    /// Ends the items flowing `direction` on call `id` with `error` and
    /// stops the call: the stream is over, the channel lives on.
    pub(crate) fn fail_stream(&self, direction: Direction, id: u64, error: Error) {
        match direction {
            Direction::ToCaller => {
                let waiter = self.lock_calls().pending.remove(&id);
                match waiter {
                    Some(Waiter::Stream(sink)) => {
                        let _ = sink.items.send(Delivery::Failed(error));
                    }
                    Some(Waiter::Context(waiter)) => waiter.finish(Err(error)),
                    Some(Waiter::Unary(answer)) => {
                        let _ = answer.send(Err(error));
                    }
                    None => return,
                }
                self.send(&Msg::Cancel { id }, |_| Ok(()));
            }
            Direction::ToCallee => {
                if let Some(served) = self.lock_calls().serving.remove(&id) {
                    served.stop(Some(error));
                }
            }
        }
    }

    /// We stopped waiting for our call or stream `id` before its end.
    pub(crate) fn abandon(&self, id: u64) {
        if self.lock_calls().pending.remove(&id).is_some() {
            self.send(&Msg::Cancel { id }, |_| Ok(()));
        }
    }

    /// Asks the peer to cancel our call `id`, still waiting for its answer
    /// (the acknowledgement).
    pub(crate) fn request_cancel(&self, id: u64) {
        if self.lock_calls().pending.contains_key(&id) {
            self.send(&Msg::Cancel { id }, |_| Ok(()));
        }
    }

    /// Grants the sender of the items flowing `direction` on call `id` `n`
    /// more items and `bytes` more bytes.
    pub(crate) fn send_credit(&self, direction: Direction, id: u64, n: u32, bytes: u32) {
        match direction {
            Direction::ToCaller => self.send(&Msg::Credit { id, n, bytes }, |_| Ok(())),
            Direction::ToCallee => self.send(&Msg::PushCredit { id, n, bytes }, |_| Ok(())),
        }
    }

    /// Records that we are running the peer's call `id`. `Ok(false)` if the
    /// channel is already closed; an error if the peer already has a call
    /// `id` running (it broke the protocol).
    pub(crate) fn serve(&self, id: u64, served: Served) -> Result<bool, Error> {
        let mut calls = self.lock_calls();
        if calls.closed {
            return Ok(false);
        }
        match calls.serving.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Error::Protocol(format!(
                "the peer reused call id {id} while that call was still running"
            ))),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(served);
                Ok(true)
            }
        }
    }

    /// The peer's call `id` is over.
    pub(crate) fn served(&self, id: u64) {
        self.lock_calls().serving.remove(&id);
    }

    /// The peer gave up on its call `id`.
    pub(crate) fn cancel_served(&self, id: u64) {
        if let Some(served) = self.lock_calls().serving.remove(&id) {
            served.stop(Some(Error::Cancelled));
        }
    }

    /// The peer consumed `n` more items of our stream `id`, of `bytes`
    /// bytes.
    pub(crate) fn credit_served(&self, id: u64, n: u32, bytes: u32) {
        let calls = self.lock_calls();
        if let Some(credit) = calls.serving.get(&id).and_then(|s| s.credit.as_ref()) {
            credit.grant(n, bytes);
        }
    }

    /// Answers the peer's call `id` with an encoded value, once there is
    /// room. An error means the answer did not go (too large); nothing was
    /// sent then.
    pub(crate) async fn send_return(&self, id: u64, payload: &[u8]) -> Result<(), Error> {
        self.push_data(&Msg::Return { id }, |buf| {
            buf.extend_from_slice(payload);
            Ok(())
        })
        .await
    }

    /// Whether anything but a heartbeat was sent to the peer since this
    /// was last asked (see `heartbeat`).
    pub(crate) fn sent_since_asked(&self) -> bool {
        self.0.outbox.take_sent()
    }

    /// Marks the channel closed for its peer's silence (see `heartbeat`).
    pub(crate) fn set_silent(&self) {
        self.0.silent.store(true, Ordering::Release);
    }

    /// Whether it closed because its peer went silent: a cut link or a
    /// frozen host, not a peer that hung up.
    pub(crate) fn went_silent(&self) -> bool {
        self.0.silent.load(Ordering::Acquire)
    }

    /// Queues a heartbeat; false once the channel is closed.
    pub(crate) fn send_heartbeat(&self) -> bool {
        matches!(self.0.outbox.push_heartbeat(&Msg::Heartbeat), Ok(true))
    }

    /// Acknowledges the peer's request `id` at once (an empty answer).
    pub(crate) fn acknowledge(&self, id: u64) {
        self.send(&Msg::Return { id }, |_| Ok(()));
    }

    /// Sends `n` items flowing `direction` on call `id`, encoded by
    /// `encode` one after the other, once there is room.
    pub(crate) async fn send_items(
        &self,
        direction: Direction,
        id: u64,
        n: u32,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // The usual case, room now, without the waiting machinery.
        let header = items_header(direction, id, n);
        match self.0.outbox.try_push_data(&header, encode) {
            Pushed::Done(pushed) => self.queued(pushed),
            Pushed::Full(encode) => self.push_data(&header, encode).await,
        }
    }

    /// As [`send_items`](Self::send_items) with the items already encoded
    /// in `batch`, if there is room now; `None` when there is not.
    pub(crate) fn try_send_batch(
        &self,
        direction: Direction,
        id: u64,
        n: u32,
        batch: &[u8],
    ) -> Option<Result<(), Error>> {
        let header = items_header(direction, id, n);
        let append = |buf: &mut BytesMut| {
            buf.extend_from_slice(batch);
            Ok(())
        };
        match self.0.outbox.try_push_data(&header, append) {
            Pushed::Done(pushed) => Some(self.queued(pushed)),
            Pushed::Full(_) => None,
        }
    }

    /// Resolves once a data frame would be queued at once (or the channel
    /// is closed).
    pub(crate) fn room(&self) -> impl Future<Output = ()> + Send + 'static {
        let channel = self.clone();
        async move { channel.0.outbox.room().await }
    }

    /// Queues `n` items encoded in `batch` at once, past the outbox's mark:
    /// the last batch of a stream being dropped (one per stream, bounded
    /// by the batch size).
    pub(crate) fn send_batch_now(&self, direction: Direction, id: u64, n: u32, batch: &[u8]) {
        self.send(&items_header(direction, id, n), |buf| {
            buf.extend_from_slice(batch);
            Ok(())
        });
    }

    /// Ends the items flowing `direction` on call `id` (`hangup`: this
    /// side reads no more either).
    pub(crate) fn send_end(&self, direction: Direction, id: u64, hangup: bool) {
        match direction {
            Direction::ToCaller => self.send(&Msg::Stop { id, hangup }, |_| Ok(())),
            Direction::ToCallee => self.send(&Msg::PushEnd { id, hangup }, |_| Ok(())),
        }
    }

    /// Tells the caller of context `id` that its function started, with
    /// `value` encoded by `encode`, once there is room.
    pub(crate) async fn send_started(
        &self,
        id: u64,
        window: Window,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let header = Msg::Started {
            id,
            window: window.items,
            window_bytes: window.bytes,
        };
        self.push_data(&header, encode).await
    }

    /// Answers the peer's call (or ends its stream) `id` with an error,
    /// once there is room.
    pub(crate) async fn send_error(&self, id: u64, error: &WireError) {
        let sent = self
            .push_data(&Msg::Error { id }, |buf| frame::encode_into(buf, error))
            .await;
        self.log_failure(&Msg::Error { id }, sent);
    }

    /// Queues a data frame once there is room; a closed channel is
    /// [`Error::Disconnected`].
    async fn push_data(
        &self,
        header: &Msg<'_>,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let pushed = self.0.outbox.push_data(header, payload).await;
        self.queued(pushed)
    }

    /// What the outbox said, as this channel's result.
    fn queued(&self, pushed: Result<bool, Error>) -> Result<(), Error> {
        match pushed {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.disconnected()),
            Err(err) => Err(err),
        }
    }

    /// Queues a control frame at once; a closed channel is
    /// [`Error::Disconnected`].
    fn push_now(
        &self,
        header: &Msg<'_>,
        payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let pushed = self.0.outbox.push(header, payload);
        self.queued(pushed)
    }

    /// Queues a control frame nobody waits on; failures are only logged.
    fn send(&self, header: &Msg<'_>, payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>) {
        let sent = self.push_now(header, payload);
        self.log_failure(header, sent);
    }

    fn log_failure(&self, header: &Msg<'_>, sent: Result<(), Error>) {
        match sent {
            Ok(()) | Err(Error::Disconnected { .. }) => {}
            Err(err) => tracing::warn!(peer = %self.peer(), "could not send {header:?}: {err}"),
        }
    }
}

fn items_header(direction: Direction, id: u64, n: u32) -> Msg<'static> {
    match direction {
        Direction::ToCaller => Msg::Yield { id, n },
        Direction::ToCallee => Msg::Push { id, n },
    }
}

/// A call registered but not yet queued; dropping it unregisters it.
struct Unsent<'a> {
    channel: &'a Channel,
    id: Option<u64>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.channel.lock_calls().pending.remove(&id);
        }
    }
}

/// The answer to one of our calls. Dropping it before the answer arrives
/// tells the peer to cancel the call.
pub(crate) struct PendingCall {
    channel: Channel,
    id: u64,
    answer: oneshot::Receiver<Result<Bytes, Error>>,
    done: bool,
}

impl Future for PendingCall {
    type Output = Result<Bytes, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx));
        self.done = true;
        Poll::Ready(answer.unwrap_or_else(|_| Err(self.channel.disconnected())))
    }
}

impl PendingCall {
    /// The answer, if it comes before `deadline`. Past it, the call is
    /// cancelled in the peer and the answer (its acknowledgement) awaited
    /// a little longer, so that the task is gone when this returns
    /// [`Error::Timeout`].
    pub(crate) async fn within(
        mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Bytes, Error> {
        let Some(deadline) = deadline else {
            return (&mut self).await;
        };
        if let Ok(answer) = tokio::time::timeout_at(deadline, &mut self).await {
            return answer;
        }
        self.channel.request_cancel(self.id);
        let _ = tokio::time::timeout(crate::budget::DEFAULT_GRACE, &mut self).await;
        Err(Error::Timeout)
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if !self.done {
            self.channel.abandon(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::millis_left;
    use std::time::Duration;

    #[test]
    fn the_time_left_a_call_carries_is_rounded_up() {
        assert_eq!(millis_left(Duration::ZERO), 0);
        assert_eq!(millis_left(Duration::from_nanos(1)), 1);
        assert_eq!(millis_left(Duration::from_micros(299_400)), 300);
        assert_eq!(millis_left(Duration::from_millis(300)), 300);
        assert_eq!(millis_left(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
