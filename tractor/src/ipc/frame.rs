//! Framing: `u32` little-endian length, then that many bytes.
//!
//! A frame holds a postcard-encoded envelope ([`Msg`](super::msg::Msg))
//! followed by its payload, the postcard bytes of the arguments, return
//! value or error. The payload is not length-prefixed again: it is simply
//! the rest of the frame, so a sender encodes straight into the outgoing
//! buffer and a receiver hands out the payload as a zero-copy slice.
//!
//! The length is checked against [`MAX_FRAME`] before anything is
//! allocated for the frame, so a hostile length costs nothing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::error::Error;

/// The largest frame accepted or sent: 64 MiB.
///
/// Larger values should be split into a stream of chunks.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

const PREFIX: usize = 4;

/// Appends one frame to `buf`: `header`, then whatever `payload` writes.
///
/// On error (encoding failed, frame too large) `buf` is left as it was.
pub(crate) fn write<H: Serialize + ?Sized>(
    buf: &mut BytesMut,
    header: &H,
    payload: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = buf.len();
    buf.put_u32_le(0);
    let written = encode_into(buf, header)
        .and_then(|()| payload(buf))
        .and_then(|()| {
            let len = buf.len() - start - PREFIX;
            if len > MAX_FRAME {
                Err(Error::Codec {
                    what: format!("a message of {len} bytes"),
                    reason: format!(
                        "it exceeds the {MAX_FRAME}-byte frame limit; send large data as a \
                         stream of smaller items"
                    ),
                })
            } else {
                Ok(len)
            }
        });
    match written {
        Ok(len) => {
            buf[start..start + PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
            Ok(())
        }
        Err(err) => {
            buf.truncate(start);
            Err(err)
        }
    }
}

/// Appends the postcard encoding of `value` to `buf`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    buf: &mut BytesMut,
    value: &T,
) -> Result<(), Error> {
    postcard::serialize_with_flavor(value, Append(buf))
        .map_err(|err| Error::codec(std::any::type_name::<T>(), err))
}

/// The length of the frame starting at `at` in `buf`, if it is all there.
///
/// `Ok(None)` means more bytes are needed; an oversized length is an error
/// before any allocation.
pub(crate) fn peek(buf: &mut BytesMut, at: usize, limit: usize) -> Result<Option<usize>, Error> {
    let available = buf.len() - at;
    if available < PREFIX {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
    if len > limit {
        return Err(Error::Protocol(format!(
            "peer announced a {len}-byte frame, over the {limit}-byte limit"
        )));
    }
    if available < PREFIX + len {
        // Room grows as bytes arrive (the reader keeps some free), never
        // on a peer's word alone.
        return Ok(None);
    }
    Ok(Some(len))
}

/// Takes the next whole frame off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed (some room for them is made, at
/// most 64 KiB at a time); an oversized length is an error before any
/// allocation.
pub(crate) fn split(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, Error> {
    if buf.len() < PREFIX {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > limit {
        return Err(Error::Protocol(format!(
            "peer announced a {len}-byte frame, over the {limit}-byte limit"
        )));
    }
    if buf.len() < PREFIX + len {
        // As in `peek`: no room is made on a peer's word alone.
        buf.reserve((PREFIX + len - buf.len()).min(64 * 1024));
        return Ok(None);
    }
    buf.advance(PREFIX);
    Ok(Some(buf.split_to(len).freeze()))
}

/// A postcard output that appends to a `BytesMut`.
struct Append<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.put_u8(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_frames() {
        let mut out = BytesMut::new();
        write(&mut out, &(7u64, "f"), |buf| encode_into(buf, &[1u8, 2, 3])).unwrap();
        write(&mut out, &9u8, |_| Ok(())).unwrap();
        let whole = out.clone();

        let mut input = BytesMut::from(&whole[..3]);
        assert!(split(&mut input, MAX_FRAME).unwrap().is_none());
        input.extend_from_slice(&whole[3..]);
        let first = split(&mut input, MAX_FRAME).unwrap().unwrap();
        let (header, rest): ((u64, &str), &[u8]) = postcard::take_from_bytes(&first).unwrap();
        assert_eq!(header, (7, "f"));
        assert_eq!(postcard::from_bytes::<[u8; 3]>(rest).unwrap(), [1, 2, 3]);
        let second = split(&mut input, MAX_FRAME).unwrap().unwrap();
        assert_eq!(&second[..], &[9]);
        assert!(input.is_empty());
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut input = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        let capacity = input.capacity();
        assert!(split(&mut input, MAX_FRAME).is_err());
        assert_eq!(input.capacity(), capacity);
    }

    #[test]
    fn failed_write_leaves_buffer_unchanged() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let err = write(&mut out, &1u8, |_| Err(Error::Cancelled));
        assert!(err.is_err());
        assert_eq!(&out[..], b"xy");
    }
}
