//! Untrusted bytes into the code that reads them from other processes,
//! without a peer: what the fuzz target drives.
//!
//! [`decode`] runs the decoders alone (frame splitting, the envelope, error
//! trees, opening messages). [`drive`] goes through the real paths: the
//! bytes arrive on a socket, first at an actor's accepting side of the
//! opening exchange, then at a live channel's reader — with a call and a
//! stream of ours waiting, so that answers, stream items in runs
//! (`reader::drain`'s batching), credit and cancels all meet state to act
//! on. Neither may panic, hang or allocate on the bytes' say-so.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::channel::{Channel, Inbound, Incoming, ReservedCall};
use super::frame::{self, MAX_FRAME};
use super::handshake::{self, Opened};
use super::limits::Admission;
use super::msg::{Handshake, Msg, WireError};
use super::reader;
use super::transport::Stream;
use super::unix_stream::LocalStream;
use crate::auth::Secret;
use crate::ipc::credit::Window;
use crate::uid::ActorUid;

/// Splits `data` into frames and decodes each every way a peer's frame is
/// decoded.
pub(crate) fn decode(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = frame::split(&mut buf, MAX_FRAME) {
        if let Ok((Msg::Error { .. }, payload)) = reader::decode(&frame)
            && let Ok(error) = postcard::from_bytes::<WireError>(payload)
        {
            let _ = error.into_error().to_string();
        }
        handshake::decode_untrusted(&frame);
    }
}

/// An actor that refuses everything a peer asks of it.
struct Refuses;

impl Inbound for Refuses {
    fn call(&self, _: &Channel, _: Incoming<'_>) -> crate::Result<()> {
        Ok(())
    }
    fn cancel_actor(&self, _: &Channel, _: u64, _: Duration, _: Admission) {}
    fn leave(&self, _: &Channel, _: u64, _: Admission) {}
    fn closed(&self, _: &Channel) {}
}

/// Feeds `data` to an accepting opening and then to a live channel's
/// reader, each over a real socket; whether both ended by themselves (the
/// opening with an outcome, the reader at the end of the bytes) rather
/// than by a deadline.
pub(crate) fn drive(data: &[u8]) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return false;
    };
    runtime.block_on(async {
        let mut ended = true;
        let secret = Secret::for_root(Some(b"the fuzzing tree's secret")).ok();
        let me = ActorUid::new("fuzzed");
        if let (Some(secret), Ok((ours, mut theirs))) = (secret, LocalStream::pair()) {
            let _ = theirs.write_all(data).await;
            let _ = theirs.shutdown().await;
            let accepted = handshake::accept(Stream::Unix(ours), &secret, &me, |_| Some([1; 32]));
            ended &= tokio::time::timeout(Duration::from_secs(1), accepted)
                .await
                .is_ok();
        }
        let Ok((ours, mut theirs)) = LocalStream::pair() else {
            return false;
        };
        let opened = Opened {
            stream: Stream::Unix(ours),
            peer: Handshake::new(ActorUid::new("peer"), None, None, false),
            leftover: BytesMut::new(),
        };
        // A main call sent before the channel (id 0), a call (id 1), a
        // stream (id 2) and a context (id 3) of ours, for the bytes to
        // answer.
        let main = ReservedCall { deadline: None };
        let channel = Channel::start(
            opened,
            &[],
            Some(main),
            Arc::new(Refuses),
            4,
            crate::ipc::heartbeat::DEFAULT,
        );
        let call = channel.call("fuzz::call", &[], None).await;
        let window = Window {
            items: 4,
            bytes: 64,
        };
        let stream = channel.open_stream("fuzz::stream", &[], window).await;
        let context = channel.open_context("fuzz::context", &[], window).await;
        let main = channel.take_main_call();
        let _ = theirs.write_all(data).await;
        let _ = theirs.shutdown().await;
        ended &= tokio::time::timeout(Duration::from_secs(1), channel.closed())
            .await
            .is_ok();
        channel.close();
        drop((main, call, stream, context));
        ended
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEDS: [&[u8]; 7] = [
        include_bytes!("../../../fuzz/seeds/frames/call"),
        include_bytes!("../../../fuzz/seeds/frames/context"),
        include_bytes!("../../../fuzz/seeds/frames/pushes"),
        include_bytes!("../../../fuzz/seeds/frames/credit"),
        include_bytes!("../../../fuzz/seeds/frames/error_multi"),
        include_bytes!("../../../fuzz/seeds/frames/return"),
        include_bytes!("../../../fuzz/seeds/frames/yields"),
    ];

    /// The seeds, their concatenations and random mutations of them, as a
    /// short fuzzing round on every test run.
    #[test]
    fn untrusted_bytes_end_cleanly() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut inputs: Vec<Vec<u8>> = SEEDS.iter().map(|seed| seed.to_vec()).collect();
        inputs.push(SEEDS.concat());
        for _ in 0..200 {
            let mut input = SEEDS[next() as usize % SEEDS.len()].to_vec();
            input.extend_from_slice(SEEDS[next() as usize % SEEDS.len()]);
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % input.len();
                input[at] = next() as u8;
            }
            inputs.push(input);
        }
        for input in &inputs {
            decode(input);
            assert!(drive(input), "stuck on {input:?}");
        }
    }
}
