//! Inter-process communication between actors.
//!
//! Actors on one host talk over Unix sockets in their user's private
//! directory ([`local`]); TCP, with TLS unless plain TCP is chosen, is for
//! other hosts ([`tls`], [`transport`]). Each connection carries length-prefixed [`frame`]s whose
//! envelopes ([`msg`]) are postcard-encoded; after a [`handshake`] it
//! becomes a [`Channel`] that multiplexes calls in both directions, written
//! by one batching writer ([`outbox`]) and read by one [`reader`].

pub(crate) mod channel;
pub(crate) mod credit;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod heartbeat;
pub(crate) mod limits;
pub(crate) mod local;
pub(crate) mod msg;
pub(crate) mod outbox;
pub(crate) mod reader;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod unix_stream;
pub(crate) mod untrusted;

pub(crate) use channel::{CallKind, Channel, Delivery, Inbound, Incoming, Served};
pub(crate) use credit::Credit;
