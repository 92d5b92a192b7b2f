//! Logging: lines carry the actor they came from; children inherit the
//! root's level unless spawned with their own.

use std::process::Command;

#[test]
fn children_log_with_their_name_at_the_inherited_or_given_level() {
    let output = Command::new(env!("CARGO_BIN_EXE_logs"))
        .env("TRACTOR_REGISTRAR", tractor_tests::private_registrar())
        .env("NO_COLOR", "1")
        .output()
        .expect("run the logs program");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line_with = |text: &str| stderr.lines().find(|line| line.contains(text));

    let root = line_with("info: from the root").expect("the root logs");
    assert!(root.starts_with("[root["), "{root}");

    let inherited = line_with("info: inherited").expect("the child inherits info");
    assert!(inherited.starts_with("[inheritor["), "{inherited}");
    assert!(inherited.contains("rpc{"), "the call's span: {inherited}");
    assert!(
        inherited.contains("actor=inheritor["),
        "the span carries the actor: {inherited}"
    );
    assert!(
        line_with("debug: inherited").is_none(),
        "info hides debug:\n{stderr}"
    );

    let overridden = line_with("debug: overridden").expect("the child's own level");
    assert!(overridden.starts_with("[chatty["), "{overridden}");
}
