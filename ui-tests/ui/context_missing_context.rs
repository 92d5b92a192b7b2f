#[tractor::context]
async fn hello() -> String {
    "hello".to_string()
}

fn main() {}
