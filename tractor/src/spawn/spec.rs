//! [`SpawnSpec`]: everything a child needs to become an actor.
//!
//! It travels in one environment variable, postcard-encoded and
//! hex-printed, and the child removes it before anything else runs, so it
//! never leaks into processes the child starts itself.

use serde::{Deserialize, Serialize};

use crate::uid::ActorUid;

/// The environment variable that turns a process into a child actor.
pub(crate) const SPEC_ENV: &str = "TRACTOR_SPAWN_SPEC";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpawnSpec {
    pub uid: ActorUid,
    /// The parent's listening address: the child connects back there.
    pub parent_addr: String,
    /// The parent's Unix socket, preferred when present.
    pub parent_local: Option<String>,
    /// Checked right after start: if the parent is already gone, exit.
    pub parent_pid: u32,
    pub registrar_addr: String,
    pub registrar_local: Option<String>,
    pub parent_is_registrar: bool,
    pub enable_modules: Vec<String>,
    pub statespace: Vec<(String, Vec<u8>)>,
    pub loglevel: Option<String>,
    /// The arguments that make this executable a child (see
    /// `Settings::exec_args`); passed on to grandchildren.
    pub exec_args: Vec<String>,
    /// How this child starts its own children.
    pub start_method: super::StartMethod,
    /// Worker threads for the child's runtime.
    pub workers: usize,
    /// Worker threads for the child's own children, unless their spawn
    /// says otherwise (the tree's default, handed down).
    pub child_workers: usize,
    /// Calls one peer may have running in the child at once.
    pub max_concurrent_calls: usize,
    /// The tree's secret.
    pub secret: crate::auth::Secret,
    /// Single-use: the child proves the secret over it when it first
    /// connects to its parent.
    pub challenge: [u8; crate::auth::NONCE],
}

impl SpawnSpec {
    pub(crate) fn encode(&self) -> String {
        // Encoding our own plain data cannot fail.
        hex::encode(postcard::to_allocvec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|err| err.to_string())?;
        postcard::from_bytes(&bytes).map_err(|err| err.to_string())
    }

    /// Reads and removes the spec from this process's environment.
    ///
    /// `None` for a root process; an error if the variable is there but
    /// unreadable (a parent from a different build).
    pub(crate) fn take_from_env() -> Option<Result<Self, String>> {
        let text = std::env::var_os(SPEC_ENV)?;
        // SAFETY: called first thing when the process starts, before the
        // runtime or any thread of ours exists (under libtest, the harness'
        // other threads are idle waiting for this one test).
        unsafe { std::env::remove_var(SPEC_ENV) };
        Some(match text.to_str() {
            Some(text) => Self::decode(text),
            None => Err("the spawn spec is not valid UTF-8".into()),
        })
    }
}
