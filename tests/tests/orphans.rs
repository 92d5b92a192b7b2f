//! No orphans: killing any actor, the root included, takes its whole
//! subtree down. These tests run a real program (`tree`) and kill parts of
//! it with SIGKILL.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tractor_tests::{exits_within, is_alive, kill, private_registrar};

/// Starts `tree` and returns it with the pid of each of its actors.
async fn start_tree() -> (Child, HashMap<String, u32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tree"))
        .env("TRACTOR_REGISTRAR", private_registrar())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the tree program");
    let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().unwrap()).unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut pids = HashMap::new();
    while pids.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the tree announces its actors")
            .unwrap()
            .expect("the tree printed fewer than three actors");
        if let Some(["actor", name, pid]) = line.split(' ').collect::<Vec<_>>().get(..3) {
            pids.insert(name.to_string(), pid.parse().unwrap());
        }
    }
    (child, pids)
}

#[tokio::test]
async fn killing_the_root_leaves_no_child_alive_two_seconds_later() {
    let (mut root, pids) = start_tree().await;
    assert_eq!(pids["root"], root.id());
    root.kill().unwrap();
    root.wait().unwrap();
    for name in ["depth1", "depth0"] {
        assert!(
            exits_within(pids[name], Duration::from_secs(2)).await,
            "{name} outlived its SIGKILLed root"
        );
    }
}

#[tokio::test]
async fn killing_a_middle_actor_ends_its_child_within_a_second_and_fails_the_root() {
    let (mut root, pids) = start_tree().await;
    kill(pids["depth1"]);
    assert!(
        exits_within(pids["depth0"], Duration::from_secs(1)).await,
        "depth0 outlived its SIGKILLed parent by more than a second"
    );
    // The root hears that depth1 died, cancels its nursery and fails.
    let status = tokio::task::spawn_blocking(move || root.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "the root reports the death: {status}"
    );
    assert!(!is_alive(pids["depth0"]));
}
