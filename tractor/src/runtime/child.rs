//! A spawned child's whole life: become the actor its spawn spec
//! describes, connect back to the parent, serve until cancelled, exit.

use tokio::net::TcpListener;

use super::build_runtime;
use crate::actor::{Actor, Settings};
use crate::error::{Error, Result};
use crate::ipc::transport;
use crate::spawn::SpawnSpec;
use crate::{log, platform, registry, signals};

/// A spawned child's whole life; never returns.
pub(crate) fn child_main(spec: SpawnSpec) -> ! {
    platform::die_with_parent(spec.parent_pid);
    signals::ignore_interrupts();
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
        registrar_local: spec.registrar_local.clone(),
        is_registrar: false,
        enabled: spec.enable_modules.iter().cloned().collect(),
        statespace: spec.statespace.iter().cloned().collect(),
        exec_args: spec.exec_args.clone(),
    });
    let runtime = match build_runtime(&actor) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!(
                "tractor: actor {} cannot start its runtime: {err}",
                spec.uid
            );
            std::process::exit(1);
        }
    };
    Actor::set_current(Some(actor.clone()));
    let code = runtime.block_on(async {
        match serve_child(&actor, &spec).await {
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

async fn serve_child(actor: &Actor, spec: &SpawnSpec) -> Result<()> {
    actor.serve(TcpListener::bind((transport::listen_host(), 0)).await?)?;
    if !spec.parent_is_registrar {
        match actor
            .connect(&spec.registrar_addr, spec.registrar_local.as_deref(), true)
            .await
        {
            Ok(channel) => actor.set_registrar_channel(channel).await,
            Err(err) => tracing::warn!(
                "could not register with the registrar at {}: {err}",
                spec.registrar_addr
            ),
        }
    }
    let parent = actor
        .connect_parent(
            &spec.parent_addr,
            spec.parent_local.as_deref(),
            spec.parent_is_registrar,
            &spec.challenge,
        )
        .await
        .map_err(|err| {
            Error::other(format!(
                "cannot reach the parent at {}: {err}",
                spec.parent_addr
            ))
        })?;
    if spec.parent_is_registrar {
        actor.set_registrar_channel(parent.clone()).await;
    }
    actor.set_parent(parent);
    actor.cancelled().await;
    actor.finish().await;
    Ok(())
}
