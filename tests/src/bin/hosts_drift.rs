//! Another build of `hosts`'s remote function `hosts::drift::scale`, whose
//! signature has changed (`u32` where `hosts` has `u64`): placed on a
//! test host with `.program(..)`, it must answer `hosts`'s calls with a
//! clear mismatch, never a garbled decode (see tests/tests/hosts.rs).

/// Doubles `x`, in this build's types.
#[tractor::rpc(name = "hosts::drift::scale")]
async fn scale(x: u32) -> u32 {
    x * 2
}

fn main() {
    // Only ever started as a child actor, which this call becomes.
    tractor::Root::builder().run(async {
        eprintln!("hosts_drift is started as a child actor only");
    });
}
