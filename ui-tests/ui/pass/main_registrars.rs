// Several registrars, for a tree across hosts: the expansion type-checks.
// Not run (it would look for those registrars): the entry point is
// another function.
mod tree {
    #[tractor::main(registrar = ["10.0.0.1:1616", "10.0.0.2:1616"])]
    pub async fn main() {}
}

fn main() {
    let _never_run: fn() = tree::main;
}
