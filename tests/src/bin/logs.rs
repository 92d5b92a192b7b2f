//! Logs from children: one inherits the root's level (info), one is
//! spawned with its own (debug).

use tractor::ActorNursery;

#[tractor::rpc]
async fn say(text: String) {
    tracing::info!("info: {text}");
    tracing::debug!("debug: {text}");
}

#[tractor::main(loglevel = "info")]
async fn main() -> tractor::Result<()> {
    tracing::info!("info: from the root");
    tractor::open_nursery(async |n: &ActorNursery| {
        let inheritor = n
            .run_in_actor("inheritor", say::call("inherited".into()))
            .await?;
        inheritor.result().await?;
        let chatty = n
            .run_in_actor("chatty", say::call("overridden".into()))
            .loglevel("debug")
            .await?;
        chatty.result().await
    })
    .await
}
