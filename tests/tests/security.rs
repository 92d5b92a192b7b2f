//! Attacks a shared host and a network allow, against real programs: a
//! user squatting the registrar's loopback port, a relay between a root's
//! dialer and its own listener, a flood of connections that never speak,
//! and reading the tree's secret from `/proc`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tractor_tests::wire::{Handshake, Opening, Refusal};
use tractor_tests::{Program, TestCa, exits_within, listening_ports};

const SECRET: &str = "the secret of the security test tree";

fn standalone(role: &str, env: &[(&str, &str)]) -> Program {
    Program::start(env!("CARGO_BIN_EXE_standalone"), role, env)
}

/// A loopback listener on a free port, never accepted from by itself.
fn squat() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

#[tokio::test]
async fn a_user_squatting_the_registrar_port_is_sent_nothing() {
    let (squatter, registrar) = squat();
    let env = [
        ("TRACTOR_REGISTRAR", registrar.as_str()),
        (tractor::SECRET_ENV, SECRET),
    ];
    // The tree comes up as usual: a becomes the registrar, b joins it, and
    // each calls the other's daemon.
    let mut a = standalone("a", &env);
    let mut pids = HashMap::new();
    a.expect("ready", &mut pids).await;
    let mut b = standalone("b", &env);
    let called = b.expect("B called: ", &mut HashMap::new()).await;
    assert!(called.contains("service_a in program a"), "{called}");
    let from_a = a.expect("A called: ", &mut pids).await;
    assert!(from_a.contains("client_b in program b"), "{from_a}");
    // The squatter never saw a connection, so never a byte.
    match squatter.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the squatter was connected to: {other:?}"),
    }
    drop(b);
    drop(a);
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    stream
        .write_all(&(body.len() as u32).to_le_bytes())
        .unwrap();
    stream.write_all(body).unwrap();
}

/// The root's own TCP listener, found the way any local user can.
fn root_listener(root: u32, except: u16) -> Option<TcpStream> {
    let port = listening_ports(root)
        .into_iter()
        .find(|port| *port != except)?;
    TcpStream::connect(("127.0.0.1", port)).ok()
}

/// Mallory, at the registrar address: takes the root's connection, opens
/// one to the root's own listener, passes hello and challenge along, and
/// forwards the root's proof with her own introduction swapped in. What
/// the root's listener answered her.
fn swap_introduction(relay: TcpListener, root: u32) -> Opening {
    relay.set_nonblocking(false).unwrap();
    let port = relay.local_addr().unwrap().port();
    loop {
        let (mut dialer, _) = relay.accept().unwrap();
        dialer
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // The root first checks whether anyone listens, and hangs up.
        let Some(hello) = read_frame(&mut dialer) else {
            continue;
        };
        let mut listener = root_listener(root, port).expect("the root listens on TCP");
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write_frame(&mut listener, &hello);
        let challenge = read_frame(&mut listener).expect("a challenge");
        write_frame(&mut dialer, &challenge);
        let proof = read_frame(&mut dialer).expect("the root's proof");
        let Opening::Proof(mut proven) = postcard::from_bytes(&proof).unwrap() else {
            panic!("expected the root's proof");
        };
        proven.peer = Handshake {
            uid: tractor_tests::wire::ActorUid {
                name: "mallory".into(),
                uuid: uuid::Uuid::new_v4(),
            },
            addr: None,
            pid: std::process::id(),
            to: None,
            register: true,
        };
        write_frame(
            &mut listener,
            &postcard::to_allocvec(&Opening::Proof(proven)).unwrap(),
        );
        let answer = read_frame(&mut listener).expect("an answer to the proof");
        // A call right behind: it must find the connection closed.
        let _ = listener.write_all(&[1, 0, 0, 0, 0]);
        return postcard::from_bytes(&answer).unwrap();
    }
}

#[tokio::test]
async fn a_relay_that_swaps_the_introduction_gets_nothing() {
    let (relay, registrar) = squat();
    // Plain TCP (the explicit opt-in): the relay can read and change every
    // byte, and still the opening gives her nothing.
    let root = standalone(
        "a",
        &[
            ("TRACTOR_REGISTRAR", registrar.as_str()),
            (tractor::SECRET_ENV, SECRET),
            (tractor::TRANSPORT_ENV, "tcp"),
        ],
    );
    let pid = root.child.id().unwrap();
    let answer = tokio::task::spawn_blocking(move || swap_introduction(relay, pid))
        .await
        .unwrap();
    assert!(
        matches!(answer, Opening::Refused(Refusal::BadProof)),
        "the root's listener refuses the swapped introduction: {answer:?}"
    );
    // The root never got a registrar: it says so and stops.
    let (status, complaint) = root.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(
        complaint.contains("could not join the registrar"),
        "{complaint}"
    );
}

/// Relays every connection made to `relay` to the root's own listener,
/// bytes both ways, until both sides hang up.
fn relay_back(relay: TcpListener, root: u32) {
    relay.set_nonblocking(false).unwrap();
    let port = relay.local_addr().unwrap().port();
    for dialer in relay.incoming() {
        let Ok(dialer) = dialer else { return };
        let Some(listener) = root_listener(root, port) else {
            continue;
        };
        let pump = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Both);
            })
        };
        pump(dialer.try_clone().unwrap(), listener.try_clone().unwrap());
        pump(listener, dialer);
    }
}

#[tokio::test]
async fn a_relay_back_to_the_root_over_tls_is_refused_with_a_clear_error() {
    let ca = TestCa::new("relay");
    let cert = ca.issue("member", &["127.0.0.1"]);
    let (relay, registrar) = squat();
    let mut env: Vec<(String, String)> = ca.env(&cert);
    env.push(("TRACTOR_REGISTRAR".into(), registrar));
    env.push((tractor::SECRET_ENV.into(), SECRET.into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let root = standalone("a", &env);
    let pid = root.child.id().unwrap();
    std::thread::spawn(move || relay_back(relay, pid));
    // TLS runs end to end through the relay, and the opening reaches the
    // root's own listener, which will not take the root for a peer.
    let (status, complaint) = root.finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(
        complaint.contains("came back to this actor itself"),
        "{complaint}"
    );
}

/// Descriptors process `pid` holds.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn silent_connections_do_not_hold_up_spawns() {
    // The attacker's side needs 2,000 descriptors too.
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = limit.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
    let mut spawner = Spawner::start(&tractor_tests::private_registrar());
    let (pid, socket) = (spawner.pid, spawner.socket.clone());
    let before = fd_count(pid);

    // 2,000 connections that say nothing, held open.
    let silent: Vec<UnixStream> = (0..2000)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let held = fd_count(pid);

    let (answer, took) = spawner.spawn(10);
    let during = fd_count(pid);
    println!(
        "fds: {before} before, {held} with 2000 silent connections, {during} after 10 spawns \
         in {took:?}"
    );
    assert_eq!(answer, "spawned 10");
    assert!(took < Duration::from_secs(5), "10 spawns took {took:?}");
    // Openings in progress are capped at 256 whatever their age (128 once
    // 50 ms old; evicted ones close as their tasks next run), far from the
    // 2,000 held open; the spawns' own channels come on top.
    for fds in [held, during] {
        assert!(
            fds < before + 256 + 64,
            "{fds} descriptors held (from {before})"
        );
    }
    drop(silent);
    spawner.finish();
}

/// A `spawner` program in the tree at `registrar`.
struct Spawner {
    child: std::process::Child,
    /// Its root's pid and socket.
    pid: u32,
    socket: String,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Spawner {
    fn start(registrar: &str) -> Spawner {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spawner"))
            .env("TRACTOR_REGISTRAR", registrar)
            .env(tractor::SECRET_ENV, SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let mut words = line.split(' ').skip(1);
        let pid = words.next().unwrap().parse().unwrap();
        let socket = words.next().unwrap().to_owned();
        Spawner {
            child,
            pid,
            socket,
            stdin,
            lines,
        }
    }

    /// Asks for `count` spawns; the answer and how long it took.
    fn spawn(&mut self, count: usize) -> (String, Duration) {
        let started = Instant::now();
        writeln!(self.stdin, "spawn {count}").unwrap();
        let answer = self.lines.next().unwrap().unwrap();
        (answer, started.elapsed())
    }

    /// Ends its input and checks it stops cleanly.
    fn finish(self) {
        let Spawner {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

#[test]
fn a_registrar_that_never_answers_does_not_hold_up_spawns() {
    let registrar = tractor_tests::private_registrar();
    // Program a is the registrar; b joins its tree; then a freezes, so
    // connections to it are taken by the kernel and never answered.
    let a = Spawner::start(&registrar);
    let mut b = Spawner::start(&registrar);
    tractor_tests::signal(a.pid, rustix::process::Signal::STOP);
    // b's new child tries the registrar first, but not for long.
    let (answer, took) = b.spawn(1);
    println!("a spawn with a frozen registrar took {took:?}");
    tractor_tests::signal(a.pid, rustix::process::Signal::CONT);
    assert_eq!(answer, "spawned 1");
    assert!(took < Duration::from_secs(5), "the spawn took {took:?}");
    b.finish();
    a.finish();
}

/// `/proc/<pid>/<file>` as bytes.
fn proc_file(pid: u32, file: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/{file}")).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A field of `/proc/<pid>/stat` after the command (0: state).
fn stat_field(pid: u32, field: usize) -> String {
    let stat = String::from_utf8(proc_file(pid, "stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    rest.split(' ').nth(field).unwrap().to_owned()
}

#[tokio::test]
async fn the_secret_is_in_no_environment_or_command_line() {
    let mut tree = Program::start(
        env!("CARGO_BIN_EXE_tree"),
        "tree",
        &[
            ("TRACTOR_REGISTRAR", &tractor_tests::private_registrar()),
            (tractor::SECRET_ENV, SECRET),
        ],
    );
    let mut pids = HashMap::new();
    for _ in 0..3 {
        let line = tree.line().await;
        let mut words = line.split(' ').skip(1);
        let name = words.next().unwrap().to_owned();
        pids.insert(name, words.next().unwrap().parse::<u32>().unwrap());
    }
    let (root, child, grandchild) = (pids["root"], pids["depth1"], pids["depth0"]);
    for pid in [root, child, grandchild] {
        for file in ["environ", "cmdline"] {
            assert!(
                !contains(&proc_file(pid, file), SECRET.as_bytes()),
                "the secret is in /proc/{pid}/{file}"
            );
        }
    }
    // Children run in process groups of their own (a Ctrl-C reaches the
    // root alone) and ignore no signal the processes they start inherit.
    let group = |pid| stat_field(pid, 2);
    for pid in [child, grandchild] {
        assert_ne!(group(pid), group(root), "actor {pid}'s process group");
        let status = String::from_utf8(proc_file(pid, "status")).unwrap();
        let ignored = status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(
            ignored & (1 << (libc_sigint() - 1)),
            0,
            "actor {pid} ignores SIGINT"
        );
    }
    tree.child.start_kill().unwrap();
    let _ = tree.child.wait().await;
    for pid in [child, grandchild] {
        assert!(
            exits_within(pid, Duration::from_secs(2)).await,
            "actor {pid} outlived its tree"
        );
    }
}

fn libc_sigint() -> u32 {
    rustix::process::Signal::INT.as_raw() as u32
}

#[tokio::test]
async fn a_secret_file_others_may_read_is_refused() {
    let dir = std::env::temp_dir().join(format!("tractor-secret-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let path = file.display().to_string();
    let registrar = tractor_tests::private_registrar();
    let with_file = |path: &str| {
        standalone(
            "a",
            &[
                ("TRACTOR_REGISTRAR", registrar.as_str()),
                (tractor::SECRET_FILE_ENV, path),
            ],
        )
    };

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, complaint) = with_file(&path).finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(
        complaint.contains(&format!("chmod 600 {path}")),
        "{complaint}"
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let (status, complaint) = with_file(&link.display().to_string()).finish().await;
    assert_eq!(status.code(), Some(1), "{complaint}");
    assert!(complaint.contains("symbolic link"), "{complaint}");

    let mut a = with_file(&path);
    a.expect("ready", &mut HashMap::new()).await;
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}
