//! Signals at a real program (`tree`: root -> depth1 -> depth0): SIGINT and
//! SIGTERM stop the whole tree in order; a second one kills it at once;
//! SIGINT at a child alone changes nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tractor_tests::{descendants, is_alive, private_registrar, signal};

struct Tree {
    child: Child,
    pids: HashMap<String, u32>,
    _lines: Lines<BufReader<ChildStdout>>,
}

fn start_tree() -> Tree {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tree"))
        .env("TRACTOR_REGISTRAR", private_registrar())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start the tree program");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut pids = HashMap::new();
    while pids.len() < 3 {
        let line = lines
            .next()
            .expect("the tree announces its actors")
            .unwrap();
        if let Some(["actor", name, pid]) = line.split(' ').collect::<Vec<_>>().get(..3) {
            pids.insert(name.to_string(), pid.parse().unwrap());
        }
    }
    Tree {
        child,
        pids,
        _lines: lines,
    }
}

impl Tree {
    fn root(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to `limit`) for the program to exit.
    fn exit_within(self, limit: Duration) -> (ExitStatus, String) {
        let (done, finished) = std::sync::mpsc::channel();
        let child = self.child;
        std::thread::spawn(move || done.send(child.wait_with_output()));
        let output = finished
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the program did not exit within {limit:?}"))
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

#[test]
fn sigterm_at_the_root_stops_the_tree_within_two_seconds() {
    let tree = start_tree();
    let everyone = descendants(tree.root());
    assert!(everyone.len() >= 2, "depth1 and depth0 run: {everyone:?}");
    let sent = Instant::now();
    signal(tree.root(), Signal::TERM);
    let (status, stderr) = tree.exit_within(Duration::from_secs(2));
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    tractor_tests::assert_all_exit(everyone, Duration::from_millis(500));
}

#[test]
fn sigint_at_a_child_alone_leaves_the_tree_whole() {
    let tree = start_tree();
    let depth1 = tree.pids["depth1"];
    signal(depth1, Signal::INT);
    // The child handles and ignores it; the root is asked to stop next, and everything
    // stops in order, depth1 included (so it was alive and answering).
    assert!(is_alive(depth1));
    let everyone = descendants(tree.root());
    assert!(everyone.contains(&depth1));
    signal(tree.root(), Signal::INT);
    let (status, stderr) = tree.exit_within(Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        !stderr.contains("exited unexpectedly"),
        "nothing died before the root said so: {stderr}"
    );
    tractor_tests::assert_all_exit(everyone, Duration::from_millis(500));
}

#[test]
fn a_second_interrupt_kills_at_once() {
    let tree = start_tree();
    let everyone = descendants(tree.root());
    // A stopped child cannot answer a cancel: the graceful path would wait
    // for its grace period.
    signal(tree.pids["depth1"], Signal::STOP);
    let mut tree = tree;
    let mut stderr_lines = BufReader::new(tree.child.stderr.take().unwrap()).lines();
    signal(tree.root(), Signal::INT);
    // Wait until the first one is being handled (signals sent back to back
    // may arrive as one).
    let heard = stderr_lines
        .next()
        .expect("the root says it got SIGINT")
        .unwrap();
    assert!(heard.contains("SIGINT received"), "{heard}");
    let second = Instant::now();
    signal(tree.root(), Signal::INT);
    let (status, stderr) = tree.exit_within(Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        second.elapsed() < Duration::from_millis(400),
        "the second SIGINT did not cut the grace period short: {:?}",
        second.elapsed()
    );
    tractor_tests::assert_all_exit(everyone, Duration::from_secs(2));
}
