// The context is forgotten: the first argument is an ordinary one.
#[tractor::context]
async fn count(limit: u32) -> u32 {
    limit
}

fn main() {}
