//! A remote panic carries its place and, when the actor runs with
//! `RUST_BACKTRACE` set, its backtrace, symbolised by whoever reads it
//! (the parent here), not by the panicking actor.

use std::process::{Command, Output};

fn run_panicker(backtrace: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_panicker"));
    command.env("TRACTOR_REGISTRAR", tractor_tests::private_registrar());
    match backtrace {
        Some(value) => command.env("RUST_BACKTRACE", value),
        None => command.env_remove("RUST_BACKTRACE"),
    };
    let output = command.output().expect("run the panicker");
    assert!(output.status.success(), "{output:?}");
    output
}

#[test]
fn a_remote_panic_carries_its_backtrace_under_rust_backtrace() {
    let output = run_panicker(Some("1"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("panic: exploded deep inside"), "{stdout}");
    assert!(
        stdout.contains("tests/src/bin/panicker.rs:17:9"),
        "the place: {stdout}"
    );
    let backtrace = stdout
        .split_once("  backtrace:")
        .map(|(_, frames)| frames)
        .unwrap_or_else(|| panic!("no backtrace in {stdout}"));
    // The panicking function, four deep, then the remote function.
    assert!(
        backtrace.matches("panicker::deep_inside").count() >= 4,
        "{backtrace}"
    );
    assert!(backtrace.contains("panicker::explode"), "{backtrace}");
    assert!(
        !backtrace.contains("std::panicking"),
        "the panic machinery is left out: {backtrace}"
    );
    // The child printed one line for the panic, not a backtrace of its own.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("panicked at tests/src/bin/panicker.rs:17:9"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

#[test]
fn without_rust_backtrace_a_remote_panic_has_its_place_only() {
    let output = run_panicker(None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("tests/src/bin/panicker.rs:17:9"),
        "the place: {stdout}"
    );
    assert!(!stdout.contains("backtrace:"), "{stdout}");
}
