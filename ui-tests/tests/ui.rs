//! Every macro misuse has a case here with the error it must give; the
//! `pass` cases show forms that must keep compiling.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
    cases.pass("ui/pass/*.rs");
}
