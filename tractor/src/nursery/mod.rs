//! Actor nurseries: structured concurrency across processes.
//!
//! [`open_nursery`] runs a body that spawns child actors through an
//! [`ActorNursery`], and returns only when every child process has been
//! reaped. It supervises one-cancels-all:
//!
//! - an error in any child (whether or not anyone awaits its result), an
//!   error returned by the body, or the body being dropped cancels every
//!   child: gracefully (a cancel message, acknowledged) and then hard
//!   (SIGKILL after the grace period);
//! - a failing `run_in_actor` child's error goes first to a pending
//!   `result()` of that child; the body is then cancelled at its next await;
//! - errors come back all together: one error as itself, several as
//!   [`Error::Multi`]. Cancellations the nursery inflicts on itself are
//!   absorbed, and an error the body re-raises is reported once.
//!
//! When the body returns `Ok`, the nursery waits for each `run_in_actor`
//! child's result and then cancels that child, and waits for daemons
//! (`start_actor`) to be cancelled by someone (`portal.cancel_actor()`,
//! `n.cancel()`).
//!
//! Supervision runs inside the `open_nursery` future, fed by events from
//! small tasks: one per child waiting for its exit, one per `run_in_actor`
//! child waiting for its answer. Dropping the future hands every live child
//! to a background cancel (tracked by the actor, which waits for it before
//! it exits).

mod builder;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use tokio::sync::mpsc;
use uuid::Uuid;

pub use builder::{Daemon, RunIn, RunTarget, SpawnBuilder};

use crate::actor::Actor;
use crate::budget::DEFAULT_GRACE;
use crate::children::ChildHandle;
use crate::error::{Error, Result};
use crate::portal::ResultSlot;
use crate::stream::RawStream;

/// Opens a nursery, runs `body` with it, and returns once every actor it
/// spawned is gone.
///
/// ```
/// #[tractor::rpc]
/// async fn cellar_door() -> String {
///     "Dang that's beautiful".to_string()
/// }
///
/// # async fn example() -> tractor::Result<()> {
/// let answer = tractor::open_nursery(async |n: &tractor::ActorNursery| {
///     let portal = n.run_in_actor("some_linguist", cellar_door::call()).await?;
///     portal.result().await
/// })
/// .await?;
/// println!("{answer}");
/// # Ok(())
/// # }
/// ```
///
/// Must run inside an actor (`#[tractor::main]`, `#[tractor::test]`, or a
/// remote function); otherwise it returns [`Error::NotInActor`].
pub async fn open_nursery<X, F>(body: F) -> Result<X>
where
    F: AsyncFnOnce(&ActorNursery) -> Result<X>,
{
    let actor = Actor::current()?;
    let (events, mut inbox) = mpsc::unbounded_channel();
    let nursery = ActorNursery {
        inner: Arc::new(Inner {
            actor,
            children: Mutex::default(),
            events,
        }),
    };
    let mut guard = CancelOnDrop(Some(nursery.inner.clone()));
    let mut errors = Errors::default();

    // Phase 1: the body runs while children report.
    let outcome = {
        let body = body(&nursery);
        tokio::pin!(body);
        loop {
            tokio::select! {
                biased;
                outcome = &mut body => break Some(outcome),
                Some(event) = inbox.recv() => {
                    nursery.inner.handle(event, &mut errors);
                    if errors.failing {
                        // Let a pending `result()` of the failed child see
                        // its error; cancel the body at its next await.
                        break match futures::poll!(body.as_mut()) {
                            Poll::Ready(outcome) => Some(outcome),
                            Poll::Pending => None,
                        };
                    }
                }
            }
        }
    };

    // Phase 2: wind down. Normal exit lets `run_in_actor` children deliver
    // and waits for daemons; any failure cancels everyone.
    let mut cancelling = errors.failing || !matches!(outcome, Some(Ok(_)));
    if cancelling {
        nursery.inner.cancel_all();
    } else {
        nursery.inner.drain_untaken_streams();
    }
    loop {
        if !cancelling {
            nursery.inner.cancel_finished_runs();
        }
        if nursery.inner.all_done() {
            break;
        }
        let Some(event) = inbox.recv().await else {
            break;
        };
        nursery.inner.handle(event, &mut errors);
        if errors.failing && !cancelling {
            cancelling = true;
            nursery.inner.cancel_all();
        }
    }
    guard.0 = None;

    let mut errors = errors.list;
    match outcome {
        Some(Ok(value)) if errors.is_empty() => return Ok(value),
        Some(Err(error)) => {
            let self_inflicted = error.is_cancelled() && !errors.is_empty();
            if !self_inflicted && !errors.contains(&error) {
                errors.push(error);
            }
        }
        _ => {}
    }
    match errors.len() {
        0 => Err(Error::Cancelled),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multi(errors)),
    }
}

/// Spawns child actors; lent to the body of [`open_nursery`].
///
/// Children come in two kinds:
/// - [`run_in_actor`](Self::run_in_actor) starts an actor and runs one
///   call in it; its result comes from [`RunPortal::result`]. The actor
///   keeps serving other calls until the nursery body ends, then it is
///   cancelled once its result is in.
/// - [`start_actor`](Self::start_actor) starts a daemon that serves calls
///   until it is cancelled; the nursery waits for it.
///
/// [`RunPortal::result`]: crate::RunPortal::result
pub struct ActorNursery {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    actor: Actor,
    children: Mutex<Vec<Record>>,
    events: mpsc::UnboundedSender<Event>,
}

/// A child as the nursery tracks it.
struct Record {
    child: Arc<ChildHandle>,
    /// `run_in_actor` children's answer.
    result: Option<Arc<ResultSlot>>,
    /// The main call went out, so an answer (or failure) will come.
    main_sent: bool,
    exited: bool,
    answered: bool,
    /// An error was already reported for this child.
    reported: bool,
}

pub(crate) enum Event {
    Exited(Uuid),
    Answered(Uuid),
}

#[derive(Default)]
struct Errors {
    list: Vec<Error>,
    failing: bool,
}

impl ActorNursery {
    /// Starts a daemon actor called `name` that serves remote functions
    /// until it is cancelled.
    ///
    /// The returned builder takes options and resolves, when awaited, to a
    /// [`Portal`](crate::Portal) once the actor is up and registered.
    ///
    /// ```
    /// #[tractor::rpc]
    /// async fn movie_theatre_question() -> String {
    ///     "have you ever seen a portal?".to_string()
    /// }
    ///
    /// # async fn example() -> tractor::Result<()> {
    /// tractor::open_nursery(async |n: &tractor::ActorNursery| {
    ///     let frank = n.start_actor("frank").enable_modules([module_path!()]).await?;
    ///     println!("{}", frank.run(movie_theatre_question::call()).await?);
    ///     frank.cancel_actor().await?;
    ///     Ok(())
    /// })
    /// .await
    /// # }
    /// ```
    pub fn start_actor(&self, name: impl Into<String>) -> SpawnBuilder<'_, Daemon> {
        SpawnBuilder::new(self, name.into(), Daemon)
    }

    /// Starts an actor called `name` and runs `call` in it.
    ///
    /// Resolves, when awaited, to a [`RunPortal`](crate::RunPortal) whose
    /// `result()` is the call's result. The call's module is enabled in the
    /// new actor. If the call fails, the whole nursery is cancelled, whether
    /// or not anyone awaits the result.
    pub fn run_in_actor<C: RunTarget>(
        &self,
        name: impl Into<String>,
        call: C,
    ) -> SpawnBuilder<'_, RunIn<C>> {
        SpawnBuilder::new(self, name.into(), RunIn(call))
    }

    /// Cancels every child of this nursery, gracefully and then hard, and
    /// returns once they have all been reaped. The body goes on; the
    /// cancelled children are not reported as errors.
    pub async fn cancel(&self) -> Result<()> {
        let children: Vec<_> = self
            .inner
            .children()
            .iter()
            .filter(|record| !record.exited)
            .map(|record| record.child.clone())
            .collect();
        futures::future::join_all(children.iter().map(|child| child.cancel(DEFAULT_GRACE))).await;
        Ok(())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl std::fmt::Debug for ActorNursery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorNursery")
            .field("children", &self.inner.children().len())
            .finish()
    }
}

impl Inner {
    pub(crate) fn actor(&self) -> &Actor {
        &self.actor
    }

    fn children(&self) -> MutexGuard<'_, Vec<Record>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts supervising a freshly spawned child.
    pub(crate) fn adopt(&self, child: Arc<ChildHandle>, result: Option<Arc<ResultSlot>>) {
        let events = self.events.clone();
        let uuid = child.uid().uuid();
        let exited = child.exited();
        tokio::spawn(async move {
            exited.await;
            let _ = events.send(Event::Exited(uuid));
        });
        self.children().push(Record {
            child,
            result,
            main_sent: false,
            exited: false,
            answered: false,
            reported: false,
        });
    }

    fn mark_main_sent(&self, child: &ChildHandle) {
        let uuid = child.uid().uuid();
        if let Some(record) = self
            .children()
            .iter_mut()
            .find(|r| r.child.uid().uuid() == uuid)
        {
            record.main_sent = true;
        }
    }

    /// Sends `func(args)` as the main call of a `run_in_actor` child; its
    /// answer lands in `slot` and the nursery hears of it.
    pub(crate) async fn run_main(
        &self,
        child: &Arc<ChildHandle>,
        func: &str,
        args: &[u8],
        deadline: Option<tokio::time::Instant>,
        slot: Arc<ResultSlot>,
    ) {
        let pending = match child.channel() {
            Some(channel) => channel.call(func, args, deadline).await,
            None => Err(Error::Protocol("the child is not connected".into())),
        };
        self.mark_main_sent(child);
        let events = self.events.clone();
        let child = child.clone();
        self.actor.tasks().spawn(async move {
            let answer = match pending {
                Ok(pending) => pending.within(deadline).await,
                Err(err) => Err(err),
            };
            slot.fill(settle(&child, answer).await);
            let _ = events.send(Event::Answered(child.uid().uuid()));
        });
    }

    /// Opens stream `func(args)` as the main call of a `run_in_actor`
    /// child; the stream waits in `slot` for the body, and the nursery hears
    /// when it ends (or the child does).
    pub(crate) async fn run_main_stream(
        &self,
        child: &Arc<ChildHandle>,
        func: &str,
        args: &[u8],
        window: crate::ipc::credit::Window,
        first_by: Option<tokio::time::Instant>,
        slot: Arc<ResultSlot>,
    ) {
        let (on_end, ended) = tokio::sync::oneshot::channel();
        let opened = match child.channel() {
            Some(channel) => RawStream::open(channel, func, args, window, first_by).await,
            None => Err(Error::Protocol("the child is not connected".into())),
        };
        let opened = opened.map(|mut stream| {
            stream.on_end(on_end);
            slot.hold(stream);
        });
        self.mark_main_sent(child);
        let events = self.events.clone();
        let child = child.clone();
        self.actor.tasks().spawn(async move {
            let outcome = match opened {
                // A stream dropped before its end was stopped by its
                // consumer: done, not failed.
                Ok(()) => tokio::select! {
                    ended = ended => ended.unwrap_or(Ok(())),
                    _ = child.exited() => Err(Error::Disconnected { actor: child.uid().clone() }),
                },
                Err(err) => Err(err),
            };
            slot.finish(settle(&child, outcome).await);
            let _ = events.send(Event::Answered(child.uid().uuid()));
        });
    }

    /// After a normal body exit: streams the body never took are read to
    /// their end, so that their children can finish.
    fn drain_untaken_streams(&self) {
        for record in self.children().iter() {
            if let Some(stream) = record
                .result
                .as_ref()
                .and_then(|slot| slot.untaken_stream())
            {
                self.actor.tasks().spawn(stream.drain());
            }
        }
    }

    fn handle(&self, event: Event, errors: &mut Errors) {
        let mut children = self.children();
        let uuid = match &event {
            Event::Exited(uuid) | Event::Answered(uuid) => *uuid,
        };
        let Some(record) = children.iter_mut().find(|r| r.child.uid().uuid() == uuid) else {
            return;
        };
        let failure = match event {
            Event::Exited(_) => {
                record.exited = true;
                let expected = record.child.cancel_requested();
                // A run_in_actor child that has not answered reports how it
                // ended through its answer.
                let answered_ok = match &record.result {
                    None => true,
                    Some(slot) => matches!(slot.outcome(), Some(Ok(()))),
                };
                let status = record.child.status();
                status
                    .filter(|_| !expected && answered_ok)
                    .map(|status| Error::ActorDied {
                        actor: record.child.uid().clone(),
                        status,
                    })
            }
            Event::Answered(_) => {
                record.answered = true;
                match record.result.as_ref().and_then(|slot| slot.outcome()) {
                    Some(Err(Error::Cancelled)) if record.child.cancel_requested() => None,
                    Some(Err(error)) => Some(error),
                    _ => None,
                }
            }
        };
        if let Some(error) = failure {
            if !record.reported {
                record.reported = true;
                tracing::debug!(child = %record.child.uid(), "child failed: {error}");
                errors.list.push(error);
                errors.failing = true;
            }
        }
    }

    fn cancel_all(&self) {
        for record in self.children().iter().filter(|r| !r.exited) {
            record
                .child
                .cancel_in_background(self.actor.children(), self.actor.child_grace());
        }
    }

    /// After a normal body exit: a run_in_actor child whose result is in is
    /// done.
    fn cancel_finished_runs(&self) {
        for record in self.children().iter() {
            if record.answered && !record.exited {
                record
                    .child
                    .cancel_in_background(self.actor.children(), self.actor.child_grace());
            }
        }
    }

    fn all_done(&self) -> bool {
        self.children()
            .iter()
            .all(|r| r.exited && (!r.main_sent || r.answered))
    }
}

/// A child's answer that says only that the channel went away becomes how
/// the child ended: cancelled (by this nursery) or dead. A child that lost
/// its channel cancels itself; one that has not exited within the default
/// grace is killed, so the answer always carries its exit status.
async fn settle<T>(child: &ChildHandle, answer: Result<T>) -> Result<T> {
    match answer {
        Err(Error::Disconnected { .. }) => {
            let status = match tokio::time::timeout(DEFAULT_GRACE, child.exited()).await {
                Ok(status) => status,
                Err(_) => {
                    // Killing it is ours to do, not what it failed of.
                    let asked = child.cancel_requested();
                    child.kill();
                    let status = child.exited().await;
                    if !asked {
                        return Err(Error::ActorDied {
                            actor: child.uid().clone(),
                            status,
                        });
                    }
                    status
                }
            };
            if child.cancel_requested() {
                Err(Error::Cancelled)
            } else {
                Err(Error::ActorDied {
                    actor: child.uid().clone(),
                    status,
                })
            }
        }
        answer => answer,
    }
}

/// Armed while the nursery runs: if its future is dropped, every live child
/// is cancelled in the background.
struct CancelOnDrop(Option<Arc<Inner>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            inner.cancel_all();
        }
    }
}
