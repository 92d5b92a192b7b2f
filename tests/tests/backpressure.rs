//! Backpressure at the wire: peers that flood, never read, overrun their
//! credit or break the call protocol. Every queue a peer can fill is
//! bounded, so the actor's memory stays bounded and it keeps serving its
//! tree; a peer that breaks the protocol loses its channel, and one that
//! overruns a stream loses that stream only.
//!
//! The attackers speak the wire format directly (`tractor_tests::wire`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tractor_tests::wire::{
    Msg, SECRET, Sink, authenticate, closed_by_peer, message, read_frame, vm_data_kib,
};

/// How much the victim's memory may grow under any one attack.
const BOUND_KIB: u64 = 64 * 1024;

fn sink() -> Sink {
    Sink::start(env!("CARGO_BIN_EXE_sink"))
}

/// A postcard `Vec<u8>` argument list of `len` bytes: `(Vec<u8>,)`.
fn bytes_arg(len: usize) -> Vec<u8> {
    let mut arg = postcard::to_allocvec(&(len as u64)).unwrap();
    arg.resize(arg.len() + len, 0xAB);
    arg
}

/// Samples the victim's VmData while `attack` runs for `seconds`, pinging
/// the tree once per sample; the largest growth seen, in KiB.
fn peak_growth_during(sink: &mut Sink, seconds: u64) -> u64 {
    let before = vm_data_kib(sink.pid);
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut peak = 0;
    let mut pings = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(vm_data_kib(sink.pid).saturating_sub(before));
        // The victim keeps answering another client meanwhile.
        sink.still_serving();
        pings += 1;
    }
    assert!(pings >= 5, "the tree answered {pings} pings");
    peak
}

#[test]
fn a_flood_of_calls_from_a_peer_that_never_reads_stays_bounded() {
    let mut sink = sink();
    sink.still_serving();
    let stream = sink.authenticated(SECRET.as_bytes());
    let arg = bytes_arg(1 << 20);
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let flood = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(10);
        let mut sent = 0u64;
        let mut id = 1;
        while Instant::now() < end {
            let call = message(
                &Msg::Call {
                    id,
                    func: "sink::echo_bytes",
                    timeout_ms: None,
                },
                &arg,
            );
            match writer.write_all(&call) {
                Ok(()) => {
                    sent += 1;
                    id += 1;
                }
                // The victim stopped reading: its socket pushes back.
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => panic!("the victim dropped the flooding channel: {err}"),
            }
        }
        sent
    });
    let peak = peak_growth_during(&mut sink, 10);
    let sent = flood.join().unwrap();
    println!(
        "flood: {sent} calls of 1 MiB written in 10 s; victim VmData grew by at most {peak} KiB"
    );
    assert!(
        peak <= BOUND_KIB,
        "the victim grew by {peak} KiB under a flood ({sent} MiB written)"
    );
    assert!(sent >= 8, "the flood got going ({sent} calls)");
    // It was pushed back, not drained: far less than 10 s of loopback.
    assert!(
        sent < 2000,
        "the victim read {sent} MiB it could not answer"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sink.still_serving();
    sink.finish();
}

#[test]
fn a_consumer_that_stops_reading_keeps_the_producer_bounded() {
    let mut sink = sink();
    let mut stream = sink.authenticated(SECRET.as_bytes());
    // A huge window and unlimited credit: only the outbox can hold the
    // producer back.
    let open = message(
        &Msg::OpenStream {
            id: 1,
            func: "sink::firehose",
            window: u32::MAX,
            window_bytes: u32::MAX,
        },
        &postcard::to_allocvec(&(64u32 * 1024,)).unwrap(),
    );
    stream.write_all(&open).unwrap();
    stream
        .write_all(&message(
            &Msg::Credit {
                id: 1,
                n: u32::MAX,
                bytes: u32::MAX,
            },
            &[],
        ))
        .unwrap();
    let first = read_frame(&mut stream).expect("the stream starts");
    let (msg, _): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&first).unwrap();
    assert!(matches!(msg, Msg::Yield { id: 1, .. }), "{msg:?}");
    // ... and then never read again.
    let peak = peak_growth_during(&mut sink, 5);
    println!("stalled consumer: producer VmData grew by at most {peak} KiB");
    assert!(peak <= BOUND_KIB, "the producer grew by {peak} KiB");
    drop(stream);
    sink.still_serving();
    sink.finish();
}

#[test]
fn a_producer_that_ignores_credit_loses_its_stream_not_its_channel() {
    // Ten items on a window of four: the fifth is one too many.
    overrun(
        |id| {
            (0..10u64)
                .flat_map(|n| {
                    message(
                        &Msg::Yield { id, n: 1 },
                        &postcard::to_allocvec(&n).unwrap(),
                    )
                })
                .collect()
        },
        "5 items with credit for 4",
    );
}

#[test]
fn a_producer_that_ignores_byte_credit_loses_its_stream_not_its_channel() {
    // Two frames of one item each, well within the window of four items,
    // but the first overshoots the 1 KiB byte window (as a batch may):
    // the second had no credit to start on.
    overrun(
        |id| {
            let mut burst = message(&Msg::Yield { id, n: 1 }, &[0u8; 1500]);
            burst.extend(message(&Msg::Yield { id, n: 1 }, &[2]));
            burst
        },
        "a batch after 1500 bytes with credit for 1024 bytes",
    );
}

/// Mallory registers with the root, which then consumes her stream
/// `mallory::numbers` (a window of 4 items and 1 KiB) over the channel she
/// opened; she answers with `burst(id)`. The stream must fail with a
/// message holding `expected`, and the channel live on.
fn overrun(burst: impl Fn(u64) -> Vec<u8>, expected: &str) {
    let mut sink = sink();
    // Mallory registers with the root, which then consumes her stream over
    // the channel she opened.
    let stream = UnixStream::connect(&sink.registrar).unwrap();
    let mut mallory = authenticate(stream, SECRET.as_bytes(), "mallory", true);
    sink.command("consume mallory");
    let opened = read_frame(&mut mallory).expect("the root opens the stream");
    let (msg, _): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&opened).unwrap();
    let Msg::OpenStream {
        id, func, window, ..
    } = msg
    else {
        panic!("expected the stream to open, got {msg:?}");
    };
    assert_eq!((func, window), ("mallory::numbers", 4));
    mallory.write_all(&burst(id)).unwrap();
    let outcome = sink.line();
    assert!(
        outcome.contains("protocol error") && outcome.contains(expected),
        "the stream failed for overrunning its credit: {outcome}"
    );
    // The channel lives on: the root's next call arrives on it (after the
    // cancel of the failed stream) and gets answered.
    let call_id = loop {
        let frame = read_frame(&mut mallory).expect("the channel is still open");
        let (msg, _): (Msg<'_>, &[u8]) = postcard::take_from_bytes(&frame).unwrap();
        match msg {
            Msg::Cancel { id: cancelled } => assert_eq!(cancelled, id),
            Msg::Call {
                id,
                func: "mallory::answer",
                ..
            } => break id,
            other => panic!("unexpected {other:?}"),
        }
    };
    mallory
        .write_all(&message(
            &Msg::Return { id: call_id },
            &postcard::to_allocvec(&42u64).unwrap(),
        ))
        .unwrap();
    assert_eq!(sink.line(), "answer 42");
    sink.still_serving();
    drop(mallory);
    sink.finish();
}

#[test]
fn a_reused_call_id_closes_the_channel() {
    let mut sink = sink();
    let mut stream = sink.authenticated(SECRET.as_bytes());
    let call = message(
        &Msg::Call {
            id: 5,
            func: "sink::sleep_forever",
            timeout_ms: None,
        },
        &[],
    );
    stream.write_all(&call).unwrap();
    stream.write_all(&call).unwrap();
    assert!(
        closed_by_peer(&mut stream),
        "a second call 5 while the first runs ends the channel"
    );
    sink.still_serving();
    sink.finish();
}

#[test]
fn a_cancel_request_with_an_absurd_grace_closes_the_channel() {
    let mut sink = sink();
    let mut stream = sink.authenticated(SECRET.as_bytes());
    stream
        .write_all(&message(
            &Msg::CancelActor {
                id: 1,
                grace_ms: 3_600_000,
            },
            &[],
        ))
        .unwrap();
    assert!(
        closed_by_peer(&mut stream),
        "a grace of an hour is refused by closing the channel"
    );
    // And the victim did not start cancelling itself.
    sink.still_serving();
    sink.finish();
}
