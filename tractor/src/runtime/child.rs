//! A spawned child's whole life: become the actor its spawn spec
//! describes, connect back to the parent, serve until cancelled, exit.

use std::time::Duration;

use tokio::net::TcpListener;

use super::{build_child_runtime, warm_up};
use crate::actor::{Actor, Settings};
use crate::error::{Error, Result};
use crate::ipc::msg::Handshake;
use crate::ipc::transport::{self, Target};
use crate::ipc::{local, tls};
use crate::spawn::SpawnSpec;
use crate::spawn::spec::{Begin, Remote, Spare};
use crate::{log, platform, registry, signals};

/// How long a new child waits for the registrar before it connects back
/// to its parent anyway.
const REGISTER_FIRST: Duration = Duration::from_secs(1);

/// The exit status of a child whose supervised nursery gave up.
const ESCALATED: i32 = 3;

/// The exit status of a child whose channel to its parent closed without
/// the parent asking it to go.
const LOST_PARENT: i32 = 4;

/// A spawned child's whole life; never returns.
pub(crate) fn child_main(begin: Begin) -> ! {
    let Ready {
        spec,
        runtime,
        link,
        prebound,
    } = match begin {
        Begin::Spec(spec) => {
            // A fork server's fork inherits its background slice; it
            // leaves it on its only thread, which every later one copies.
            platform::set_background(false);
            match spec.parent_pid {
                // Placed here from another host: it dies with the process
                // that started it on this one (see `spawn::ssh`).
                0 => platform::die_with_parent(std::os::unix::process::parent_id()),
                parent => platform::die_with_parent(parent),
            }
            platform::raise_fd_limit();
            Ready {
                spec: *spec,
                runtime: None,
                link: None,
                prebound: None,
            }
        }
        Begin::Spare(spare) => ready_spare(spare),
    };
    if let Some(remote) = &spec.remote {
        settle(&spec, remote);
    }
    if let Some(level) = &spec.loglevel {
        log::console(level);
    }
    if let Err(err) = registry::check() {
        eprintln!("tractor: actor {} cannot start: {err}", spec.uid);
        std::process::exit(1);
    }
    let actor = Actor::new(Settings {
        workers: spec.workers.max(1),
        child_workers: spec.child_workers.max(1),
        max_concurrent_calls: spec.max_concurrent_calls.max(1),
        start_method: spec.start_method,
        secret: spec.secret.clone(),
        uid: spec.uid.clone(),
        is_root: false,
        registrar_addr: spec.registrar_addr.clone(),
        registrar_is_parent: spec.parent_is_registrar,
        is_registrar: false,
        enabled: spec.enable_modules.iter().cloned().collect(),
        statespace: spec.statespace.iter().cloned().collect(),
        exec_args: spec.exec_args.clone(),
        heartbeat: spec.heartbeat,
        other_registrars: spec.other_registrars.clone(),
    });
    Actor::set_process_actor(actor.clone());
    let runtime = match runtime {
        Some((runtime, workers)) if workers == actor.settings().workers => Ok(runtime),
        _ => build_child_runtime(actor.settings().workers),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!(
                "tractor: actor {} cannot start its runtime: {err}",
                spec.uid
            );
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match serve_child(&actor, &spec, link, prebound).await {
            // A supervisor in this actor gave up: fail, for the parent.
            Ok(()) if actor.has_escalated() => ESCALATED,
            // Its parent is alive (or it would have been killed with it)
            // but its channel is gone: a failure, not a clean end.
            Ok(()) if actor.lost_its_parent() => LOST_PARENT,
            Ok(()) => 0,
            Err(err) => {
                eprintln!("tractor: actor {} failed to start: {err}", spec.uid);
                1
            }
        }
    });
    // Blocking threads may still run user code that cannot be interrupted;
    // exiting ends them.
    std::process::exit(code)
}

/// Takes the transport settings its parent handed down, as a child on
/// another host (or a child of one) must: its environment knows nothing
/// of them.
fn settle(spec: &SpawnSpec, remote: &Remote) {
    if let Err(err) = tls::install(remote.transport.clone()) {
        eprintln!(
            "tractor: actor {} cannot use its parent's transport: {err}",
            spec.uid
        );
        std::process::exit(1);
    }
    // SAFETY: before this process starts a thread of its own (under
    // libtest, the harness' other threads are idle waiting for this one
    // test); its own children inherit it.
    unsafe { std::env::set_var(crate::HOST_ENV, &remote.listen_host) };
}

/// What a child starts from: its spec, and what a spare made ready before
/// it came.
struct Ready {
    spec: SpawnSpec,
    /// A runtime already built, with its worker count.
    runtime: Option<(tokio::runtime::Runtime, usize)>,
    /// A spare's connection to its parent (see `spec::Spare`).
    link: Option<std::os::fd::OwnedFd>,
    /// A spare's socket, bound before it knew its name.
    prebound: Option<local::Unplaced>,
}

/// A spare makes ready everything its spec does not decide, its runtime
/// included, then waits for the spec; it exits if its spawner closes the
/// link without one.
fn ready_spare(spare: Spare) -> Ready {
    platform::die_with_parent(spare.parent_pid);
    platform::raise_fd_limit();
    warm_up();
    let workers = spare.workers.max(1);
    // The threads it starts take its slice: a spare leaves the background
    // before its runtime starts workers, or else once it is ready (an
    // exec'd spare's main thread left it before main: see `runtime`).
    if workers > 1 {
        platform::set_background(false);
    }
    let runtime = build_child_runtime(workers)
        .ok()
        .map(|runtime| (runtime, workers));
    if let Some((runtime, _)) = &runtime {
        // A first pass of the runtime faults in code every actor runs; and
        // SIGINT is taken as a child takes it (a task that waits).
        runtime.block_on(async { signals::absorb_interrupts() });
    }
    let prebound = match tls::transport().is_ok_and(|transport| transport.unix_sockets()) {
        true => local::prebind().ok(),
        false => None,
    };
    platform::prefault_exit_path();
    if workers == 1 {
        // Ready: from now on the spare waits, and its spec must find it
        // quick to wake.
        platform::set_background(false);
    }
    match SpawnSpec::read_link() {
        Ok(Some((spec, link))) => Ready {
            spec,
            runtime,
            link: Some(link),
            prebound,
        },
        // Not needed after all.
        Ok(None) => {
            drop(prebound);
            std::process::exit(0)
        }
        Err(err) => {
            drop(prebound);
            eprintln!("tractor: a spare actor got no usable spec: {err}");
            std::process::exit(1);
        }
    }
}

async fn serve_child(
    actor: &Actor,
    spec: &SpawnSpec,
    link: Option<std::os::fd::OwnedFd>,
    prebound: Option<local::Unplaced>,
) -> Result<()> {
    signals::absorb_interrupts();
    let tcp = match tls::transport()?.tcp() {
        true => Some(TcpListener::bind((transport::listen_host(), 0)).await?),
        false => None,
    };
    actor.serve(tcp, None, prebound)?;
    if !spec.parent_is_registrar {
        // Registered before the parent hears from us, so a lookup right
        // after the spawn finds us; bounded, so an unreachable registrar
        // does not hold the spawn up (it stays unregistered).
        let registrar = Target::Registrar(&spec.registrar_addr);
        match tokio::time::timeout(REGISTER_FIRST, actor.connect(registrar, true)).await {
            Ok(Ok(channel)) => actor.set_registrar_channel(channel).await,
            Ok(Err(err)) => tracing::warn!(
                "could not register with the registrar at {}: {err}",
                spec.registrar_addr
            ),
            Err(_) => tracing::warn!(
                "the registrar at {} did not answer within {REGISTER_FIRST:?}; going on without \
                 it",
                spec.registrar_addr
            ),
        }
    }
    let parent = Target::Actor {
        uuid: spec.parent.uuid(),
        addr: spec.parent_addr.as_deref(),
    };
    // Over a link, the parent is the one at its other end: its
    // introduction follows from the spec (see `handshake`).
    let linked = link.map(|link| {
        let parent = Handshake {
            uid: spec.parent.clone(),
            addr: spec.parent_addr.clone(),
            pid: spec.parent_pid,
            to: Some(spec.uid.uuid()),
            register: false,
        };
        (link, parent)
    });
    let parent = actor
        .connect_parent(parent, linked, spec.parent_is_registrar, &spec.challenge)
        .await
        .map_err(|err| Error::other(format!("cannot reach the parent {}: {err}", spec.parent)))?;
    if spec.parent_is_registrar {
        actor.set_registrar_channel(parent.clone()).await;
    }
    actor.set_parent(parent);
    actor.keep_registered();
    actor.cancelled().await;
    actor.finish().await;
    Ok(())
}
