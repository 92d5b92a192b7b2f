//! Logging.
//!
//! tractor logs through [`tracing`]; any subscriber works. For a quick look
//! at what a tree of actors is doing, [`console`] installs one that writes
//! to stderr and starts every line with the actor it came from:
//!
//! ```text
//! [worker[1a2b3c4d]] 2026-01-01T00:00:00.000000Z DEBUG rpc{func="app::work" id=1}: tractor::actor: ...
//! ```
//!
//! Child actors inherit the level given to `console` (or to
//! `#[tractor::main(loglevel = "..")]`) unless their spawn sets
//! `.loglevel(..)`.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static LEVEL: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// Who this thread works for, as log lines show it (set by the
    /// runtime on each of an actor's threads).
    static LABEL: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The label of lines logged from threads without one of their own: a
/// child process's actor.
static PROCESS_LABEL: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();

/// Labels every line logged in this process with `label` (a child's
/// actor), unless the thread has a label of its own.
pub(crate) fn set_process_label(label: Arc<str>) {
    let _ = PROCESS_LABEL.set(label);
}

/// The calling thread's label (its own, else its process's), if any.
pub(crate) fn label() -> Option<Arc<str>> {
    LABEL
        .with(|label| label.borrow().clone())
        .or_else(|| PROCESS_LABEL.get().cloned())
}

/// Labels every line logged from the calling thread with `label` (the
/// actor's uid), or stops labelling with `None`.
pub(crate) fn set_thread_label(label: Option<Arc<str>>) {
    LABEL.with(|current| *current.borrow_mut() = label);
}

/// Logs to stderr at `level`, each line prefixed with the actor's name;
/// actors spawned from now on log at the same level.
///
/// `level` is a `tracing` filter: a level (`"trace"` .. `"error"`) or
/// directives such as `"info,tractor=debug"`. An invalid filter falls back
/// to `"info"` with a warning. If another global subscriber is already
/// installed it stays, and only the level is passed on to children.
///
/// ```
/// tractor::log::console("info");
/// ```
pub fn console(level: impl AsRef<str>) {
    let level = level.as_ref();
    let filter = EnvFilter::try_new(level).unwrap_or_else(|err| {
        eprintln!("tractor: invalid log filter {level:?} ({err}); logging at info");
        EnvFilter::new("info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(WithActor(tracing_subscriber::fmt::format()))
        .try_init();
    *LEVEL.lock().unwrap_or_else(|p| p.into_inner()) = Some(level.to_owned());
}

/// The level children inherit, if [`console`] was called.
pub(crate) fn inherited_level() -> Option<String> {
    LEVEL.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Prefixes each event with the label of the thread that emitted it.
struct WithActor<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithActor<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if let Some(label) = label() {
            write!(writer, "[{label}] ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}
