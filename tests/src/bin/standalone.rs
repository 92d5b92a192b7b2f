//! Two programs joining one tree, for the discovery tests: run as
//! `standalone a` (the first program: it becomes the registrar) and then
//! `standalone b` (a second program that finds A's registrar and joins).
//!
//! A and B each start a daemon the other calls; A starts `late_service`
//! only once it has seen B's daemon, so B's `wait_for_actor` waits for it.
//! B then waits for a line on stdin, after which the test may have killed
//! A: B reports whether its own actors still answer and how lookups fail.

use std::io::BufRead;

use tractor::ActorNursery;

#[tractor::rpc]
async fn describe() -> String {
    let me = tractor::current_actor();
    let program = me.statespace::<String>("program").unwrap_or_default();
    format!(
        "{} in program {program} (pid {})",
        me.name(),
        std::process::id()
    )
}

async fn daemon(n: &ActorNursery, name: &str, program: &str) -> tractor::Result<tractor::Portal> {
    n.start_actor(name)
        .enable_modules([module_path!()])
        .statespace("program", program)
        .await
}

async fn program_a() -> tractor::Result<()> {
    assert!(tractor::current_actor().is_registrar());
    tractor::open_nursery(async |n: &ActorNursery| {
        let service = daemon(n, "service_a", "a").await?;
        println!("pid service_a {}", pid_of(&service).await?);
        println!("ready");
        let client = tractor::wait_for_actor("client_b").await?;
        println!("A called: {}", client.run(describe::call()).await?);
        let late = daemon(n, "late_service", "a").await?;
        println!("pid late_service {}", pid_of(&late).await?);
        std::future::pending().await
    })
    .await
}

async fn pid_of(portal: &tractor::Portal) -> tractor::Result<u32> {
    let description = portal.run(describe::call()).await?;
    let pid = description
        .rsplit_once("(pid ")
        .and_then(|(_, pid)| pid.strip_suffix(')'))
        .and_then(|pid| pid.parse().ok());
    pid.ok_or_else(|| tractor::Error::other(format!("no pid in {description:?}")))
}

async fn program_b() -> tractor::Result<()> {
    assert!(!tractor::current_actor().is_registrar());
    tractor::open_nursery(async |n: &ActorNursery| {
        let client = daemon(n, "client_b", "b").await?;
        let service = tractor::wait_for_actor("service_a").await?;
        println!("B called: {}", service.run(describe::call()).await?);
        let late = tractor::wait_for_actor("late_service").await?;
        println!("B found late: {}", late.run(describe::call()).await?);

        // The test may now kill A, the registrar, before saying go on.
        let line = tokio::task::spawn_blocking(|| std::io::stdin().lock().lines().next())
            .await
            .map_err(tractor::Error::other)?;
        if line.is_none() {
            return Err(tractor::Error::other("stdin closed"));
        }
        println!(
            "B still talks to client_b: {}",
            client.run(describe::call()).await?
        );
        match tractor::find_actor("service_a").await {
            Ok(found) => println!("B lookup answered: {:?}", found.map(|p| p.uid().clone())),
            Err(err) => println!("B lookup failed: {err}"),
        }
        n.cancel().await
    })
    .await
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("a") => program_a().await,
        Some("b") => program_b().await,
        _ => Err(tractor::Error::other("usage: standalone a|b")),
    }
}
