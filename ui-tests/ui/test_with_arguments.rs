#[tractor::test]
async fn takes_input(input: u32) {
    let _ = input;
}

fn main() {}
