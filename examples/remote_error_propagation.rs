//! Remote error propagation: an error in any actor comes back to its
//! parent, and one failing actor cancels all its siblings
//! (one-cancels-all).
//!
//! ```text
//! cargo run --example remote_error_propagation   # exits with status 1
//! ```

use tractor::ActorNursery;

#[tractor::rpc]
async fn assert_err(value: u32) {
    assert!(value != 0, "the value is zero");
}

#[tractor::main]
async fn main() -> tractor::Result<()> {
    let result = tractor::open_nursery(async |n: &ActorNursery| {
        for i in 0..3 {
            n.start_actor(format!("actor_{i}"))
                .enable_modules([module_path!()])
                .await?;
        }
        // one actor that fails immediately
        n.run_in_actor("assert_err", assert_err::call(0)).await?;
        Ok(())
    })
    .await;

    // The nursery returns the remote error (the failed assertion), and the
    // three daemons have been cancelled.
    if let Err(err) = &result {
        if !err.remote_errors().is_empty() {
            println!("Look Maa that actor failed hard, hehhh!");
        }
    }
    result
}
