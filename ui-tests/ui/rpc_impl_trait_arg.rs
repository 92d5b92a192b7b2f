#[tractor::rpc]
async fn takes_any(value: impl std::fmt::Display) -> String {
    value.to_string()
}

fn main() {}
