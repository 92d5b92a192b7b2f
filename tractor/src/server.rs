//! The server: runs the calls other actors make into this one, and
//! answers cancel requests once the actor has wound down.
//!
//! Each call arriving on a channel is looked up in the link-time table
//! (`registry`), checked against the modules this actor serves, and run as
//! a task of its own on the actor's tracker, with a cancellation token
//! that is a child of the actor's: cancelling the actor, the caller
//! cancelling the call, or the channel closing drops the call's future.
//! A call with a deadline is served with it in force (see `deadline`) and
//! dropped when it passes. Its outcome goes back on the channel it came
//! from; a call that was cancelled or ran out of time answers so once its
//! future is gone, which is the caller's acknowledgement.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::RawDialog;
use crate::deadline;
use crate::error::{Error, RemoteActorError};
use crate::invoke::Opened;
use crate::invoke::Outcome;
use crate::ipc::channel::{Direction, StreamSink};
use crate::ipc::limits::Admission;
use crate::ipc::msg::WireError;
use crate::ipc::{CallKind, Channel, Credit, Incoming, Served};
use crate::registry::{self, RpcEntry};
use crate::stream::RawContext;
use crate::uid::ActorUid;

pub(crate) struct Server {
    me: ActorUid,
    /// Modules whose remote functions this actor serves.
    enabled: HashSet<String>,
    /// The actor's own token: cancelled when the actor is.
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Cancel requests to answer once the actor has wound down (each
    /// holding its admission, so a peer cannot pile them up).
    acks: Mutex<Vec<(Channel, u64, Admission)>>,
}

impl Server {
    pub(crate) fn new(
        me: ActorUid,
        enabled: HashSet<String>,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Server {
            me,
            enabled,
            cancel,
            tasks,
            acks: Mutex::default(),
        }
    }

    /// Whether this actor serves remote functions of `module` (tractor's
    /// own are always served).
    fn exposes(&self, module: &str) -> bool {
        self.enabled.contains(module) || module == "tractor" || module.starts_with("tractor::")
    }

    /// Runs the peer's call on `channel`, as a task that holds the call's
    /// admission until it has answered. An `Err` is a protocol violation
    /// (the call's id is in use), which closes the channel.
    pub(crate) fn serve(&self, channel: &Channel, call: Incoming<'_>) -> Result<(), Error> {
        let Incoming {
            id,
            func,
            kind,
            args,
            admission,
        } = call;
        let token = self.cancel.child_token();
        let mut served = Served {
            token: token.clone(),
            credit: None,
            inbox: None,
        };
        let mut deadline = None;
        let opened = match kind {
            CallKind::Unary { timeout } => {
                deadline = timeout.map(|timeout| Instant::now() + timeout);
                Opened::Unary
            }
            CallKind::Stream { window } => {
                let credit = Arc::new(Credit::new(window));
                served.credit = Some(credit.clone());
                Opened::Stream(RawContext {
                    channel: channel.clone(),
                    id,
                    credit,
                    sending: Arc::default(),
                })
            }
            CallKind::Context { window } => {
                // What we send: as much as the caller lets us. What we
                // buffer for it: what it asked, within our bounds; granted
                // when the function starts.
                let credit = Arc::new(Credit::new(window));
                let own = window.within_bounds();
                let (sink, inbox) = StreamSink::new(own);
                served.credit = Some(credit.clone());
                served.inbox = Some(sink);
                Opened::Context(RawDialog::new(channel.clone(), id, own, credit, inbox))
            }
        };
        if !channel.serve(id, served)? {
            return Ok(());
        }
        let (func, signature) = crate::call::split_wire(func);
        let resolved = self.resolve(func, signature);
        let me = self.me.clone();
        let channel = channel.clone();
        let span = tracing::info_span!("rpc", actor = %me, func, id);
        self.tasks.spawn(
            async move {
                let _admission = admission;
                let outcome = match resolved {
                    Ok(entry) => {
                        // Decoded: the frame's bytes can go.
                        let invocation = entry.invoke(&args);
                        drop(args);
                        let running =
                            deadline::serve(deadline, invocation.run(entry.name(), opened));
                        let expired = async {
                            match deadline {
                                Some(deadline) => tokio::time::sleep_until(deadline).await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            biased;
                            () = token.cancelled() => Err(WireError::Cancelled),
                            () = expired => Err(WireError::Timeout),
                            outcome = running => Ok((entry.name(), outcome)),
                        }
                    }
                    Err(refusal) => Err(refusal),
                };
                channel.served(id);
                match outcome {
                    Ok((name, Outcome::Value(value))) => {
                        match channel.send_return(id, &value).await {
                            Ok(()) | Err(Error::Disconnected { .. }) => {}
                            // Whatever kept the answer from leaving, the
                            // caller hears of it instead of waiting for it.
                            Err(err) => {
                                let message =
                                    format!("the answer of `{name}` could not be sent: {err}");
                                tracing::warn!("{message}");
                                channel
                                    .send_error(id, &foreign(err.kind_name(), message, &me))
                                    .await
                            }
                        }
                    }
                    Ok((_, Outcome::Ended)) => channel.send_end(Direction::ToCaller, id, false),
                    Ok((_, Outcome::Failed(failure))) => {
                        channel.send_error(id, &failure.to_wire(&me)).await
                    }
                    // A refusal, or the acknowledgement of a cancel (the
                    // caller's, or this actor's own) or of the deadline.
                    Err(answer) => channel.send_error(id, &answer).await,
                }
            }
            .instrument(span),
        );
        Ok(())
    }

    /// The entry for `func`, called with `signature` (if the caller sent
    /// one), or the error that answers the call instead.
    fn resolve(&self, func: &str, signature: Option<&str>) -> Result<&'static RpcEntry, WireError> {
        let me = &self.me;
        let Some(entry) = registry::lookup(func) else {
            let message = format!(
                "actor {me} has no remote function `{func}`: is the crate that defines it \
                 linked into this executable?"
            );
            return Err(foreign("NoSuchFunction", message, me));
        };
        if let (Some(theirs), Some(ours)) = (signature, entry.signature())
            && theirs != ours
        {
            let message = format!(
                "`{func}` differs between the caller's build and actor {me}'s: the caller's is \
                 `{theirs}`, this one's `{ours}`; run builds of the same source on every host"
            );
            return Err(foreign("SignatureMismatch", message, me));
        }
        if !self.exposes(entry.module()) {
            let message = format!(
                "`{func}` is not exposed by actor {me}: its module `{module}` is not enabled; \
                 spawn the actor with .enable_modules([\"{module}\"])",
                module = entry.module()
            );
            return Err(foreign("ModuleNotExposed", message, me));
        }
        if self.cancel.is_cancelled() {
            return Err(WireError::Cancelled);
        }
        Ok(entry)
    }

    /// Answers `id` on `channel` once the actor has wound down.
    pub(crate) fn answer_when_done(&self, channel: &Channel, id: u64, admission: Admission) {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((channel.clone(), id, admission));
    }

    /// Answers every cancel request: the actor is done.
    pub(crate) fn answer_cancel_requests(&self) {
        let acks = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner()));
        for (channel, id, _) in &acks {
            channel.acknowledge(*id);
        }
    }
}

/// An error of tractor's own (not raised by a remote function), raised in
/// actor `me`.
pub(crate) fn foreign(type_name: &str, message: String, me: &ActorUid) -> WireError {
    WireError::Remote(RemoteActorError::new(type_name, message, me.clone()))
}
