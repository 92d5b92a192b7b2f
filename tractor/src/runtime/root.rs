//! The root of a tree: [`Root::builder`], what `#[tractor::main]` and
//! `#[tractor::test]` expand to.
//!
//! Every option can be set in code, and every one but the body also has an
//! environment variable; an option set in code wins over its variable,
//! which wins over the default. A test root always runs a registrar of its
//! own on an ephemeral port (tests of one binary run in parallel).

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream, ToSocketAddrs};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;

use super::{DEFAULT_CHILD_WORKERS, build_runtime, child_main, fork_server_fallback};
use crate::actor::{Actor, Settings};
use crate::auth::Secret;
use crate::error::{Error, Result};
use crate::ipc::heartbeat::{self, Heartbeat};
use crate::ipc::limits::DEFAULT_MAX_CONCURRENT_CALLS;
use crate::ipc::transport::{self, Target};
use crate::ipc::{local, tls};
use crate::signals::{self, Interrupts};
use crate::spawn::{START_METHOD_ENV, SpawnSpec, StartMethod};
use crate::uid::ActorUid;
use crate::{log, registry};

/// The registrar address when nothing else says.
pub const DEFAULT_REGISTRAR: &str = "127.0.0.1:1616";
/// Overrides the default registrar address of program roots (code that
/// sets one wins).
pub const REGISTRAR_ENV: &str = "TRACTOR_REGISTRAR";
/// Sets [`RootBuilder::worker_threads`] when code does not.
const WORKER_THREADS_ENV: &str = "TRACTOR_WORKER_THREADS";

/// The root actor of a tree, started from code.
///
/// `Root::builder()...run(body)`, called first thing in a plain `fn main`,
/// makes the process the root of a tree and runs `body` as its first task
/// — or, in a process spawned as a child actor, makes it that child (the
/// body never runs there). `#[tractor::main]` is a shorthand for it.
///
/// ```no_run
/// use tractor::ActorNursery;
///
/// #[tractor::rpc]
/// async fn greet(name: String) -> String {
///     format!("hello {name}")
/// }
///
/// fn main() -> tractor::Result<()> {
///     tractor::Root::builder()
///         .secret(*b"a secret of at least sixteen bytes")
///         .worker_threads(2)
///         .loglevel("info")
///         .run(async {
///             tractor::open_nursery(async |n: &ActorNursery| {
///                 let greeter = n.run_in_actor("greeter", greet::call("donny".into())).await?;
///                 println!("{}", greeter.result().await?);
///                 Ok(())
///             })
///             .await
///         })
/// }
/// ```
#[derive(Debug)]
pub struct Root(());

impl Root {
    /// Options for the root, then [`RootBuilder::run`].
    pub fn builder() -> RootBuilder {
        RootBuilder::default()
    }
}

/// Options of a tree's root; [`run`](Self::run) starts it.
///
/// Made by [`Root::builder`].
#[derive(Default)]
#[must_use = "a root does nothing until run"]
pub struct RootBuilder {
    test_path: Option<&'static str>,
    registrar: Option<String>,
    secret: Option<Vec<u8>>,
    worker_threads: Option<usize>,
    start_method: Option<StartMethod>,
    loglevel: Option<String>,
    enable_modules: Vec<String>,
    max_concurrent_calls: Option<usize>,
    heartbeat: Option<(Duration, Duration)>,
    registrars: Option<Vec<String>>,
}

impl std::fmt::Debug for RootBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootBuilder")
            .field("test", &self.test_path)
            .field("registrar", &self.registrar)
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("worker_threads", &self.worker_threads)
            .field("start_method", &self.start_method)
            .field("loglevel", &self.loglevel)
            .field("enable_modules", &self.enable_modules)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("heartbeat", &self.heartbeat)
            .field("registrars", &self.registrars)
            .finish()
    }
}

impl RootBuilder {
    /// A test's root (`#[tractor::test]`); `path` is the test function's
    /// full path, crate name first.
    pub(crate) fn test(path: &'static str) -> Self {
        RootBuilder {
            test_path: Some(path),
            ..RootBuilder::default()
        }
    }

    /// The registrar to look for at `addr` (`host:port`), or to become if
    /// none answers there. Default: `TRACTOR_REGISTRAR`, else
    /// [`DEFAULT_REGISTRAR`]. Ignored by test roots, which run their own.
    pub fn registrar(mut self, addr: impl Into<String>) -> Self {
        self.registrar = Some(addr.into());
        self
    }

    /// Several registrars for a tree across hosts (each `host:port`, over
    /// TCP), in place of [`registrar`](Self::registrar); also a
    /// comma-separated `TRACTOR_REGISTRAR`. Every actor registers with
    /// each it reaches, and again with one that comes back; lookups ask
    /// them in turn, so losing one stops no call and lookups go on through
    /// the others. The first root on a host becomes the registrar at an
    /// address of that host where none answers; other roots join the
    /// first that answers. Ignored by test roots.
    ///
    /// ```no_run
    /// tractor::Root::builder()
    ///     .registrars(["10.0.0.1:1616", "10.0.0.2:1616"])
    ///     .run(async {
    ///         // ...
    ///     });
    /// ```
    pub fn registrars<I>(mut self, addrs: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.registrars = Some(addrs.into_iter().map(Into::into).collect());
        self
    }

    /// The tree's secret (at least 16 bytes; use random ones). Programs
    /// that are to share a tree must share it. Default:
    /// `TRACTOR_SECRET`, else the file named by `TRACTOR_SECRET_FILE`, else
    /// a fresh random secret (the tree is private to this program).
    pub fn secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Worker threads of every actor of the tree: the root's runtime and,
    /// unless a spawn says otherwise (`.worker_threads(n)` on the spawn
    /// builders), each child's. One worker is the thread the actor runs
    /// on (a current-thread runtime: no hand-over between threads, so a
    /// tree of one-thread actors spawns and answers fastest). Default:
    /// `TRACTOR_WORKER_THREADS`, else
    /// [`DEFAULT_CHILD_WORKERS`](crate::DEFAULT_CHILD_WORKERS) (one), the
    /// root included: its body then runs on that thread beside the
    /// channels it serves, so an `async` body must not block it (put
    /// blocking work in `tokio::task::spawn_blocking`, CPU work in an
    /// actor, or ask for more workers here).
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = Some(threads.max(1));
        self
    }

    /// How the tree starts its children (each child's own children too,
    /// unless a spawn says otherwise). Default: `TRACTOR_START_METHOD`,
    /// else [`StartMethod::Exec`].
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Installs the console logger ([`log::console`](crate::log::console))
    /// at this level; children inherit it.
    pub fn loglevel(mut self, level: impl Into<String>) -> Self {
        self.loglevel = Some(level.into());
        self
    }

    /// Modules whose remote functions the root serves (module paths, as
    /// `module_path!()` gives them).
    pub fn enable_modules<I>(mut self, modules: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.enable_modules
            .extend(modules.into_iter().map(Into::into));
        self
    }

    /// How many calls one peer may have running in an actor of the tree
    /// at once (the root's, and its children's unless a spawn says
    /// otherwise). Default:
    /// [`DEFAULT_MAX_CONCURRENT_CALLS`](crate::DEFAULT_MAX_CONCURRENT_CALLS).
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = Some(calls.max(1));
        self
    }

    /// How channels between hosts (over TCP) tell a peer that went
    /// silent, for every actor of the tree: each sends a heartbeat after
    /// `interval` with nothing else to send, and one that heard nothing at
    /// all from its peer for `timeout` closes the channel. Its calls and
    /// streams then fail; a child whose parent channel it was exits, and
    /// the parent reports that child failed, each within `timeout` of the
    /// cut. Default: 1 s and 5 s. `timeout` must be at least twice
    /// `interval`. Channels on one host need none (the kernel tells of a
    /// dead peer at once).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// tractor::Root::builder()
    ///     .heartbeat(Duration::from_millis(250), Duration::from_secs(2))
    ///     .run(async {
    ///         // ...
    ///     });
    /// ```
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat = Some((interval, timeout));
        self
    }

    /// Starts the tree and runs `body` as the root actor's first task (on
    /// the calling thread with the default one worker thread, see
    /// [`worker_threads`](Self::worker_threads)); returns what `body`
    /// returns once the root has wound down (every child reaped). In a
    /// process spawned as a child actor, becomes that child instead and
    /// never returns.
    ///
    /// Blocks: call it first thing in a plain `fn main`. A root that cannot
    /// start (a bad option, an unusable registrar address) prints why and
    /// exits with status 1 (in a test, panics).
    pub fn run<F>(self, body: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.start(async move {
            // Dropped (Ctrl-C) means aborted: the body's nurseries unwind.
            let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(body));
            match task.await {
                Ok(output) => Ok(output),
                Err(err) => match err.try_into_panic() {
                    Ok(panic) => Err(panic),
                    Err(err) => Err(Box::new(format!("the root task ended: {err}")) as _),
                },
            }
        })
    }

    /// As [`run`](Self::run), for a body that is not `Send`: it runs on the
    /// calling thread, not as a task (with several worker threads, slower
    /// for hot loops; with the default one, the same thread either way).
    pub fn run_local<F: Future>(self, body: F) -> F::Output {
        self.start(AssertUnwindSafe(body).catch_unwind())
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

    fn start<T>(self, body: impl Future<Output = std::thread::Result<T>>) -> T {
        fork_server_fallback();
        if let Some(begin) = SpawnSpec::take_from_env() {
            match begin {
                Ok(begin) => child_main(begin),
                Err(err) => self.fail(format!("unreadable spawn spec: {err}")),
            }
        }
        if let Err(err) = registry::check() {
            self.fail(err);
        }
        if let Some(level) = &self.loglevel {
            log::console(level);
        }
        local::sweep_stale();
        crate::platform::raise_fd_limit();
        let (settings, listeners) = match self.settings() {
            Ok(found) => found,
            Err(err) => self.fail(err),
        };
        let actor = Actor::new(settings);
        let runtime = match build_runtime(&actor) {
            Ok(runtime) => runtime,
            Err(err) => self.fail(err),
        };
        let previous = Actor::set_current(Some(actor.clone()));
        let started = runtime.block_on(async {
            let tcp = listeners.tcp.map(TcpListener::from_std).transpose()?;
            actor.serve(tcp, listeners.rendezvous, None)?;
            if listeners.join {
                let registrar = Target::Registrar(actor.registrar_addr());
                let channel = actor.connect(registrar, true).await.map_err(|err| {
                    Error::other(format!(
                        "could not join the registrar at {}: {err}",
                        actor.registrar_addr()
                    ))
                })?;
                actor.set_registrar_channel(channel).await;
            }
            actor.keep_registered();
            Ok::<_, Error>(())
        });
        if let Err(err) = started {
            self.fail(err);
        }
        let output = runtime.block_on(async {
            // A program stops on SIGINT/SIGTERM; a test leaves them to its
            // harness.
            let interrupts = match self.is_test() {
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

    /// Decides what kind of root this is: a test root is its own registrar,
    /// private to it; a program's root joins the registrar it finds at the
    /// configured address, or becomes it.
    fn settings(&self) -> Result<(Settings, Listeners)> {
        let start_method = match (self.start_method, std::env::var(START_METHOD_ENV)) {
            (Some(method), _) => method,
            (None, Ok(method)) => method.parse::<StartMethod>()?,
            (None, Err(_)) => StartMethod::default(),
        };
        let worker_threads = match (self.worker_threads, std::env::var(WORKER_THREADS_ENV)) {
            (Some(threads), _) => Some(threads),
            (None, Ok(threads)) => Some(worker_threads_from(&threads)?),
            (None, Err(_)) => None,
        };
        let mut settings = Settings {
            workers: worker_threads.unwrap_or(DEFAULT_CHILD_WORKERS),
            child_workers: worker_threads.unwrap_or(DEFAULT_CHILD_WORKERS),
            max_concurrent_calls: self
                .max_concurrent_calls
                .unwrap_or(DEFAULT_MAX_CONCURRENT_CALLS),
            start_method,
            secret: Secret::for_root(self.secret.as_deref())?,
            uid: ActorUid::new("root"),
            is_root: true,
            registrar_addr: String::new(),
            registrar_is_parent: false,
            is_registrar: false,
            enabled: self.enable_modules.iter().cloned().collect(),
            statespace: Default::default(),
            exec_args: Vec::new(),
            other_registrars: Vec::new(),
            heartbeat: match self.heartbeat {
                Some((interval, timeout)) => Heartbeat::new(interval, timeout)
                    .map_err(|err| Error::other(format!("Root::builder().heartbeat(..): {err}")))?,
                None => heartbeat::DEFAULT,
            },
        };
        let transport = tls::transport()?;
        // Where this actor takes TCP connections from other hosts, if its
        // transport has TCP at all.
        let own_tcp = || -> Result<Option<StdListener>> {
            match transport.tcp() {
                true => Ok(Some(listen(&format!("{}:0", transport::listen_host()))?)),
                false => Ok(None),
            }
        };
        if let Some(path) = self.test_path {
            // libtest names tests by their path without the crate; an
            // ignored test runs in the child too, since its root did.
            let test = path.split_once("::").map_or(path, |(_, test)| test);
            settings.exec_args = vec![
                "--exact".into(),
                test.into(),
                "--nocapture".into(),
                "--include-ignored".into(),
            ];
            settings.is_registrar = true;
            let tcp = own_tcp()?;
            let mut rendezvous = None;
            if transport.unix_sockets() {
                let name = format!("test-{}", settings.uid.uuid().simple());
                settings.registrar_addr = format!("{}{name}", local::LOCAL_PREFIX);
                let path = local::rendezvous_socket(&name)?;
                rendezvous = Some((local::bind(&path)?, path));
            } else if let Some(tcp) = &tcp {
                settings.registrar_addr = tcp.local_addr()?.to_string();
            }
            let listeners = Listeners {
                tcp,
                rendezvous,
                join: false,
            };
            return Ok((settings, listeners));
        }
        let mut addrs = match (&self.registrars, &self.registrar) {
            (Some(addrs), _) => addrs.clone(),
            (None, Some(addr)) => vec![addr.clone()],
            (None, None) => match std::env::var(REGISTRAR_ENV) {
                Ok(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|addr| !addr.is_empty())
                    .map(str::to_owned)
                    .collect(),
                Err(_) => vec![DEFAULT_REGISTRAR.to_owned()],
            },
        };
        if addrs.is_empty() {
            return Err(Error::other(format!(
                "no registrar address: give one or more (`host:port`, comma-separated in \
                 {REGISTRAR_ENV})"
            )));
        }
        if addrs.len() > 1 {
            return several_registrars(settings, &addrs, transport);
        }
        let addr = addrs.remove(0);
        settings.registrar_addr = addr.clone();
        match local::rendezvous(&addr) {
            // An address this host keeps to itself: meet in the private
            // directory, never on a loopback port another user may hold.
            Some(name) if transport.unix_sockets() => {
                let path = local::rendezvous_socket(&name)?;
                let _deciding = local::Lock::take()?;
                let join = local::probe(&path) == local::Probe::Alive;
                let rendezvous = match join {
                    true => None,
                    false => Some((local::bind(&path)?, path)),
                };
                settings.is_registrar = !join;
                let listeners = Listeners {
                    tcp: own_tcp()?,
                    rendezvous,
                    join,
                };
                Ok((settings, listeners))
            }
            _ if !transport.tcp() => Err(Error::other(format!(
                "the registrar address {addr} is not on this host, and this program has no TCP \
                 transport: give it a certificate ({}, {}, {}) or choose plain TCP with {}=tcp",
                tls::TLS_CERT_ENV,
                tls::TLS_KEY_ENV,
                tls::TLS_CA_ENV,
                tls::TRANSPORT_ENV
            ))),
            _ => {
                let (is_registrar, tcp) = tcp_registrar(&addr)?;
                settings.is_registrar = is_registrar;
                let listeners = Listeners {
                    tcp: Some(match tcp {
                        Some(tcp) => tcp,
                        None => listen(&format!("{}:0", transport::listen_host()))?,
                    }),
                    rendezvous: None,
                    join: !is_registrar,
                };
                Ok((settings, listeners))
            }
        }
    }
}

/// Where a root listens, and whether it joins a registrar.
struct Listeners {
    tcp: Option<StdListener>,
    /// The registrar's rendezvous socket, for a root that is the registrar.
    rendezvous: Option<(StdUnixListener, PathBuf)>,
    join: bool,
}

/// A `TRACTOR_WORKER_THREADS` value: a whole number, at least 1.
fn worker_threads_from(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(threads) if threads >= 1 => Ok(threads),
        _ => Err(Error::other(format!(
            "{WORKER_THREADS_ENV}={value:?} is not a number of threads; give a whole number, at \
             least 1, or unset it"
        ))),
    }
}

/// Finds the registrar at TCP address `addr`, or becomes it: `(true, the
/// listener on addr)` for the registrar, `(false, None)` to join.
/// A root whose tree has several registrars (`addrs`, each `host:port`
/// over TCP): the first root on a host becomes the registrar at an address
/// of its own host where none answers; any other joins the first that
/// answers. Either way it registers with the others too (see
/// `Actor::keep_registered`).
fn several_registrars(
    mut settings: Settings,
    addrs: &[String],
    transport: &tls::Transport,
) -> Result<(Settings, Listeners)> {
    if !transport.tcp() {
        return Err(Error::other(format!(
            "several registrars ({}) are reached over TCP, and this program has no TCP \
             transport: give it a certificate ({}, {}, {}) or choose plain TCP with {}=tcp",
            addrs.join(", "),
            tls::TLS_CERT_ENV,
            tls::TLS_KEY_ENV,
            tls::TLS_CA_ENV,
            tls::TRANSPORT_ENV
        )));
    }
    if let Some(local) = addrs.iter().find(|addr| local::rendezvous(addr).is_some()) {
        return Err(Error::other(format!(
            "registrar {local} is this host's alone; several registrars are for trees across \
             hosts, at addresses the hosts reach"
        )));
    }
    let targets = addrs
        .iter()
        .map(|addr| resolve(addr))
        .collect::<Result<Vec<_>>>()?;
    let answers: Vec<bool> = targets
        .iter()
        .map(|target| StdStream::connect_timeout(target, Duration::from_millis(250)).is_ok())
        .collect();
    let mut chosen = None;
    for (index, target) in targets.iter().enumerate() {
        if answers[index] {
            continue;
        }
        match StdListener::bind(target) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                chosen = Some((index, Some(listener)));
                break;
            }
            // Another host's address, or another root's since the probe.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse
                ) => {}
            Err(err) => {
                return Err(Error::other(format!(
                    "could not listen on the registrar address {}: {err}",
                    addrs[index]
                )));
            }
        }
    }
    let (index, registrar) = match chosen {
        Some(found) => found,
        None => match answers.iter().position(|answers| *answers) {
            Some(index) => (index, None),
            None => {
                return Err(Error::other(format!(
                    "no registrar answers at any of {}, and none of those addresses is on this \
                     host: start a root where one of them is",
                    addrs.join(", ")
                )));
            }
        },
    };
    settings.is_registrar = registrar.is_some();
    settings.registrar_addr = addrs[index].clone();
    settings.other_registrars = addrs
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, addr)| addr.clone())
        .collect();
    let tcp = match registrar {
        Some(listener) => listener,
        None => listen(&format!("{}:0", transport::listen_host()))?,
    };
    let listeners = Listeners {
        tcp: Some(tcp),
        rendezvous: None,
        join: !settings.is_registrar,
    };
    Ok((settings, listeners))
}

fn tcp_registrar(addr: &str) -> Result<(bool, Option<StdListener>)> {
    let target = resolve(addr)?;
    // Someone there: join. Nobody: become the registrar (and if another
    // program won that race, join it after all).
    for _ in 0..2 {
        if StdStream::connect_timeout(&target, Duration::from_millis(250)).is_ok() {
            return Ok((false, None));
        }
        match StdListener::bind(target) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                return Ok((true, Some(listener)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_from_the_environment_are_a_whole_number_of_at_least_one() {
        assert_eq!(worker_threads_from("3").unwrap(), 3);
        assert_eq!(worker_threads_from(" 1\n").unwrap(), 1);
        for bad in ["0", "-1", "two", ""] {
            let err = worker_threads_from(bad).unwrap_err().to_string();
            assert!(err.contains(WORKER_THREADS_ENV), "{bad:?}: {err}");
        }
    }
}
