//! Service discovery: start a service, then find where the registrar and
//! the service are listening.
//!
//! ```text
//! cargo run --example service_discovery
//! ```

use tractor::ActorNursery;

#[tractor::main(loglevel = "info")]
async fn main() -> tractor::Result<()> {
    let service_name = "some_actor_name";
    tractor::open_nursery(async |n: &ActorNursery| {
        n.start_actor(service_name).await?;

        let registrar = tractor::get_registrar().await?;
        println!(
            "Registrar is listening on {}",
            registrar.addr().unwrap_or("an unknown address")
        );

        let service = tractor::wait_for_actor(service_name).await?;
        println!(
            "{service_name} is found at {} as {}",
            service.addr().unwrap_or("an unknown address"),
            service.uid()
        );

        n.cancel().await
    })
    .await
}
