//! A trynamic first scene: two actors, donny and gretchen, find each other
//! through the registrar and say hello.
//!
//! ```text
//! cargo run --example a_trynamic_first_scene
//! ```
//!
//! Each actor runs `say_hello`, which waits until its partner is
//! registered, calls the partner's `hi` through a portal and relays the
//! answer to the director (the root actor).

use tractor::ActorNursery;

#[tractor::rpc]
async fn hi() -> String {
    format!("Hi my name is {}", tractor::current_actor().name())
}

#[tractor::rpc]
async fn say_hello(other_actor: String) -> tractor::Result<String> {
    let portal = tractor::wait_for_actor(&other_actor).await?;
    portal.run(hi::call()).await
}

#[tractor::main(loglevel = "info")]
async fn main() -> tractor::Result<()> {
    tractor::open_nursery(async |n: &ActorNursery| {
        println!("Alright... Action!");

        let donny = n
            .run_in_actor("donny", say_hello::call("gretchen".into()))
            .await?;
        let gretchen = n
            .run_in_actor("gretchen", say_hello::call("donny".into()))
            .await?;
        println!("{}", gretchen.result().await?);
        println!("{}", donny.result().await?);
        println!("CUTTTT CUUTT CUT!!! Donny!! You're supposed to say...");
        Ok(())
    })
    .await
}
