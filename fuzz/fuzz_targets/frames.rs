//! Untrusted bytes into everything that reads input from other processes:
//! the decoders alone (frame splitting, the envelope, error trees, the
//! opening exchange), then the real paths over a socket — an accepting
//! opening, and a live channel's reader with a call and a stream waiting,
//! so that stream items go through its batching (`peek`/`drain`). Nothing
//! may panic, hang, overflow the stack or allocate on a peer's word.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tractor::__private::decode_untrusted(data);
    tractor::__private::drive_untrusted(data);
});
