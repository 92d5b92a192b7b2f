//! The link-time table of remote functions.
//!
//! Every `#[tractor::rpc]` adds one [`RpcEntry`] to [`RPC_TABLE`], a
//! `linkme` distributed slice, so the table is complete before `main` runs
//! and needs no registration code. A child actor is the same executable as
//! its parent, so both hold the same table: a call names a function by its
//! wire name (`module::path::fn`) and the callee finds it here.
//!
//! Beware the linker: a crate that only contributes entries and is never
//! otherwise referenced is dropped from the binary, and its functions with
//! it. Reference something from such a crate (or `use it as _;`).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::call::split_wire;
use crate::error::Error;
use crate::invoke::{Invocation, panic_failure};

/// Every remote function linked into this binary.
#[linkme::distributed_slice]
pub static RPC_TABLE: [RpcEntry];

/// One remote function: its wire name and how to invoke it.
pub struct RpcEntry {
    /// Its name and signature (see [`split_wire`]).
    wire: &'static str,
    invoke: fn(&[u8]) -> Invocation,
}

impl RpcEntry {
    /// An entry for the function `wire` names: its full module path, and
    /// its signature after [`SIGNATURE_MARK`].
    pub const fn new(wire: &'static str, invoke: fn(&[u8]) -> Invocation) -> Self {
        RpcEntry { wire, invoke }
    }

    pub(crate) fn name(&self) -> &'static str {
        split_wire(self.wire).0
    }

    /// Its argument and result types, as its build wrote them.
    pub(crate) fn signature(&self) -> Option<&'static str> {
        split_wire(self.wire).1
    }

    /// The module the function is defined in: what `enable_modules` names.
    pub(crate) fn module(&self) -> &'static str {
        module_of(self.name())
    }

    /// Decodes `args` and starts the function (panics included in the
    /// reply, never unwinding into the caller).
    pub(crate) fn invoke(&self, args: &[u8]) -> Invocation {
        std::panic::catch_unwind(|| (self.invoke)(args))
            .unwrap_or_else(|panic| Invocation::failure(panic_failure(&*panic)))
    }
}

pub(crate) fn module_of(wire_name: &str) -> &str {
    let (name, _) = split_wire(wire_name);
    name.rsplit_once("::").map_or("", |(module, _)| module)
}

/// The table as a map, built on first use.
fn table() -> &'static Result<HashMap<&'static str, &'static RpcEntry>, String> {
    static TABLE: OnceLock<Result<HashMap<&'static str, &'static RpcEntry>, String>> =
        OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::with_capacity(RPC_TABLE.len());
        for entry in RPC_TABLE.iter() {
            if map.insert(entry.name(), entry).is_some() {
                return Err(format!(
                    "two remote functions are registered as `{}`; is the same crate linked \
                     twice in two versions?",
                    entry.name()
                ));
            }
        }
        Ok(map)
    })
}

/// Checked when an actor starts: a duplicate wire name is a startup error.
pub(crate) fn check() -> Result<(), Error> {
    table()
        .as_ref()
        .map(|_| ())
        .map_err(|msg| Error::other(msg.clone()))
}

pub(crate) fn lookup(name: &str) -> Option<&'static RpcEntry> {
    table().as_ref().ok()?.get(name).copied()
}
