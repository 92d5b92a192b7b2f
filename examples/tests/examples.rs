//! The examples run and print what the manual's versions print.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs example `name` (built next to this test by `cargo test`) with a
/// private registrar address.
fn run(name: &str) -> Output {
    let deps = std::env::current_exe().unwrap();
    let binary: PathBuf = deps
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .unwrap();
    assert!(
        binary.exists(),
        "{} is not built; run `cargo test` on the workspace",
        binary.display()
    );
    let registrar = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap();
    Command::new(binary)
        .env("TRACTOR_REGISTRAR", registrar.to_string())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn actor_spawning_and_causality() {
    let output = run("actor_spawning_and_causality");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "Dang that's beautiful\n");
}

#[test]
fn actor_spawning_and_causality_with_daemon() {
    let output = run("actor_spawning_and_causality_with_daemon");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "have you ever seen a portal?\nhave you ever seen a portal?\n"
    );
}

#[test]
fn remote_error_propagation() {
    let output = run("remote_error_propagation");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(stdout(&output), "Look Maa that actor failed hard, hehhh!\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("raised in actor assert_err["), "{stderr}");
    assert!(stderr.contains("the value is zero"), "{stderr}");
}
