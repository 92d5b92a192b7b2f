struct Plain {
    value: u32,
}

#[tractor::rpc]
async fn takes_plain(plain: Plain) -> u32 {
    plain.value
}

fn main() {}
