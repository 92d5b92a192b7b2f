//! The examples run and print what the manual's versions print.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tractor_tests::private_registrar;

/// Where `cargo test` built example `name`.
fn example(name: &str) -> PathBuf {
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
    binary
}

/// Runs example `name` (built next to this test by `cargo test`) with a
/// private registrar address.
fn run(name: &str) -> Output {
    run_within(name, Duration::from_secs(60))
}

/// Like [`run`], failing (and killing the example) after `limit`.
fn run_within(name: &str, limit: Duration) -> Output {
    run_with_registrar(name, limit, &private_registrar())
}

fn run_with_registrar(name: &str, limit: Duration, registrar: &str) -> Output {
    let binary = example(name);
    let child = Command::new(binary)
        .env("TRACTOR_REGISTRAR", registrar)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{name} did not finish within {limit:?}");
        }
    }
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

#[test]
fn asynchronous_generators() {
    let output = run("asynchronous_generators");
    assert!(output.status.success(), "{output:?}");
    let stdout = stdout(&output);
    let mut lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.pop(), Some("stream terminated"));
    // About one item per 10 ms for a second.
    assert!((20..=110).contains(&lines.len()), "{} items", lines.len());
    assert!(
        lines
            .iter()
            .all(|line| *line == "I can see these little future bubble things")
    );
}

#[test]
fn full_fledged_streaming_service_within_three_seconds() {
    let started = Instant::now();
    let output = run_within("full_fledged_streaming_service", Duration::from_secs(3));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(output.status.success(), "{output:?}");
    let stdout = stdout(&output);
    assert!(stdout.contains("AGGREGATOR COMPLETE!"), "{stdout}");
    assert!(
        stdout.ends_with("received all 1000 values, once each, in order\n"),
        "{stdout}"
    );
}

#[test]
fn a_trynamic_first_scene() {
    let output = run("a_trynamic_first_scene");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "Alright... Action!\n\
         Hi my name is donny\n\
         Hi my name is gretchen\n\
         CUTTTT CUUTT CUT!!! Donny!! You're supposed to say...\n"
    );
}

#[test]
fn echo_context() {
    let output = run("echo_context");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "hello donny, say something\n\
         ya -> YA\n\
         the dude abides -> THE DUDE ABIDES\n\
         over the line! -> OVER THE LINE!\n\
         shouted back 3 lines\n"
    );
}

#[test]
fn supervised_workers() {
    let output = run("supervised_workers");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "3 workers up under a one_for_one supervisor\n\
         job 0: 1229 primes below 10000 (on worker-0)\n\
         job 1: 2262 primes below 20000 (on worker-1)\n\
         job 2: 3245 primes below 30000 (on worker-2)\n\
         job 3: 4203 primes below 40000 (on worker-0)\n\
         job 4: worker-1 crashed; retrying the job\n\
         job 4: 5133 primes below 50000 (on worker-1, restarted)\n\
         job 5: 6057 primes below 60000 (on worker-2)\n\
         all jobs done; every worker process reaped\n"
    );
}

#[test]
fn service_discovery() {
    let registrar = private_registrar();
    let output = run_with_registrar("service_discovery", Duration::from_secs(60), &registrar);
    assert!(output.status.success(), "{output:?}");
    let stdout = stdout(&output);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // On one host, actors listen on Unix sockets named after their uuids.
    let socket = |line: &str, prefix: &str| {
        let path = line.strip_prefix(prefix).unwrap_or_default();
        let path = path.split(" as ").next().unwrap_or_default();
        path.starts_with('/') && path.ends_with(".sock")
    };
    assert!(socket(lines[0], "Registrar is listening on "), "{stdout}");
    assert!(socket(lines[1], "some_actor_name is found at "), "{stdout}");
    assert!(lines[1].contains(" as some_actor_name["), "{stdout}");
}

#[test]
fn ctrl_c_stops_the_whole_tree_within_two_seconds() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;

    let binary = example("ticker");
    let mut child = Command::new(binary)
        .env("TRACTOR_REGISTRAR", private_registrar())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, as a shell gives a foreground job.
        .process_group(0)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "tick 0", "the tree is up");
    let root = child.id();
    let tree = tractor_tests::descendants(root);
    assert!(!tree.is_empty(), "the clock actor is a descendant");

    // Ctrl-C: SIGINT to the whole foreground group.
    let sent = Instant::now();
    tractor_tests::signal_group(root, rustix::process::Signal::INT);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let output = finished
        .recv_timeout(Duration::from_secs(2))
        .expect("the program exits within 2 s of Ctrl-C")
        .unwrap();
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIGINT received"), "{stderr}");
    tractor_tests::assert_all_exit(tree, Duration::from_millis(500));
}

#[test]
fn embedded_root_options_in_code_win_over_the_environment() {
    let binary = example("embedded_root");
    // Both would stop the program if they were used: a 5-byte secret and
    // an unknown start method. The example sets both in code.
    let output = Command::new(binary)
        .env("TRACTOR_REGISTRAR", private_registrar())
        .env(tractor::SECRET_ENV, "short")
        .env(tractor::START_METHOD_ENV, "teleport")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "the sum of the first ten squares is 385\n");
}
