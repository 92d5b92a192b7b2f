//! Errors, local and remote.
//!
//! An error raised in another actor travels back as a [`RemoteActorError`]:
//! the original type name and message, where it was raised, and every actor
//! that relayed it on the way. When an actor returns a remote error it
//! received (say with `?`), it is relayed as itself, with that actor added
//! to its traceback, never wrapped; several errors that ended one nursery
//! travel as [`Error::Multi`].

use std::fmt;
use std::process::ExitStatus;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::uid::ActorUid;

mod backtrace;

pub(crate) use self::backtrace::Frames;

/// `Result` with [`tractor::Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tractor.
///
/// `Display` and `Debug` show, for every remote error nested inside, the
/// actor that raised it and its original message, so an `Error` returned from
/// `main` explains itself. Each variant either shows its cause in its own
/// message or returns it from `source()`, never both, so chain reporters
/// (`anyhow`'s `{:#}`, `eyre`) print every cause once.
#[derive(Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error raised in another actor.
    #[error(transparent)]
    Remote(RemoteActorError),
    /// Several actors (or the nursery body and actors) failed together.
    #[error("{}", DisplayMulti(.0))]
    Multi(Vec<Error>),
    /// This scope (or the actor serving the call) was cancelled from outside.
    #[error("cancelled")]
    Cancelled,
    /// A call got no reply within its timeout ([`Call::timeout`](crate::Call::timeout),
    /// or the deadline of the call being served); the remote task was
    /// cancelled.
    #[error(
        "no answer within the call's timeout; the remote task was cancelled (give the call a \
         longer .timeout(..) if it needs more time)"
    )]
    Timeout,
    /// The other side of a context's stream has dropped it: it reads
    /// nothing more, so nothing more can be sent.
    #[error("actor {actor} has closed its side of the stream: it takes no more items")]
    StreamClosed {
        /// The actor on the other side.
        actor: ActorUid,
    },
    /// An API used out of order (a context's stream opened twice, say);
    /// the message says what to do instead.
    #[error("{0}")]
    Misuse(String),
    /// A child actor's process ended without being asked to.
    #[error("actor {actor} exited unexpectedly ({status})")]
    ActorDied {
        /// The actor that died.
        actor: ActorUid,
        /// How its process ended: `status.code()` for an exit,
        /// `std::os::unix::process::ExitStatusExt::signal` for a signal.
        status: ExitStatus,
    },
    /// A supervised nursery gave up: a child failed more often than the
    /// supervisor's [`max_restarts`](crate::Supervisor::max_restarts)
    /// allows. Every child was cancelled; `last` is the failure that
    /// exceeded the limit.
    #[error(
        "supervisor gave up on actor {actor} after {restarts} restart(s): {last} (raise \
         Supervisor::max_restarts, or fix what makes it fail)"
    )]
    RestartsExhausted {
        /// The child whose failure exceeded the restart intensity.
        actor: ActorUid,
        /// How many times that child had been restarted.
        restarts: u32,
        /// Its last failure.
        last: Box<Error>,
    },
    /// The channel to an actor closed while a call was in flight.
    #[error(
        "the channel to actor {actor} closed before it answered (the actor exited or the \
         connection broke)"
    )]
    Disconnected {
        /// The actor on the other end.
        actor: ActorUid,
    },
    /// An actor could not be reached: it has exited (or is exiting), or
    /// the connection to it failed.
    #[error("actor {actor} could not be reached: {reason}")]
    Unreachable {
        /// The actor that was dialed.
        actor: ActorUid,
        /// Why the connection failed.
        reason: String,
    },
    /// A child actor could not be started.
    #[error("could not spawn actor '{name}': {reason}")]
    Spawn {
        /// The name it was to have.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// `RunPortal::result` was called after an earlier call took the result.
    #[error("the result of actor {actor} was already taken by an earlier call to result()")]
    ResultTaken {
        /// The actor whose result was asked for twice.
        actor: ActorUid,
    },
    /// A value could not be encoded or decoded with postcard.
    #[error("could not encode or decode {what}: {reason}")]
    Codec {
        /// What was being encoded or decoded.
        what: String,
        /// The codec's complaint.
        reason: String,
    },
    /// A peer broke the wire protocol; its channel was closed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Called outside any actor (no `#[tractor::main]` / `#[tractor::test]`).
    #[error(
        "not running inside a tractor actor: start the program with #[tractor::main] (or the \
         test with #[tractor::test])"
    )]
    NotInActor,
    /// An I/O error.
    #[error(transparent)]
    Io(Arc<std::io::Error>),
    /// Any other error, made with [`Error::other`].
    #[error(transparent)]
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

/// The numbered list `Multi` shows.
struct DisplayMulti<'a>(&'a [Error]);

impl fmt::Display for DisplayMulti<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} errors:", self.0.len())?;
        for (i, error) in self.0.iter().enumerate() {
            let text = error.to_string().replace('\n', "\n    ");
            write!(f, "\n  {}) {text}", i + 1)?;
        }
        Ok(())
    }
}

impl Error {
    /// Wraps any error (or message) as a `tractor::Error`.
    ///
    /// ```
    /// let err = tractor::Error::other("the queue is full");
    /// assert_eq!(err.to_string(), "the queue is full");
    /// ```
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Other(Arc::from(error.into()))
    }

    /// The remote errors inside this error, depth first: itself if it is
    /// [`Error::Remote`], the leaves of an [`Error::Multi`].
    ///
    /// ```
    /// # fn check(err: tractor::Error) {
    /// for remote in err.remote_errors() {
    ///     println!("{} failed: {}", remote.actor().name(), remote.message());
    /// }
    /// # }
    /// ```
    pub fn remote_errors(&self) -> Vec<&RemoteActorError> {
        let mut found = Vec::new();
        self.collect_remote(&mut found);
        found
    }

    fn collect_remote<'a>(&'a self, found: &mut Vec<&'a RemoteActorError>) {
        match self {
            Error::Remote(remote) => found.push(remote),
            Error::Multi(errors) => errors.iter().for_each(|e| e.collect_remote(found)),
            _ => {}
        }
    }

    /// True for [`Error::Timeout`], also inside a `Multi`.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout => true,
            Error::Multi(errors) => errors.iter().any(Error::is_timeout),
            _ => false,
        }
    }

    /// True for [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// The name under which this (local) error travels to other actors.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Error::Remote(_) => "tractor::Error::Remote",
            Error::Multi(_) => "tractor::Error::Multi",
            Error::Cancelled => "tractor::Error::Cancelled",
            Error::Timeout => "tractor::Error::Timeout",
            Error::StreamClosed { .. } => "tractor::Error::StreamClosed",
            Error::Misuse(_) => "tractor::Error::Misuse",
            Error::ActorDied { .. } => "tractor::Error::ActorDied",
            Error::RestartsExhausted { .. } => "tractor::Error::RestartsExhausted",
            Error::Disconnected { .. } => "tractor::Error::Disconnected",
            Error::Unreachable { .. } => "tractor::Error::Unreachable",
            Error::Spawn { .. } => "tractor::Error::Spawn",
            Error::ResultTaken { .. } => "tractor::Error::ResultTaken",
            Error::Codec { .. } => "tractor::Error::Codec",
            Error::Protocol(_) => "tractor::Error::Protocol",
            Error::NotInActor => "tractor::Error::NotInActor",
            Error::Io(_) => "std::io::Error",
            Error::Other(_) => "tractor::Error::Other",
        }
    }

    pub(crate) fn codec(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Codec {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

impl PartialEq for Error {
    /// Structural equality; `Io` and `Other` compare by identity.
    fn eq(&self, other: &Self) -> bool {
        use Error::*;
        match (self, other) {
            (Remote(a), Remote(b)) => a == b,
            (Multi(a), Multi(b)) => a == b,
            (Cancelled, Cancelled) | (NotInActor, NotInActor) | (Timeout, Timeout) => true,
            (StreamClosed { actor: a }, StreamClosed { actor: b }) => a == b,
            (Misuse(a), Misuse(b)) => a == b,
            (
                ActorDied {
                    actor: a,
                    status: s,
                },
                ActorDied {
                    actor: b,
                    status: t,
                },
            ) => a == b && s == t,
            (
                RestartsExhausted {
                    actor: a,
                    restarts: r,
                    last: l,
                },
                RestartsExhausted {
                    actor: b,
                    restarts: s,
                    last: m,
                },
            ) => a == b && r == s && l == m,
            (Disconnected { actor: a }, Disconnected { actor: b })
            | (ResultTaken { actor: a }, ResultTaken { actor: b }) => a == b,
            (Spawn { name: a, reason: r }, Spawn { name: b, reason: s })
            | (Codec { what: a, reason: r }, Codec { what: b, reason: s }) => a == b && r == s,
            (
                Unreachable {
                    actor: a,
                    reason: r,
                },
                Unreachable {
                    actor: b,
                    reason: s,
                },
            ) => a == b && r == s,
            (Protocol(a), Protocol(b)) => a == b,
            (Io(a), Io(b)) => Arc::ptr_eq(a, b),
            (Other(a), Other(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Error {
    /// Like `Display`, with every remote error's full traceback, so that
    /// `main` returning an error prints where it came from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Remote(remote) => fmt::Debug::fmt(remote, f),
            Error::Multi(errors) => {
                write!(f, "{} errors:", errors.len())?;
                for (i, error) in errors.iter().enumerate() {
                    let text = format!("{error:?}").replace('\n', "\n    ");
                    write!(f, "\n  {}) {text}", i + 1)?;
                }
                Ok(())
            }
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io(Arc::new(err))
    }
}

impl From<RemoteActorError> for Error {
    fn from(err: RemoteActorError) -> Self {
        Error::Remote(err)
    }
}

/// An error raised in another actor, as it arrived here.
///
/// ```
/// # async fn example(portal: tractor::Portal, call: tractor::Call<u32>) {
/// match portal.run(call).await {
///     Err(tractor::Error::Remote(err)) => {
///         eprintln!("{} raised {}: {}", err.actor(), err.type_name(), err.message());
///         eprintln!("{}", err.traceback());
///     }
///     other => println!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RemoteActorError(Arc<Details>);

#[derive(Clone, Serialize, Deserialize)]
struct Details {
    type_name: String,
    message: String,
    actor: ActorUid,
    sources: Vec<String>,
    relays: Vec<ActorUid>,
    /// Where a panic happened: `file:line:col`.
    location: Option<String>,
    /// A panic's backtrace, when the raising actor ran with
    /// `RUST_BACKTRACE` set.
    frames: Option<Frames>,
    /// Derived from the fields when first asked for (symbolising the
    /// backtrace is what takes time), never sent.
    #[serde(skip)]
    traceback: OnceLock<String>,
}

impl PartialEq for Details {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.type_name,
            &self.message,
            &self.actor,
            &self.sources,
            &self.relays,
            &self.location,
            &self.frames,
        ) == (
            &other.type_name,
            &other.message,
            &other.actor,
            &other.sources,
            &other.relays,
            &other.location,
            &other.frames,
        )
    }
}

impl Eq for Details {}

impl RemoteActorError {
    pub(crate) fn new(
        type_name: impl Into<String>,
        message: impl Into<String>,
        actor: ActorUid,
    ) -> Self {
        RemoteActorError(Arc::new(Details {
            type_name: type_name.into(),
            message: message.into(),
            actor,
            sources: Vec::new(),
            relays: Vec::new(),
            location: None,
            frames: None,
            traceback: OnceLock::new(),
        }))
    }

    /// Changes the details (forgetting a traceback already rendered).
    fn edit(&mut self, change: impl FnOnce(&mut Details)) {
        let details = Arc::make_mut(&mut self.0);
        change(details);
        details.traceback = OnceLock::new();
    }

    pub(crate) fn with_sources(mut self, sources: Vec<String>) -> Self {
        self.edit(|details| details.sources = sources);
        self
    }

    /// A panic's place and, if captured, its backtrace.
    pub(crate) fn with_panic(mut self, location: Option<String>, frames: Option<Frames>) -> Self {
        self.edit(|details| {
            details.location = location;
            details.frames = frames;
        });
        self
    }

    /// The same error, passed on by `relay`.
    pub(crate) fn relayed_by(mut self, relay: &ActorUid) -> Self {
        if self.0.relays.last() != Some(relay) && &self.0.actor != relay {
            self.edit(|details| details.relays.push(relay.clone()));
        }
        self
    }

    /// The traceback, built from the fields (so a peer cannot make the two
    /// disagree).
    fn render(&self) -> String {
        let details = &self.0;
        let mut text = format!(
            "{}: {}\n  raised in actor {}",
            details.type_name, details.message, details.actor
        );
        if let Some(location) = &details.location {
            text.push_str(&format!(" at {location}"));
        }
        for source in &details.sources {
            text.push_str("\n  caused by: ");
            text.push_str(source);
        }
        for relay in &details.relays {
            text.push_str(&format!("\n  relayed by actor {relay}"));
        }
        if let Some(frames) = &details.frames {
            text.push('\n');
            text.push_str(&frames.render());
        }
        text
    }

    /// The error's type: `std::any::type_name` of the error type the remote
    /// function returned, `"panic"` for a panic, or one of tractor's own:
    /// `"ModuleNotExposed"`, `"NoSuchFunction"`, `"InvalidArguments"`.
    pub fn type_name(&self) -> &str {
        &self.0.type_name
    }

    /// The error's message (its `Display`) as it was in the raising actor.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The actor in which the error was raised.
    pub fn actor(&self) -> &ActorUid {
        &self.0.actor
    }

    /// The messages of the error's `source()` chain, outermost first (empty
    /// when the error type is not a `std::error::Error` or has no source).
    pub fn sources(&self) -> &[String] {
        &self.0.sources
    }

    /// The actors that passed the error on, in order, after the one that
    /// raised it.
    pub fn relays(&self) -> &[ActorUid] {
        &self.0.relays
    }

    /// Where the panic happened (`file:line:col` in the raising actor's
    /// source), for a `"panic"` error; `None` for other errors.
    pub fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }

    /// The whole story: the error, where it was raised, its causes, every
    /// actor that relayed it and, for a panic in an actor that ran with
    /// `RUST_BACKTRACE` set, the backtrace (symbolised here, on first use,
    /// when this program runs the same executable as that actor).
    pub fn traceback(&self) -> &str {
        self.0.traceback.get_or_init(|| self.render())
    }
}

impl fmt::Display for RemoteActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "actor '{}' raised {}: {}",
            self.0.actor.name(),
            self.0.type_name,
            self.0.message
        )
    }
}

impl fmt::Debug for RemoteActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteActorError: ")?;
        f.write_str(self.traceback())
    }
}

impl std::error::Error for RemoteActorError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// What chain reporters (`anyhow`'s `{:#}`) print: each error of the
    /// `source()` chain, joined.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(source) = next {
            text.push_str(": ");
            text.push_str(&source.to_string());
            next = source.source();
        }
        text
    }

    #[test]
    fn chains_print_each_cause_once() {
        let io = Error::from(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&io), "disk on fire");
        let remote = Error::Remote(RemoteActorError::new(
            "E",
            "went wrong",
            ActorUid::new("worker"),
        ));
        assert_eq!(chain(&remote), "actor 'worker' raised E: went wrong");
        let other = Error::other(Error::from(std::io::Error::other("inner")));
        assert_eq!(chain(&other), "inner");
    }
}
