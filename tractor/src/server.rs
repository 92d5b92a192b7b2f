//! The server: runs the calls other actors make into this one, and
//! answers cancel requests once the actor has wound down.
//!
//! Each call arriving on a channel is looked up in the link-time table
//! (`registry`), checked against the modules this actor serves, and run as
//! a task of its own on the actor's tracker, with a cancellation token
//! that is a child of the actor's: cancelling the actor, the caller
//! cancelling the call, or the channel closing drops the call's future.
//! Its outcome goes back on the channel it came from.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::{Error, RemoteActorError};
use crate::invoke::Outcome;
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
        let stream = match kind {
            CallKind::Unary => None,
            CallKind::Stream { window } => Some(RawContext {
                channel: channel.clone(),
                id,
                credit: Arc::new(Credit::new(window)),
            }),
        };
        let served = Served {
            token: token.clone(),
            credit: stream.as_ref().map(|stream| stream.credit.clone()),
        };
        if !channel.serve(id, served)? {
            return Ok(());
        }
        let resolved = self.resolve(func);
        let me = self.me.clone();
        let actor_cancelled = self.cancel.clone();
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
                        tokio::select! {
                            biased;
                            () = token.cancelled() => None,
                            outcome = invocation.run(entry.name(), stream) => {
                                Some(Ok((entry.name(), outcome)))
                            }
                        }
                    }
                    Err(refusal) => Some(Err(refusal)),
                };
                channel.served(id);
                match outcome {
                    Some(Ok((name, Outcome::Value(value)))) => {
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
                    Some(Ok((_, Outcome::Ended))) => channel.send_stop(id),
                    Some(Ok((_, Outcome::Failed(failure)))) => {
                        channel.send_error(id, &failure.to_wire(&me)).await
                    }
                    Some(Err(refusal)) => channel.send_error(id, &refusal).await,
                    None if actor_cancelled.is_cancelled() => {
                        channel.send_error(id, &WireError::Cancelled).await
                    }
                    // The caller gave up: nobody awaits an answer.
                    None => {}
                }
            }
            .instrument(span),
        );
        Ok(())
    }

    /// The entry for `func`, or the error that answers the call instead.
    fn resolve(&self, func: &str) -> Result<&'static RpcEntry, WireError> {
        let me = &self.me;
        let Some(entry) = registry::lookup(func) else {
            let message = format!(
                "actor {me} has no remote function `{func}`: is the crate that defines it \
                 linked into this executable?"
            );
            return Err(foreign("NoSuchFunction", message, me));
        };
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
