//! Contexts: a typed two-way dialog with a task in another actor.
//!
//! `portal.open_context(f::call(..))` starts `f` in the other actor; `f`
//! hands back a first value with [`Context::started`], then either side
//! may open the one two-way stream ([`MsgStream`]), and the caller finally
//! gets `f`'s return value from [`ContextHandle::result`]. Everything that
//! crosses is typed: the started value `S`, the items each side sends (`I`
//! from the caller, `O` from `f`) and the result.
//!
//! On the wire a context is one call id on the channel between the two
//! actors. Each direction of its stream has its own credit window (the
//! same flow control as streams, see `ipc::credit`), so a sender waits
//! and nobody overruns. Its lifetime is tied to both tasks: the caller
//! dropping its handle (or cancelling it) cancels `f`; `f` failing, or its
//! actor being cancelled or dying, ends the caller's stream and result
//! with an error; the channel closing ends both sides.

mod callee;
mod handle;
mod msg_stream;

pub use callee::Context;
pub(crate) use callee::RawDialog;
pub use handle::ContextHandle;
pub use msg_stream::MsgStream;
