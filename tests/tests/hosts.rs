//! Actors placed on other hosts through ssh: three hosts made of network
//! namespaces (see `tractor_tests::netns`), a root on `a` (the `hosts`
//! program) placing actors on `b` and `c`. Needs root; skipped with the
//! reason where it is missing, except where `TRACTOR_REQUIRE_HOSTS=1`
//! (CI), which fails instead.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tractor_tests::TestCa;
use tractor_tests::netns::{Host, Hosts, hosts_or_skip};

const PROGRAM: &str = env!("CARGO_BIN_EXE_hosts");

/// The `hosts` program running `scenario` as a root on host `a`, its
/// stdout read line by line.
struct Root {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    _tls: Arc<Tls>,
}

/// What the programs of one tree share: its secret, its CA and the one
/// certificate its actors present, naming every host.
struct Tls {
    ca: TestCa,
    cert: (std::path::PathBuf, std::path::PathBuf),
    secret: String,
}

impl Tls {
    fn new(hosts: &Hosts) -> Tls {
        let ca = TestCa::new("hosts");
        let ips = [
            hosts.a.ip.as_str(),
            hosts.b.ip.as_str(),
            hosts.c.ip.as_str(),
        ];
        let cert = ca.issue("tree", &ips);
        let secret = format!("{:032x}", fastrand::u128(..));
        Tls { ca, cert, secret }
    }
}

impl Root {
    fn start(hosts: &Hosts, scenario: &str) -> Root {
        let registrar = format!("{}:1616", hosts.a.ip);
        let tls = Arc::new(Tls::new(hosts));
        Root::start_on(hosts, &hosts.a, scenario, &registrar, &tls)
    }

    /// The program running `scenario` on `host`, with `registrars` (a
    /// comma-separated list) and the tree's certificate.
    fn start_on(
        hosts: &Hosts,
        host: &Host,
        scenario: &str,
        registrars: &str,
        tls: &Arc<Tls>,
    ) -> Root {
        let Tls { ca, cert, secret } = &**tls;
        let mut command = hosts.command_in(host, PROGRAM);
        command
            .args([scenario, &hosts.b.url(), &hosts.c.url()])
            .envs(ca.env(cert))
            .env(tractor::SECRET_ENV, secret)
            .env(tractor::HOST_ENV, &host.ip)
            .env(tractor::REGISTRAR_ENV, registrars)
            .env(tractor::SSH_COMMAND_ENV, hosts.ssh_command())
            .env("HOSTS_DRIFT", env!("CARGO_BIN_EXE_hosts_drift"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("start the hosts program");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Root {
            child,
            lines,
            seen: Vec::new(),
            _tls: tls.clone(),
        }
    }

    /// The next line that starts with `prefix`, within 20 s.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(err) => panic!(
                    "no line starting with {prefix:?} ({err}); the program printed {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Writes `line` to its stdin.
    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{line}").unwrap();
    }

    /// Reads its last line, `done`, sees it exit with success, and no
    /// process of the program left running on `b` or `c`.
    fn ends_cleanly(mut self, hosts: &Hosts) {
        self.expect("done");
        assert!(self.finish().success());
        for host in [&hosts.b, &hosts.c] {
            let left: Vec<u32> = programs_in(hosts, host)
                .into_iter()
                .filter(|pid| tractor_tests::is_alive(*pid))
                .collect();
            assert_eq!(left, Vec::<u32>::new(), "left on {}", host.netns);
        }
    }

    /// Waits (up to 20 s) for the program to exit.
    fn finish(mut self) -> std::process::ExitStatus {
        let pid = self.child.id();
        assert!(
            tractor_tests::exits_within_blocking(pid, Duration::from_secs(20)),
            "the root did not exit; it printed {:#?}",
            self.seen
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `"on-b at 10.20.0.2 pid 42"` (its last four words): the address and
/// the pid.
fn placed(line: &str) -> (String, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [.., "at", ip, "pid", pid] => (ip.to_string(), pid.parse().unwrap()),
        _ => panic!("not a placement: {line:?}"),
    }
}

#[test]
fn a_root_places_actors_on_two_hosts_that_find_and_stream_to_each_other() {
    let Some(hosts) = hosts_or_skip("a_root_places_actors_on_two_hosts") else {
        return;
    };
    let mut root = Root::start(&hosts, "place");
    let mut pids = HashMap::new();
    for (name, host) in [("on-b", &hosts.b), ("on-c", &hosts.c)] {
        let (ip, pid) = placed(&root.expect(&format!("{name} at")));
        assert_eq!(ip, host.ip, "{name} runs on its host");
        assert!(
            hosts.actors_in(host).contains(&pid),
            "{name}'s pid {pid} is in {}'s namespace",
            host.netns
        );
        pids.insert(name, pid);
    }
    // Each found the other through the registrar on a, and streamed.
    assert_eq!(root.expect("on-b summed"), "on-b summed 4950");
    assert_eq!(root.expect("on-c summed"), "on-c summed 45");
    // A call's error comes back typed, naming where it was raised.
    assert_eq!(
        root.expect("on-b raised"),
        "on-b raised alloc::string::String: the call on b failed on purpose (from on-b)"
    );
    let (ip, _) = placed(&root.expect("job-on-c at"));
    assert_eq!(ip, hosts.c.ip, "the run_in_actor child ran on c");
    root.ends_cleanly(&hosts);
}

#[test]
fn killing_the_root_ends_its_actors_on_every_host() {
    let Some(hosts) = hosts_or_skip("killing_the_root_ends_its_actors_on_every_host") else {
        return;
    };
    let mut root = Root::start(&hosts, "hold");
    let (_, on_b) = placed(&root.expect("on-b at"));
    let (_, on_c) = placed(&root.expect("on-c at"));
    root.expect("holding");
    // `ip netns exec` became the program: its pid is the root's.
    tractor_tests::kill(root.child.id());
    tractor_tests::assert_all_exit([on_b, on_c], Duration::from_secs(5));
    for host in [&hosts.b, &hosts.c] {
        let left = hosts.actors_in(host);
        tractor_tests::assert_all_exit(left, Duration::from_secs(5));
    }
}

#[test]
fn a_supervised_daemon_on_another_host_is_restarted_there() {
    let Some(hosts) = hosts_or_skip("a_supervised_daemon_on_another_host_is_restarted_there")
    else {
        return;
    };
    let mut root = Root::start(&hosts, "restart");
    let (ip, first) = placed(&root.expect("on-b at"));
    assert_eq!(ip, hosts.b.ip);
    let (ip, second) = placed(&root.expect("on-b again at"));
    assert_eq!(ip, hosts.b.ip, "restarted on its own host");
    assert_ne!(first, second, "a new process");
    assert!(!tractor_tests::is_alive(first));
    root.ends_cleanly(&hosts);
}

#[test]
fn cutting_a_hosts_link_fails_its_calls_and_streams_and_ends_its_actors_within_the_heartbeat_bound()
{
    let Some(hosts) = hosts_or_skip("cutting_a_hosts_link") else {
        return;
    };
    let mut root = Root::start(&hosts, "cut");
    let (_, on_b) = placed(&root.expect("on-b at"));
    // Left idle past the timeout, the channel lived on heartbeats.
    assert_eq!(root.expect("idle kept"), "idle kept: true");
    root.expect("cut now");
    let cut = std::time::Instant::now();
    hosts.set_link(&hosts.b, false);
    // The program's heartbeat: 200 ms, silent after 1 s.
    let line = root.expect("call ended");
    let noticed = cut.elapsed();
    assert!(line.contains("Err"), "{line}");
    assert!(
        noticed < Duration::from_millis(2500),
        "the call ended {noticed:?} after the cut"
    );
    let call_line = line;
    let stream_line = root.expect("stream ended");
    assert!(stream_line.contains(": Err"), "{stream_line}");
    let line = root.expect("nursery");
    assert!(line.starts_with("nursery failed"), "{line}");
    let root_lines = [call_line, stream_line, line.clone()];
    assert!(line.contains("on-b"), "the failure names the child: {line}");
    root.expect("done");
    assert!(root.finish().success());
    // The actor on b lost its parent and exited, with no link to tell it.
    assert!(
        tractor_tests::exits_within_blocking(on_b, Duration::from_secs(3)),
        "on-b outlived its cut-off parent"
    );
    eprintln!("cut noticed after {noticed:?}: {:#?}", root_lines);
}

#[test]
fn with_two_registrars_losing_one_leaves_actors_finding_each_other_through_the_other() {
    let Some(hosts) = hosts_or_skip("with_two_registrars") else {
        return;
    };
    let list = format!("{}:1616,{}:1616", hosts.a.ip, hosts.b.ip);
    let tls = Arc::new(Tls::new(&hosts));
    // Each is the first root on its host, where no registrar answers: it
    // becomes the registrar at its host's address.
    let mut on_a = Root::start_on(&hosts, &hosts.a, "registrar", &list, &tls);
    assert_eq!(on_a.expect("registrar"), "registrar true");
    let mut on_b = Root::start_on(&hosts, &hosts.b, "registrar", &list, &tls);
    assert_eq!(on_b.expect("registrar"), "registrar true");
    let mut root = Root::start_on(&hosts, &hosts.a, "survive", &list, &tls);
    root.expect("on-b summed 4950");
    root.expect("placed");
    tractor_tests::kill(on_a.child.id());
    assert!(tractor_tests::exits_within_blocking(
        on_a.child.id(),
        Duration::from_secs(5)
    ));
    root.say("the registrar on a is gone");
    assert_eq!(root.expect("told"), "told the registrar on a is gone");
    assert_eq!(root.expect("on-b summed"), "on-b summed 4950");
    assert_eq!(root.expect("on-c summed"), "on-c summed 45");
    assert_eq!(root.expect("root found"), "root found on-c: true");
    root.expect("done");
    assert!(root.finish().success());
    drop(on_b);
}

/// The pids in `host`'s namespace that run the `hosts` program.
fn programs_in(hosts: &Hosts, host: &Host) -> Vec<u32> {
    hosts
        .pids_in(host)
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe == std::path::Path::new(PROGRAM))
        })
        .collect()
}

/// `"answered on-b at IP pid P on-c at IP pid P"`: the two pids.
fn answered(line: &str) -> (u32, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [
            "answered",
            "on-b",
            "at",
            _,
            "pid",
            b,
            "on-c",
            "at",
            _,
            "pid",
            c,
        ] => (b.parse().unwrap(), c.parse().unwrap()),
        _ => panic!("not an answer: {line:?}"),
    }
}

#[test]
fn chaos_of_kills_and_cut_links_across_three_hosts_leaves_nothing_behind() {
    let Some(hosts) = hosts_or_skip("chaos_across_hosts") else {
        return;
    };
    let (seed, rounds) = tractor_tests::chaos_settings(10);
    eprintln!("chaos across hosts: seed {seed} (replay with TRACTOR_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut root = Root::start(&hosts, "chaos");
    let (_, mut on_b) = placed(&root.expect("on-b at"));
    let (_, mut on_c) = placed(&root.expect("on-c at"));
    let mut kinds = HashMap::new();
    for round in 0..rounds {
        let (kind, host) = match rng.u8(0..5) {
            0 => ("kill on-b", None),
            1 => ("kill on-c", None),
            2 => ("cut b", Some(&hosts.b)),
            3 => ("cut c", Some(&hosts.c)),
            // The root's own host: both daemons lose their parent.
            _ => ("cut a", Some(&hosts.a)),
        };
        *kinds.entry(kind).or_insert(0) += 1;
        match (kind, host) {
            ("kill on-b", _) => tractor_tests::kill(on_b),
            ("kill on-c", _) => tractor_tests::kill(on_c),
            (_, Some(host)) => {
                hosts.set_link(host, false);
                // Longer than the program's heartbeat timeout (1 s): both
                // ends give the other up while cut off.
                std::thread::sleep(Duration::from_millis(rng.u64(1200..2000)));
                hosts.set_link(host, true);
            }
            _ => unreachable!(),
        }
        root.say("check");
        let (b, c) = answered(&root.expect("answered"));
        // A cut outlasts the heartbeat timeout: the daemon cut off was
        // given up (and exited there) and answers from a new process, as a
        // killed one does.
        if matches!(kind, "kill on-b" | "cut b" | "cut a") {
            assert_ne!(b, on_b, "round {round} ({kind}): on-b restarted");
        }
        if matches!(kind, "kill on-c" | "cut c" | "cut a") {
            assert_ne!(c, on_c, "round {round} ({kind}): on-c restarted");
        }
        (on_b, on_c) = (b, c);
        for host in [&hosts.b, &hosts.c] {
            let running = programs_in(&hosts, host);
            assert!(
                running.len() <= 2,
                "round {round} ({kind}, seed {seed}): {running:?} on {}",
                host.netns
            );
        }
    }
    root.say("end");
    root.expect("done");
    assert!(root.finish().success());
    for host in [&hosts.a, &hosts.b, &hosts.c] {
        let left = programs_in(&hosts, host);
        tractor_tests::assert_all_exit(left, Duration::from_secs(5));
    }
    eprintln!("chaos across hosts: {rounds} rounds {kinds:?}, leftover processes 0");
}

#[test]
fn a_host_running_a_build_with_a_changed_signature_answers_a_clear_mismatch() {
    let Some(hosts) = hosts_or_skip("a_host_running_a_build_with_a_changed_signature") else {
        return;
    };
    let mut root = Root::start(&hosts, "drift");
    assert_eq!(root.expect("same build"), "same build answered 42");
    let line = root.expect("drifted");
    for part in [
        "drifted raised SignatureMismatch:",
        "`hosts::drift::scale` differs between the caller's build and actor drifted",
        "the caller's is `(u64) -> u64`, this one's `(u32) -> u32`",
    ] {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }
    root.ends_cleanly(&hosts);
}

#[test]
fn cancelling_a_supervised_nursery_ends_its_actors_on_every_host() {
    let Some(hosts) = hosts_or_skip("cancelling_a_supervised_nursery") else {
        return;
    };
    let mut root = Root::start(&hosts, "cancel");
    let (_, on_b) = placed(&root.expect("on-b at"));
    let (_, on_c) = placed(&root.expect("on-c at"));
    let line = root.expect("cancelled in");
    // n.cancel() returned: every child was reaped, none restarted.
    assert!(
        !tractor_tests::is_alive(on_b) && !tractor_tests::is_alive(on_c),
        "{line}"
    );
    root.ends_cleanly(&hosts);
}
