//! Actor nurseries: structured concurrency across processes.
//!
//! [`open_nursery`] runs a body that spawns child actors through an
//! [`ActorNursery`], and returns only when every child process has
//! exited (a forked child may be a zombie for a moment more, until its fork
//! server reaps it; the actor itself never ends before every child of its
//! is reaped). It supervises one-cancels-all:
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
//! [`open_nursery_with`] opens a nursery with a [`Supervisor`] instead:
//! a failed child is restarted (with those its strategy takes down with
//! it) as a new process under the same uid, and only a child that is not
//! to be restarted, or a supervisor that has given up, fails the nursery
//! as above. The policy is in `supervisor`; how a child is started (and
//! started again) in `launch`; the handle that follows a child across its
//! processes in the crate's `lineage`.
//!
//! Supervision runs inside the `open_nursery` future, fed by events from
//! small tasks: one per child waiting for its exit, one per `run_in_actor`
//! child waiting for its answer. Dropping the future hands every live child
//! to a background cancel (tracked by the actor, which waits for it before
//! it exits).

mod builder;
mod launch;
mod supervisor;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use builder::{Daemon, RunIn, RunTarget, SpawnBuilder};
pub use supervisor::{Restart, Supervisor};

use crate::actor::Actor;
use crate::budget::DEFAULT_GRACE;
use crate::children::ChildHandle;
use crate::error::{Error, Result};
use crate::lineage::Lineage;
use crate::portal::ResultSlot;
use crate::stream::RawStream;
use launch::{MainCall, Recipe};
use supervisor::{End, Supervising, Takes, Verdict};

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
    supervise(None, body).await
}

/// Opens a nursery whose failed children are restarted by `supervisor`,
/// runs `body` with it, and returns once every actor it spawned is gone.
///
/// Portals from its spawns follow their child across restarts: the
/// restarted process keeps the child's [`ActorUid`](crate::ActorUid),
/// calls made while it restarts wait for it, calls in flight when it
/// failed fail with an error naming it, and `find_actor` finds the new
/// process. A `run_in_actor` child that restarts runs its call again, and
/// `result()` gives the last run's outcome. `n.cancel()` stops every
/// child, restarting none.
///
/// When the supervisor gives up (more restarts than its
/// [`max_restarts`](Supervisor::max_restarts) allows), it cancels every
/// child, the body is cancelled at its next await, and this returns
/// [`Error::RestartsExhausted`] with the last failure. In an actor other
/// than the root, that failure also ends the actor (with a non-zero exit
/// status once it has answered its calls), so that its own parent's
/// supervisor, or nursery, handles it in turn.
///
/// ```
/// use std::time::Duration;
///
/// #[tractor::rpc]
/// async fn work(n: u64) -> u64 {
///     n * n
/// }
///
/// # async fn example() -> tractor::Result<()> {
/// let supervisor = tractor::Supervisor::one_for_one().max_restarts(3, Duration::from_secs(5));
/// let squared = tractor::open_nursery_with(supervisor, async |n: &tractor::ActorNursery| {
///     let worker = n.start_actor("worker").enable_modules([module_path!()]).await?;
///     let squared = worker.run(work::call(7)).await?;
///     n.cancel().await?;
///     Ok(squared)
/// })
/// .await?;
/// assert_eq!(squared, 49);
/// # Ok(())
/// # }
/// ```
pub async fn open_nursery_with<X, F>(supervisor: Supervisor, body: F) -> Result<X>
where
    F: AsyncFnOnce(&ActorNursery) -> Result<X>,
{
    let outcome = supervise(Some(supervisor), body).await;
    if let Err(error @ Error::RestartsExhausted { .. }) = &outcome {
        Actor::current()?.escalate(error);
    }
    outcome
}

async fn supervise<X, F>(supervisor: Option<Supervisor>, body: F) -> Result<X>
where
    F: AsyncFnOnce(&ActorNursery) -> Result<X>,
{
    let actor = Actor::current()?;
    let (events, inbox) = mpsc::unbounded_channel();
    let nursery = ActorNursery {
        inner: Arc::new(Inner {
            actor,
            children: Mutex::default(),
            supervisor: supervisor.map(|policy| Mutex::new(Supervising::new(policy))),
            events,
        }),
    };
    let mut guard = Guard {
        inner: Some(nursery.inner.clone()),
        inbox,
    };
    let mut errors = Errors::default();

    // Phase 1: the body runs while children report.
    let outcome = {
        let body = body(&nursery);
        tokio::pin!(body);
        loop {
            tokio::select! {
                biased;
                outcome = &mut body => break Some(outcome),
                Some(event) = guard.inbox.recv() => {
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
        let Some(event) = guard.inbox.recv().await else {
            break;
        };
        nursery.inner.handle(event, &mut errors);
        if errors.failing && !cancelling {
            cancelling = true;
            nursery.inner.cancel_all();
        }
    }
    guard.inner = None;

    let mut errors = errors.list;
    match outcome {
        Some(Ok(value)) if errors.is_empty() => return Ok(value),
        Some(Err(error)) => {
            let self_inflicted = error.is_cancelled() && !errors.is_empty();
            // The body's call into a child whose end is reported already
            // is that same failure, seen from the body.
            let echoed = matches!(&error, Error::Disconnected { actor }
                if errors.iter().any(|reported| ends(reported, actor)));
            if !self_inflicted && !echoed && !errors.contains(&error) {
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

/// Whether `error` reports the end of child `actor`.
fn ends(error: &Error, actor: &crate::ActorUid) -> bool {
    match error {
        Error::ActorDied { actor: died, .. } | Error::RestartsExhausted { actor: died, .. } => {
            died == actor
        }
        _ => false,
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
    /// In start order.
    children: Mutex<Vec<Record>>,
    /// `None` for a plain, one-cancels-all nursery.
    supervisor: Option<Mutex<Supervising>>,
    events: mpsc::UnboundedSender<Event>,
}

/// A child as the nursery tracks it, across its incarnations.
struct Record {
    /// The current (or last) process.
    child: Arc<ChildHandle>,
    /// Counts the child's processes; events of an earlier one are stale.
    generation: u64,
    recipe: Arc<Recipe>,
    restart: Restart,
    /// Under a supervisor: what the child's portal follows.
    lineage: Option<Arc<Lineage>>,
    /// `run_in_actor` children's answer.
    result: Option<Arc<ResultSlot>>,
    /// The main call went out, so an answer (or failure) will come.
    main_sent: bool,
    exited: bool,
    answered: bool,
    /// An error was already reported for this child.
    reported: bool,
    /// A restart is under way: the nursery waits for it.
    restarting: bool,
    /// How often the child was restarted.
    restarts: u32,
}

pub(crate) enum Event {
    Exited {
        uuid: Uuid,
        generation: u64,
    },
    Answered {
        uuid: Uuid,
        generation: u64,
        answer: Answer,
    },
    /// A restart ended: the new process serves (and runs its main call),
    /// or it could not be started, or the child was retired meanwhile.
    Restarted {
        uuid: Uuid,
        outcome: Result<()>,
    },
}

/// How a `run_in_actor` child's main call ended.
pub(crate) enum Answer {
    Value(Result<Bytes>),
    /// A stream call; its stream already waits in the result slot.
    Stream(Result<()>),
}

impl Answer {
    fn outcome(&self) -> Result<()> {
        match self {
            Answer::Value(answer) => answer.as_ref().map(|_| ()).map_err(Clone::clone),
            Answer::Stream(outcome) => outcome.clone(),
        }
    }

    fn deliver(self, slot: &ResultSlot) {
        match self {
            Answer::Value(answer) => slot.fill(answer),
            Answer::Stream(outcome) => slot.finish(outcome),
        }
    }
}

#[derive(Default)]
struct Errors {
    list: Vec<Error>,
    failing: bool,
}

impl Errors {
    fn report(&mut self, error: Error) {
        self.list.push(error);
        self.failing = true;
    }
}

impl Record {
    fn uuid(&self) -> Uuid {
        self.child.uid().uuid()
    }

    fn is_retired(&self) -> bool {
        self.lineage.as_ref().is_some_and(|l| l.is_retired())
    }

    /// No restart for this child any more.
    fn retire(&self) {
        if let Some(lineage) = &self.lineage {
            lineage.retire();
        }
    }

    /// The child is down for good: calls through its portal fail.
    fn end(&self) {
        if let Some(lineage) = &self.lineage {
            lineage.end();
        }
    }

    /// Reports the child's failure, once.
    fn fail(&mut self, error: Error, errors: &mut Errors) {
        if !self.reported {
            self.reported = true;
            tracing::debug!(child = %self.child.uid(), "child failed: {error}");
            errors.report(error);
        }
    }

    /// Still doing its part: a live daemon, or a `run_in_actor` child
    /// that has not answered.
    fn is_running(&self) -> bool {
        !self.exited && (self.recipe.main.is_none() || !self.answered)
    }
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
    /// cancelled children are not reported as errors, and under a
    /// supervisor none of them is restarted (a restart under way stops).
    pub async fn cancel(&self) -> Result<()> {
        let children: Vec<_> = {
            let records = self.inner.children();
            records.iter().for_each(Record::retire);
            records
                .iter()
                .filter(|record| !record.exited)
                .map(|record| record.child.clone())
                .collect()
        };
        futures::future::join_all(children.iter().map(|child| async move {
            child.cancel(DEFAULT_GRACE).await;
            child.exited().await;
        }))
        .await;
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

    fn is_supervised(&self) -> bool {
        self.supervisor.is_some()
    }

    /// Starts supervising a freshly started child; under a supervisor,
    /// returns the lineage its portal follows.
    fn adopt(
        &self,
        child: Arc<ChildHandle>,
        recipe: Arc<Recipe>,
        restart: Restart,
        result: Option<Arc<ResultSlot>>,
    ) -> Option<Arc<Lineage>> {
        let lineage = self
            .is_supervised()
            .then(|| Arc::new(Lineage::new(child.uid().clone())));
        self.watch_exit(&child, 0);
        self.children().push(Record {
            child,
            generation: 0,
            recipe,
            restart,
            lineage: lineage.clone(),
            result,
            main_sent: false,
            exited: false,
            answered: false,
            reported: false,
            restarting: false,
            restarts: 0,
        });
        lineage
    }

    fn watch_exit(&self, child: &Arc<ChildHandle>, generation: u64) {
        let events = self.events.clone();
        let uuid = child.uid().uuid();
        let child = child.clone();
        tokio::spawn(async move {
            // The end of a child we asked to go needs no exit status (see
            // `exited`): its exit is enough, without waiting for its reap.
            child.gone().await;
            if !child.cancel_requested() {
                child.exited().await;
            }
            let _ = events.send(Event::Exited { uuid, generation });
        });
    }

    /// A restart's new process exists: it is the child from now on. A
    /// child retired meanwhile is killed at once instead.
    fn reincarnate(&self, child: &Arc<ChildHandle>) -> Option<u64> {
        let mut children = self.children();
        let record = children
            .iter_mut()
            .find(|r| r.uuid() == child.uid().uuid())?;
        if record.is_retired() {
            child.kill();
        }
        record.child = child.clone();
        record.generation += 1;
        record.exited = false;
        record.answered = false;
        record.main_sent = false;
        record.reported = false;
        if let Some(slot) = &record.result {
            slot.rerun();
        }
        self.watch_exit(child, record.generation);
        Some(record.generation)
    }

    fn mark_main_sent(&self, child: &ChildHandle, generation: u64) {
        let uuid = child.uid().uuid();
        if let Some(record) = self
            .children()
            .iter_mut()
            .find(|r| r.uuid() == uuid && r.generation == generation)
        {
            record.main_sent = true;
        }
    }

    /// Sends the main call of a `run_in_actor` child (incarnation
    /// `generation`), unless its spawn sent it over the child's link
    /// already (see `launch`); its answer goes to the nursery, which delivers it to
    /// `slot` unless it restarts the child instead. A stream call's stream
    /// waits in `slot` for the body meanwhile.
    async fn run_main(
        &self,
        child: &Arc<ChildHandle>,
        generation: u64,
        main: &MainCall,
        slot: Arc<ResultSlot>,
    ) {
        let uuid = child.uid().uuid();
        let events = self.events.clone();
        let held = slot.clone();
        let report = move |answer: Answer| {
            // A nursery that is gone cannot restart anything: the answer
            // is final.
            if let Err(mpsc::error::SendError(Event::Answered { answer, .. })) =
                events.send(Event::Answered {
                    uuid,
                    generation,
                    answer,
                })
            {
                answer.deliver(&slot);
            }
        };
        let not_connected = || Error::Protocol("the child is not connected".into());
        match main.stream {
            None => {
                // Sent over the child's link with its spec, if it has one.
                let (pending, deadline) = match child.channel() {
                    Some(channel) => match channel.take_main_call() {
                        Some((pending, deadline)) => (Ok(pending), deadline),
                        None => {
                            let deadline = main.deadline();
                            let pending = channel.call(&main.func, &main.args, deadline).await;
                            (pending, deadline)
                        }
                    },
                    None => (Err(not_connected()), None),
                };
                self.mark_main_sent(child, generation);
                let child = child.clone();
                self.actor.tasks().spawn(async move {
                    let answer = match pending {
                        Ok(pending) => pending.within(deadline).await,
                        Err(err) => Err(err),
                    };
                    report(Answer::Value(settle(&child, answer).await));
                });
            }
            Some(window) => {
                let (on_end, ended) = tokio::sync::oneshot::channel();
                let opened = match child.channel() {
                    Some(channel) => {
                        let deadline = main.deadline();
                        RawStream::open(channel, &main.func, &main.args, window, deadline).await
                    }
                    None => Err(not_connected()),
                };
                let opened = opened.map(|mut stream| {
                    stream.on_end(on_end);
                    held.hold(stream);
                });
                self.mark_main_sent(child, generation);
                let child = child.clone();
                self.actor.tasks().spawn(async move {
                    let outcome = match opened {
                        // A stream dropped before its end was stopped by
                        // its consumer: done, not failed.
                        Ok(()) => tokio::select! {
                            ended = ended => ended.unwrap_or(Ok(())),
                            _ = child.exited() => Err(Error::Disconnected { actor: child.uid().clone() }),
                        },
                        Err(err) => Err(err),
                    };
                    report(Answer::Stream(settle(&child, outcome).await));
                });
            }
        }
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

    fn handle(self: &Arc<Self>, event: Event, errors: &mut Errors) {
        let mut children = self.children();
        match event {
            Event::Exited { uuid, generation } => {
                let Some(at) = children
                    .iter()
                    .position(|r| r.uuid() == uuid && r.generation == generation)
                else {
                    return;
                };
                // During a restart, the restart reports how it went.
                if !children[at].restarting {
                    self.exited(&mut children, at, errors);
                }
            }
            Event::Answered {
                uuid,
                generation,
                answer,
            } => {
                let Some(at) = children
                    .iter()
                    .position(|r| r.uuid() == uuid && r.generation == generation)
                else {
                    return;
                };
                let record = &mut children[at];
                if record.restarting {
                    // Its run is being repeated anyway.
                    return;
                }
                record.answered = true;
                let failure = match answer.outcome() {
                    Err(Error::Cancelled) if record.child.cancel_requested() => None,
                    Err(error) => Some(error),
                    Ok(()) => None,
                };
                let restarts = failure.is_some()
                    && self.is_supervised()
                    && !record.is_retired()
                    && record.restart.restarts_after(End::Failed);
                match failure {
                    Some(error) if restarts => {
                        // The answer of a run that is to be repeated is
                        // nobody's: result() waits for the next run's.
                        drop(answer);
                        self.ended(&mut children, at, End::Failed, error, errors);
                    }
                    failure => {
                        if let Some(slot) = &record.result {
                            answer.deliver(slot);
                        }
                        if let Some(error) = failure {
                            self.ended(&mut children, at, End::Failed, error, errors);
                        }
                    }
                }
            }
            Event::Restarted { uuid, outcome } => {
                let Some(at) = children.iter().position(|r| r.uuid() == uuid) else {
                    return;
                };
                let record = &mut children[at];
                record.restarting = false;
                // An exit that came during the restart was not looked at.
                let exited_meanwhile = record.child.has_exited();
                if outcome.is_err() && exited_meanwhile {
                    record.exited = true;
                }
                match outcome {
                    // Its exit counts now.
                    Ok(()) if exited_meanwhile => self.exited(&mut children, at, errors),
                    Ok(()) => {}
                    Err(_) if record.is_retired() => {
                        record.end();
                        // A run that will not come again ends as cancelled.
                        if let Some(slot) = &record.result {
                            slot.fail_if_pending(Error::Cancelled);
                        }
                        record.answered = true;
                    }
                    Err(error) => self.ended(&mut children, at, End::Failed, error, errors),
                }
            }
        }
    }

    /// Child `at`'s process has exited.
    fn exited(self: &Arc<Self>, children: &mut [Record], at: usize, errors: &mut Errors) {
        let record = &mut children[at];
        if record.exited {
            return;
        }
        record.exited = true;
        if record.child.cancel_requested() {
            record.end();
            return;
        }
        // A run_in_actor child whose call is out reports how it ended
        // through its answer.
        if record.main_sent && !record.answered {
            return;
        }
        let Some(status) = record.child.status() else {
            return;
        };
        let end = if status.success() {
            End::Clean
        } else {
            End::Failed
        };
        let error = Error::ActorDied {
            actor: record.child.uid().clone(),
            status,
        };
        self.ended(children, at, end, error, errors);
    }

    /// Child `at` ended unasked (`end`, described by `error`): restart it
    /// (with whatever the strategy takes down with it), give up, or, where
    /// nothing restarts it, report a failure as a plain nursery does.
    fn ended(
        self: &Arc<Self>,
        children: &mut [Record],
        at: usize,
        end: End,
        error: Error,
        errors: &mut Errors,
    ) {
        let record = &mut children[at];
        let Some(supervisor) = &self.supervisor else {
            // One-cancels-all: any unasked end is a failure.
            record.fail(error, errors);
            return;
        };
        if record.is_retired() || !record.restart.restarts_after(end) {
            record.end();
            if end == End::Failed {
                record.fail(error, errors);
            }
            return;
        }
        let mut supervisor = supervisor.lock().unwrap_or_else(|p| p.into_inner());
        let backoff = match supervisor.decide(tokio::time::Instant::now()) {
            Verdict::Restart { backoff } => backoff,
            Verdict::GiveUp => {
                record.end();
                record.reported = true;
                tracing::error!(
                    child = %record.child.uid(),
                    restarts = record.restarts,
                    "too many restarts: the supervisor gives up ({error})"
                );
                let exhausted = Error::RestartsExhausted {
                    actor: record.child.uid().clone(),
                    restarts: record.restarts,
                    last: Box::new(error),
                };
                // A pending result() of that child hears it first.
                if let Some(slot) = &record.result {
                    slot.fail_if_pending(exhausted.clone());
                }
                errors.report(exhausted);
                return;
            }
        };
        record.restarts += 1;
        tracing::warn!(
            child = %record.child.uid(),
            status = ?record.child.status(),
            restart = record.restarts,
            ?backoff,
            "restarting: {error}"
        );
        // Those the failure takes down with it, in start order.
        let failed = record.child.uid().clone();
        let takes = supervisor.takes();
        drop(supervisor);
        let mut members = Vec::new();
        for (i, other) in children.iter_mut().enumerate() {
            let taken = i == at
                || match takes {
                    Takes::Itself => false,
                    Takes::All => other.is_running() && !other.restarting,
                    Takes::Later => i > at && other.is_running() && !other.restarting,
                };
            if !taken {
                continue;
            }
            if i != at && !other.restart.restarts_after(End::Failed) {
                // Taken down but never restarted (Temporary).
                other.retire();
                other
                    .child
                    .cancel_in_background(self.actor.children(), self.actor.child_grace());
                continue;
            }
            if i != at {
                other.restarts += 1;
                tracing::warn!(
                    child = %other.child.uid(),
                    restart = other.restarts,
                    "restarting with {failed}"
                );
            }
            other.restarting = true;
            if let Some(lineage) = &other.lineage {
                lineage.restarting();
            }
            members.push(Member {
                old: other.child.clone(),
                recipe: other.recipe.clone(),
                lineage: other.lineage.clone(),
                result: other.result.clone(),
            });
        }
        let inner = self.clone();
        self.actor
            .tasks()
            .spawn(async move { inner.restart(members, backoff).await });
    }

    /// Takes `members` down (gracefully where they still run), waits
    /// `backoff`, and starts each again in order, reporting each restart's
    /// end to the nursery.
    async fn restart(self: Arc<Self>, members: Vec<Member>, backoff: std::time::Duration) {
        let grace = self.actor.child_grace();
        futures::future::join_all(members.iter().map(|member| async move {
            tokio::select! {
                _ = member.old.cancel(grace) => {}
                // Retired: someone else takes it down.
                () = retired(&member.lineage) => {}
            }
            member.old.exited().await;
        }))
        .await;
        // Cut short once every member is retired: nothing is to follow.
        // No backoff means none: the runtime's timer rounds even a zero
        // sleep up to its next millisecond tick, which was most of a
        // restart (SIGKILL to first answer with the fork server: 1.81-1.86
        // -> 0.59-0.63 ms).
        if !backoff.is_zero() {
            let all_retired =
                futures::future::join_all(members.iter().map(|member| retired(&member.lineage)));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = all_retired => {}
            }
        }
        for member in members {
            let uuid = member.old.uid().uuid();
            let relaunched = tokio::select! {
                relaunched = self.relaunch(&member) => relaunched,
                () = retired(&member.lineage) => Err(Error::Cancelled),
            };
            let (outcome, main) = match relaunched {
                Ok(up) => (Ok(()), Some(up)),
                Err(err) => (Err(err), None),
            };
            // Reported before the main call goes out, so that its answer
            // reaches the nursery after the restart has.
            let _ = self.events.send(Event::Restarted { uuid, outcome });
            if let (Some((child, generation)), Some(main), Some(slot)) =
                (main, &member.recipe.main, &member.result)
            {
                self.run_main(&child, generation, main, slot.clone()).await;
            }
        }
    }

    /// Starts a member's new process and waits for it to connect back;
    /// returns it with its generation.
    async fn relaunch(&self, member: &Member) -> Result<(Arc<ChildHandle>, u64)> {
        let starting = launch::start(self, &member.recipe).await?;
        let child = starting.child.clone();
        let Some(generation) = self.reincarnate(&child) else {
            child.kill();
            return Err(Error::Cancelled);
        };
        let channel = launch::connected(&member.recipe, starting).await?;
        if let Some(lineage) = &member.lineage {
            lineage.up(channel);
        }
        Ok((child, generation))
    }

    fn cancel_all(&self) {
        for record in self.children().iter() {
            record.retire();
            if !record.exited {
                record
                    .child
                    .cancel_in_background(self.actor.children(), self.actor.child_grace());
            }
        }
    }

    /// After a normal body exit: a run_in_actor child whose result is in is
    /// done.
    fn cancel_finished_runs(&self) {
        for record in self.children().iter() {
            if record.answered && !record.exited && !record.restarting {
                record
                    .child
                    .cancel_in_background(self.actor.children(), self.actor.child_grace());
            }
        }
    }

    fn all_done(&self) -> bool {
        self.children()
            .iter()
            .all(|r| !r.restarting && r.exited && (!r.main_sent || r.answered))
    }
}

/// A child going round again in a restart.
struct Member {
    old: Arc<ChildHandle>,
    recipe: Arc<Recipe>,
    lineage: Option<Arc<Lineage>>,
    result: Option<Arc<ResultSlot>>,
}

async fn retired(lineage: &Option<Arc<Lineage>>) {
    match lineage {
        Some(lineage) => lineage.retired().await,
        None => std::future::pending().await,
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
/// is cancelled in the background, and answers already in are delivered.
struct Guard {
    inner: Option<Arc<Inner>>,
    inbox: mpsc::UnboundedReceiver<Event>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.cancel_all();
            self.inbox.close();
            let mut ignored = Errors::default();
            while let Ok(event) = self.inbox.try_recv() {
                inner.handle(event, &mut ignored);
            }
            // Nobody will move a lineage on: a portal kept past the drop
            // fails its calls at once instead of waiting for a restart.
            inner.children().iter().for_each(Record::end);
        }
    }
}
