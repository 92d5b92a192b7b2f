//! Service discovery: start a service, then find where the registrar and
//! the service are listening (on this host, a Unix socket in this user's
//! private directory; for other hosts, a TCP address).
//!
//! ```text
//! cargo run --example service_discovery
//! ```

use tractor::{ActorNursery, Portal};

/// Where the actor behind `portal` listens.
fn location(portal: &Portal) -> String {
    match (portal.addr(), portal.local_socket()) {
        (Some(addr), _) => addr.to_owned(),
        (None, Some(socket)) => socket.display().to_string(),
        (None, None) => "an unknown address".to_owned(),
    }
}

#[tractor::main(loglevel = "info")]
async fn main() -> tractor::Result<()> {
    let service_name = "some_actor_name";
    tractor::open_nursery(async |n: &ActorNursery| {
        n.start_actor(service_name).await?;

        let registrar = tractor::get_registrar().await?;
        println!("Registrar is listening on {}", location(&registrar));

        let service = tractor::wait_for_actor(service_name).await?;
        println!(
            "{service_name} is found at {} as {}",
            location(&service),
            service.uid()
        );

        n.cancel().await
    })
    .await
}
