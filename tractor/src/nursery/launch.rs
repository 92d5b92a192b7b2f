//! Launching a child: from its recipe to a process connected back.
//!
//! A [`Recipe`] is everything a spawn was given (name, uid, options, the
//! main call of a `run_in_actor` child), kept so that a supervisor can
//! start the same child again. Launching goes in two steps, so that the
//! nursery adopts the process the moment it exists and tears it down
//! whatever happens next: [`start`] starts the process, [`connected`]
//! waits for it to connect back and prove itself over its challenge.
//!
//! A child linked to us (a spare that takes the spawn) gets its main call
//! over the link in one write with its spec, before its opening: it runs
//! the call as soon as its hello is out, without waiting for a word from us,
//! and its answer can arrive with the hello. The channel awaits that
//! answer from the moment it opens (see `ipc::channel::MAIN_CALL`). On a
//! two-core machine that took a round trip off each fork-server cycle
//! (see BENCHMARKS.md).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use crate::children::{ChildHandle, Expected, SPAWN_TIMEOUT};
use crate::error::{Error, Result};
use crate::ipc::Channel;
use crate::ipc::channel::{ReservedCall, main_call_frame};
use crate::ipc::credit::Window;
use crate::spawn::ssh::SshTarget;
use crate::spawn::{SpawnSpec, StartMethod};
use crate::uid::ActorUid;

/// Spawn options, as the builders collect them.
#[derive(Default, Clone)]
pub(super) struct Options {
    pub(super) enable_modules: Vec<String>,
    pub(super) statespace: Vec<(String, Vec<u8>)>,
    pub(super) loglevel: Option<String>,
    pub(super) start_method: Option<StartMethod>,
    pub(super) worker_threads: Option<usize>,
    pub(super) max_concurrent_calls: Option<usize>,
    /// Another host to start the child on, and the program to run there.
    pub(super) host: Option<SshTarget>,
    pub(super) program: Option<std::path::PathBuf>,
}

/// What a `run_in_actor` child runs, kept to run again after a restart.
pub(crate) struct MainCall {
    pub(crate) func: Cow<'static, str>,
    pub(crate) args: Vec<u8>,
    /// The call's own timeout, counted from each run's start: when its
    /// call is sent (over a linked child's link, with its spec).
    pub(crate) timeout: Option<Duration>,
    /// The deadline the spawn inherited from the call it was made in.
    pub(crate) inherited: Option<Instant>,
    /// `Some` for a stream call: its window.
    pub(crate) stream: Option<Window>,
}

impl MainCall {
    /// When a run starting now must have answered (its first item, for a
    /// stream).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.timeout {
            // A timeout too large to add is no deadline at all.
            Some(timeout) => Instant::now().checked_add(timeout),
            None => self.inherited,
        }
    }
}

/// Everything needed to start a child, again if need be.
pub(crate) struct Recipe {
    pub(crate) uid: ActorUid,
    pub(super) options: Options,
    pub(crate) main: Option<MainCall>,
}

impl Recipe {
    fn fail(&self, reason: String) -> Error {
        Error::Spawn {
            name: self.uid.name().to_owned(),
            reason,
        }
    }
}

/// A started process waiting to connect back.
pub(crate) struct Starting {
    pub(crate) child: Arc<ChildHandle>,
    expected: Expected,
    /// The child's opening over the socket it is linked to us by, if it
    /// is: driven by [`connected`].
    opening: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// Starts the process `recipe` describes (not yet adopted by anyone).
pub(crate) async fn start(inner: &Inner, recipe: &Recipe) -> Result<Starting> {
    let actor = inner.actor();
    let options = &recipe.options;
    let start_method = options
        .start_method
        .unwrap_or(actor.settings().start_method);
    let children = actor.children();
    let expected = children.expect(recipe.uid.uuid())?;
    let settings = actor.settings();
    let connections = actor.connections();
    let mut enable_modules = options.enable_modules.clone();
    if let Some(main) = &recipe.main {
        enable_modules.push(crate::registry::module_of(&main.func).to_owned());
    }
    let spec = SpawnSpec {
        challenge: expected.challenge,
        workers: options.worker_threads.unwrap_or(settings.child_workers),
        child_workers: settings.child_workers,
        start_method,
        secret: connections.secret().clone(),
        uid: recipe.uid.clone(),
        parent: actor.uid().clone(),
        parent_addr: connections.listen_addr().map(str::to_owned),
        parent_pid: std::process::id(),
        registrar_addr: actor.registrar_addr().to_owned(),
        parent_is_registrar: actor.is_registrar(),
        enable_modules,
        statespace: options.statespace.clone(),
        loglevel: options
            .loglevel
            .clone()
            .or_else(crate::log::inherited_level),
        max_concurrent_calls: options
            .max_concurrent_calls
            .unwrap_or(settings.max_concurrent_calls),
        exec_args: settings.exec_args.clone(),
        remote: handed_down(),
        heartbeat: settings.heartbeat,
        other_registrars: actor.other_registrars().to_vec(),
    };
    if let Some(target) = &options.host {
        let program = options.program.as_ref();
        let child = start_elsewhere(children, recipe, spec, target, program).await?;
        return Ok(Starting {
            child,
            expected,
            opening: None,
        });
    }
    let main = main_frame(recipe);
    let after_spec = main.as_ref().map_or(&[][..], |(frame, _)| frame);
    let started = children.start(&spec, after_spec, start_method).await;
    let (child, link) = started.map_err(|err| {
        recipe.fail(format!(
            "could not start the process ({start_method}): {err}"
        ))
    })?;
    let opening = link.map(|link| {
        let main = main.map(|(_, deadline)| ReservedCall { deadline });
        Box::pin(actor.open_link(link, main)) as Pin<Box<_>>
    });
    Ok(Starting {
        child,
        expected,
        opening,
    })
}

/// Starts the child on the host `target` names (see `spawn::ssh`); its
/// spec says so, and carries our transport settings there.
async fn start_elsewhere(
    children: &crate::children::Children,
    recipe: &Recipe,
    mut spec: SpawnSpec,
    target: &SshTarget,
    program: Option<&std::path::PathBuf>,
) -> Result<Arc<ChildHandle>> {
    let parent_addr = spec.parent_addr.as_deref().ok_or_else(|| {
        recipe.fail(format!(
            "placing an actor on another host needs this actor to listen on TCP: give the \
             program a certificate ({}, {}, {}), or {}=tcp on a network you trust, and set {} \
             to this host's address",
            crate::TLS_CERT_ENV,
            crate::TLS_KEY_ENV,
            crate::TLS_CA_ENV,
            crate::TRANSPORT_ENV,
            crate::HOST_ENV
        ))
    })?;
    for (what, addr) in [
        ("this actor listens", parent_addr),
        ("the registrar is", spec.registrar_addr.as_str()),
    ] {
        if !reachable_from_elsewhere(addr) {
            return Err(recipe.fail(format!(
                "{what} at {addr}, which another host cannot reach: set {} to this host's \
                 address (and the registrar to one other hosts can reach)",
                crate::HOST_ENV
            )));
        }
    }
    let transport = crate::ipc::tls::transport()?;
    spec.remote = Some(crate::spawn::spec::Remote {
        transport: transport.portable().clone(),
        listen_host: target.host.clone(),
    });
    spec.parent_pid = 0;
    let program = crate::spawn::ssh::program_for(program)
        .map_err(|err| recipe.fail(format!("which program to run there: {err}")))?;
    let ssh = crate::spawn::ssh::Ssh {
        target: target.clone(),
    };
    children
        .start_elsewhere(&spec, &ssh, &program)
        .await
        .map_err(|err| recipe.fail(format!("could not start ssh for {}: {err}", target.host)))
}

/// The settings a child on this host gets in its spec: ours, if they came
/// in our own (we run where the environment knows nothing of them).
fn handed_down() -> Option<crate::spawn::spec::Remote> {
    let transport = crate::ipc::tls::transport().ok()?;
    transport.handed_down().then(|| crate::spawn::spec::Remote {
        transport: transport.portable().clone(),
        listen_host: crate::ipc::transport::listen_host(),
    })
}

/// Whether `addr` (`host:port`) can be dialed from another host: not a
/// loopback address, nor a tree's name on this host.
fn reachable_from_elsewhere(addr: &str) -> bool {
    if crate::ipc::local::rendezvous(addr).is_some() {
        return false;
    }
    let host = crate::ipc::local::host_of(addr);
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Err(_) => host != "localhost",
    }
}

/// The frame of a `run_in_actor` child's main call, with its deadline, for
/// a linked child to get in one write with its spec: it runs the call as
/// soon as its hello is out, and its answer can come with the hello (see
/// `handshake`). A stream's goes once the child is connected (see
/// `run_main`), as does the call of a child that is not linked.
fn main_frame(recipe: &Recipe) -> Option<(bytes::BytesMut, Option<Instant>)> {
    let main = recipe.main.as_ref().filter(|main| main.stream.is_none())?;
    let deadline = main.deadline();
    let frame = main_call_frame(&main.func, &main.args, deadline).ok()?;
    Some((frame, deadline))
}

/// Waits for a started child to connect back. Until it has, dropping this
/// future or failing kills it (its exit is then expected, not an error).
pub(crate) async fn connected(recipe: &Recipe, starting: Starting) -> Result<Channel> {
    let Starting {
        child,
        mut expected,
        opening,
    } = starting;
    let mut abandon = KillOnDrop(Some(child.clone()));
    let waiting = async {
        tokio::select! {
            channel = &mut expected.channel => {
                channel.map_err(|_| recipe.fail("this actor is shutting down".into()))
            }
            status = child.exited() => Err(recipe.fail(match &recipe.options.host {
                Some(target) => format!(
                    "ssh to {} exited ({status}) before the child connected back: see its \
                     message above (is the host reachable, the key accepted, the program \
                     there?)",
                    target.host
                ),
                None => format!(
                    "the process exited ({status}) before connecting back; if this is a test, \
                     is it a #[tractor::test]?"
                ),
            })),
            () = tokio::time::sleep(SPAWN_TIMEOUT) => {
                Err(recipe.fail(format!("no connection back within {SPAWN_TIMEOUT:?}")))
            }
        }
    };
    let channel = match opening {
        // A refused opening hands over no channel: the wait goes on until
        // the child exits or the time is up.
        Some(opening) => {
            tokio::pin!(waiting);
            tokio::select! {
                biased;
                channel = &mut waiting => channel,
                () = opening => waiting.await,
            }
        }
        None => waiting.await,
    }?;
    abandon.0 = None;
    tracing::info!(actor = %child.uid(), pid = child.pid(), "spawned");
    child.set_channel(channel.clone());
    Ok(channel)
}

struct KillOnDrop(Option<Arc<ChildHandle>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            child.kill();
        }
    }
}
