struct Handle;

#[tractor::rpc]
async fn gives_handle() -> Handle {
    Handle
}

fn main() {}
