//! Bootstrap: what `#[tractor::main]` and `#[tractor::test]` run.
//!
//! The first question is always whether this process is a spawned child
//! (its environment carries a spawn spec). A child never runs the user's
//! body: it becomes an actor, connects back to its parent and serves until
//! cancelled, then exits. A root finds the registrar, or becomes it, builds
//! its actor and runtime, runs the body as a task on a runtime worker, and
//! winds its actor down before returning the body's result.

use std::cell::Cell;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};

use crate::actor::{Actor, Settings};
use crate::auth::Secret;
use crate::error::{Error, Result};
use crate::ipc::limits::DEFAULT_MAX_CONCURRENT_CALLS;
use crate::ipc::{tls, transport};
use crate::signals::{self, Interrupts};
use crate::spawn::{START_METHOD_ENV, SpawnSpec, StartMethod, forkserver};
use crate::uid::ActorUid;
use crate::{log, platform, registry};

/// Worker threads of a child actor's runtime unless the root or the spawn
/// says otherwise: one to run calls and one so that a call hogging its
/// thread does not stall the channels; an idle actor should not hold a
/// thread per core of a big host.
pub(crate) const DEFAULT_CHILD_WORKERS: usize = 2;

// A fork server must be the only thread of its process when it forks, so
// it runs before `main` (before libtest's threads, in a test binary).
platform::before_main!(FORK_SERVER_BEFORE_MAIN, serve_fork_server_if_asked);

fn serve_fork_server_if_asked() {
    if std::env::var_os(forkserver::SERVER_ENV).is_some() {
        // What the Rust runtime would have done by now: a write to a
        // closed socket is an error, not a fatal signal.
        signals::ignore_broken_pipes();
        forkserver::serve_if_asked(child_main);
    }
}

/// The registrar address when nothing else says.
pub const DEFAULT_REGISTRAR: &str = "127.0.0.1:1616";
/// Overrides the registrar address of `#[tractor::main]` roots.
pub const REGISTRAR_ENV: &str = "TRACTOR_REGISTRAR";

/// How a root actor starts; built by the entry macros.
#[derive(Debug, Default)]
pub struct RootConfig {
    test_path: Option<&'static str>,
    registrar: Option<String>,
    loglevel: Option<String>,
    enable_modules: Vec<String>,
    start_method: Option<String>,
}

impl RootConfig {
    /// A program's root (`#[tractor::main]`).
    pub fn main() -> Self {
        RootConfig::default()
    }

    /// A test's root (`#[tractor::test]`); `path` is the test function's
    /// full path, crate name first.
    pub fn test(path: &'static str) -> Self {
        RootConfig {
            test_path: Some(path),
            ..RootConfig::default()
        }
    }

    /// The registrar address to look for (or to become).
    pub fn registrar(mut self, addr: &str) -> Self {
        self.registrar = Some(addr.to_owned());
        self
    }

    /// Install the console logger at this level.
    pub fn loglevel(mut self, level: &str) -> Self {
        self.loglevel = Some(level.to_owned());
        self
    }

    /// How children are started (unless `TRACTOR_START_METHOD` says
    /// otherwise).
    pub fn start_method(mut self, method: &str) -> Self {
        self.start_method = Some(method.to_owned());
        self
    }

    /// Modules whose remote functions the root serves.
    pub fn enable_modules(mut self, modules: &[&str]) -> Self {
        self.enable_modules
            .extend(modules.iter().map(|m| (*m).to_owned()));
        self
    }

    fn is_test(&self) -> bool {
        self.test_path.is_some()
    }

    /// Stops the program (or fails the test) when the root cannot start.
    fn fail(&self, why: impl std::fmt::Display) -> ! {
        if self.is_test() {
            panic!("tractor: the test's root actor could not start: {why}");
        }
        eprintln!("tractor: the root actor could not start: {why}");
        std::process::exit(1)
    }
}

/// The body of `main` or of a test, held until run.
pub struct RootBody<F>(Cell<Option<F>>);

impl<F> RootBody<F> {
    /// Wraps the body.
    pub fn new(body: F) -> Self {
        RootBody(Cell::new(Some(body)))
    }

    fn take(&self) -> F {
        // The entry macros call `run` exactly once.
        match self.0.take() {
            Some(body) => body,
            None => unreachable!("a root body runs once"),
        }
    }
}

/// Runs a `Send` body as a task on a runtime worker (the fast path).
pub trait SpawnedBody {
    /// What the body returns.
    type Output;
    /// Becomes a child if spawned as one, else runs the body as the root.
    fn run(self, config: RootConfig) -> Self::Output;
}

impl<F, Fut> SpawnedBody for &&RootBody<F>
where
    F: FnOnce() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn run(self, config: RootConfig) -> Fut::Output {
        let body = self.take();
        run_root(config, async move {
            // Dropped (Ctrl-C) means aborted: the body's nurseries unwind.
            let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(body()));
            match task.await {
                Ok(output) => Ok(output),
                Err(err) => match err.try_into_panic() {
                    Ok(panic) => Err(panic),
                    Err(err) => Err(Box::new(format!("the root task ended: {err}")) as _),
                },
            }
        })
    }
}

/// Runs a body that is not `Send` on the thread that called `main`.
pub trait InlineBody {
    /// What the body returns.
    type Output;
    /// Becomes a child if spawned as one, else runs the body as the root.
    fn run(self, config: RootConfig) -> Self::Output;
}

impl<F, Fut> InlineBody for &RootBody<F>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;

    fn run(self, config: RootConfig) -> Fut::Output {
        let body = self.take();
        run_root(config, async move {
            AssertUnwindSafe(body()).catch_unwind().await
        })
    }
}

fn run_root<T>(config: RootConfig, body: impl Future<Output = std::thread::Result<T>>) -> T {
    // Normally done before main (see FORK_SERVER_BEFORE_MAIN, which this
    // also keeps linked in).
    std::hint::black_box(&FORK_SERVER_BEFORE_MAIN);
    forkserver::serve_if_asked(child_main);
    if let Some(spec) = SpawnSpec::take_from_env() {
        match spec {
            Ok(spec) => child_main(spec),
            Err(err) => config.fail(format!("unreadable spawn spec: {err}")),
        }
    }
    if let Err(err) = registry::check() {
        config.fail(err);
    }
    if let Some(level) = &config.loglevel {
        log::console(level);
    }
    transport::sweep_stale_sockets();
    let (settings, listener, registrar_link) = match root_settings(&config) {
        Ok(found) => found,
        Err(err) => config.fail(err),
    };
    let actor = Actor::new(settings);
    let runtime = match build_runtime(&actor) {
        Ok(runtime) => runtime,
        Err(err) => config.fail(err),
    };
    let previous = Actor::set_current(Some(actor.clone()));
    let started = runtime.block_on(async {
        actor.serve(TcpListener::from_std(listener)?)?;
        if let Some(link) = registrar_link {
            let addr = actor.registrar_addr().to_owned();
            let link = tls::transport()?
                .dialed(TcpStream::from_std(link)?, &addr)
                .await?;
            let channel = actor.connect_stream(link, true).await?;
            actor.set_registrar_channel(channel).await;
        }
        Ok::<_, Error>(())
    });
    if let Err(err) = started {
        config.fail(err);
    }
    let output = runtime.block_on(async {
        // A program stops on SIGINT/SIGTERM; a test leaves them to its
        // harness.
        let interrupts = match config.is_test() {
            true => None,
            false => Interrupts::listen().ok(),
        };
        let output = match interrupts {
            Some(mut interrupts) => tokio::select! {
                output = body => Ok(output),
                signal = interrupts.next() => {
                    eprintln!(
                        "tractor: {} received, cancelling the actor tree (again to kill it)",
                        signals::name(signal)
                    );
                    let actor = actor.clone();
                    tokio::spawn(async move {
                        let again = interrupts.next().await;
                        actor.kill_children_now();
                        std::process::exit(128 + again);
                    });
                    Err(signal)
                }
            },
            None => Ok(body.await),
        };
        actor.finish().await;
        output
    });
    Actor::set_current(previous);
    runtime.shutdown_timeout(Duration::from_millis(100));
    match output {
        Ok(Ok(output)) => output,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(signal) => std::process::exit(128 + signal),
    }
}

/// Decides what kind of root this is: a test root is its own registrar on
/// an ephemeral port; a program's root joins the registrar it finds at the
/// configured address, or becomes it.
fn root_settings(config: &RootConfig) -> Result<(Settings, StdListener, Option<StdStream>)> {
    let method = std::env::var(START_METHOD_ENV)
        .ok()
        .or_else(|| config.start_method.clone());
    let start_method = match method {
        Some(method) => method.parse::<StartMethod>()?,
        None => StartMethod::default(),
    };
    let mut settings = Settings {
        // Read once here (it means reading cgroup files) and handed down to
        // every child, which would otherwise read them again at its start.
        workers: std::thread::available_parallelism().map_or(1, usize::from),
        child_workers: DEFAULT_CHILD_WORKERS,
        max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
        start_method,
        secret: Secret::for_root()?,
        uid: ActorUid::new("root"),
        is_root: true,
        registrar_addr: String::new(),
        registrar_local: None,
        is_registrar: false,
        enabled: config.enable_modules.iter().cloned().collect(),
        statespace: Default::default(),
        exec_args: Vec::new(),
    };
    if let Some(path) = config.test_path {
        // libtest names tests by their path without the crate.
        let test = path.split_once("::").map_or(path, |(_, test)| test);
        settings.exec_args = vec!["--exact".into(), test.into(), "--nocapture".into()];
        let listener = listen("127.0.0.1:0")?;
        settings.registrar_addr = listener.local_addr()?.to_string();
        settings.is_registrar = true;
        return Ok((settings, listener, None));
    }
    let addr = std::env::var(REGISTRAR_ENV)
        .ok()
        .or_else(|| config.registrar.clone())
        .unwrap_or_else(|| DEFAULT_REGISTRAR.to_owned());
    let target = resolve(&addr)?;
    settings.registrar_addr = addr.clone();
    // Someone there: join. Nobody: become the registrar (and if another
    // program won that race, join it after all).
    for _ in 0..2 {
        if let Ok(link) = StdStream::connect_timeout(&target, Duration::from_millis(250)) {
            link.set_nonblocking(true)?;
            return Ok((
                settings,
                listen(&format!("{}:0", transport::listen_host()))?,
                Some(link),
            ));
        }
        match StdListener::bind(target) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                settings.is_registrar = true;
                return Ok((settings, listener, None));
            }
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(err) => {
                return Err(Error::other(format!(
                    "could not listen on the registrar address {addr}: {err}"
                )));
            }
        }
    }
    Err(Error::other(format!(
        "the registrar address {addr} is taken, but nothing answers there"
    )))
}

fn listen(addr: &str) -> Result<StdListener> {
    let listener = StdListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|err| Error::other(format!("bad registrar address {addr:?}: {err}")))?
        .next()
        .ok_or_else(|| Error::other(format!("registrar address {addr:?} resolves to nothing")))
}

/// Every thread of an actor's runtime knows its actor.
fn build_runtime(actor: &Actor) -> std::io::Result<tokio::runtime::Runtime> {
    let on_start = actor.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(actor.settings().workers)
        .enable_all()
        .thread_name("tractor-actor")
        .on_thread_start(move || {
            Actor::set_current(Some(on_start.clone()));
        })
        .build()
}

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
