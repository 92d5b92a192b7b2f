//! Builds that disagree about a function: every call a stub makes names
//! the function's argument and result types after its wire name, and an
//! actor whose function of that name has others answers a clear error
//! naming both, rather than decoding the arguments as something else.
//! Spoken here over a raw connection, as a build with a changed signature
//! would (see `tractor_tests::wire`), to the `sink` program's victim.

use std::io::Write;

use tractor_tests::wire::{Msg, SECRET, Sink, message, read_frame};

/// What the victim answers call `id` (its envelope and payload).
fn answer(stream: &mut std::os::unix::net::UnixStream, id: u64) -> (String, Vec<u8>) {
    loop {
        let frame = read_frame(stream).expect("an answer");
        let (msg, payload): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&frame).unwrap();
        match msg {
            Msg::Return { id: answered } | Msg::Error { id: answered } if answered == id => {
                return (format!("{msg:?}"), payload.to_vec());
            }
            _ => {}
        }
    }
}

fn call(stream: &mut std::os::unix::net::UnixStream, id: u64, func: &str, arg: &[u8]) {
    let frame = message(
        &Msg::Call {
            id,
            func,
            timeout_ms: None,
        },
        arg,
    );
    stream.write_all(&frame).unwrap();
}

#[test]
fn a_call_from_a_build_with_another_signature_gets_an_error_naming_both() {
    let mut sink = Sink::start(env!("CARGO_BIN_EXE_sink"));
    let mut stream = sink.authenticated(SECRET.as_bytes());

    // The same signature as the victim's build: answered.
    let seven = postcard::to_allocvec(&7u64).unwrap();
    call(&mut stream, 1, "sink::echo\u{1f}(u64) -> u64", &seven);
    let (envelope, payload) = answer(&mut stream, 1);
    assert!(envelope.starts_with("Return"), "{envelope}");
    assert_eq!(postcard::from_bytes::<u64>(&payload).unwrap(), 7);

    // Another build's `echo` takes and returns u32: refused, by name.
    let seven = postcard::to_allocvec(&7u32).unwrap();
    call(&mut stream, 2, "sink::echo\u{1f}(u32) -> u32", &seven);
    let (envelope, payload) = answer(&mut stream, 2);
    assert!(envelope.starts_with("Error"), "{envelope}");
    let error = String::from_utf8_lossy(&payload);
    for part in [
        "SignatureMismatch",
        "`sink::echo` differs between the caller's build and actor",
        "the caller's is `(u32) -> u32`, this one's `(u64) -> u64`",
    ] {
        assert!(error.contains(part), "{part:?} in {error:?}");
    }

    // A call by name alone (`Call::by_name`) is not checked.
    call(
        &mut stream,
        3,
        "sink::echo",
        &postcard::to_allocvec(&9u64).unwrap(),
    );
    let (envelope, payload) = answer(&mut stream, 3);
    assert!(envelope.starts_with("Return"), "{envelope}");
    assert_eq!(postcard::from_bytes::<u64>(&payload).unwrap(), 9);

    // The channel and the actor live on.
    sink.still_serving();
    drop(stream);
    sink.finish();
}
