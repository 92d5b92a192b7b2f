//! The tree's secret, and proving knowledge of it.
//!
//! Every actor tree has a secret. Each connection opens with a mutual
//! challenge-response (see `ipc::handshake`): both sides send a fresh
//! random nonce, and each proves the secret with an HMAC-SHA256 keyed by it
//! over a hash of the whole opening ([`Transcript`]), so the secret never
//! crosses the wire and a proof holds for that one conversation only. A
//! peer that cannot prove it is dropped before any of its frames is read.
//!
//! A root takes the secret from `TRACTOR_SECRET` (the value's bytes; the
//! variable is then removed and its value wiped from the process's initial
//! environment, so neither `/proc/<pid>/environ` nor any process started
//! later shows it) or `TRACTOR_SECRET_FILE` (the file's contents, trailing
//! newline removed; the file must be this user's, private — mode 0600 —
//! and not a symlink); programs that are to join one tree share it that
//! way. Without either, the root makes a random one: the tree is private
//! to the program. A child receives its parent's secret in its spawn spec,
//! over a descriptor only it inherits (see `spawn::spec`), never through
//! argv or the environment.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The environment variable holding the tree's secret.
pub const SECRET_ENV: &str = "TRACTOR_SECRET";
/// The environment variable naming a file that holds the tree's secret.
pub const SECRET_FILE_ENV: &str = "TRACTOR_SECRET_FILE";

/// Bytes of a nonce, and of a proof.
pub(crate) const NONCE: usize = 32;

/// A key shared by every actor of one tree.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    /// The secret a root uses: given in code, configured in the
    /// environment, or fresh.
    pub(crate) fn for_root(in_code: Option<&[u8]>) -> Result<Secret> {
        if let Some(bytes) = in_code {
            return Secret::from_bytes(bytes, "Root::builder().secret(..)");
        }
        if let Some(value) = std::env::var_os(SECRET_ENV) {
            let secret = Secret::from_bytes(value.as_encoded_bytes(), SECRET_ENV);
            scrub_env(SECRET_ENV);
            return secret;
        }
        if let Some(path) = std::env::var_os(SECRET_FILE_ENV) {
            let bytes = read_secret_file(std::path::Path::new(&path))?;
            let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            return Secret::from_bytes(trimmed, SECRET_FILE_ENV);
        }
        let mut fresh = vec![0; NONCE];
        getrandom::fill(&mut fresh)
            .map_err(|err| Error::other(format!("no randomness for a tree secret: {err}")))?;
        Ok(Secret(fresh))
    }

    fn from_bytes(bytes: &[u8], source: &str) -> Result<Secret> {
        if bytes.len() < 16 {
            return Err(Error::other(format!(
                "the tree secret from {source} is {} bytes; use at least 16 random bytes",
                bytes.len()
            )));
        }
        Ok(Secret(bytes.to_vec()))
    }

    /// The proof that one knows the secret, for `role` at the point of the
    /// opening summed up by `transcript`: `HMAC-SHA256(secret, role |
    /// transcript)`.
    pub(crate) fn prove(&self, role: &[u8], transcript: &[u8; NONCE]) -> [u8; NONCE] {
        self.mac(role, transcript).finalize().into_bytes().into()
    }

    /// Checks a proof in constant time.
    pub(crate) fn check(&self, role: &[u8], transcript: &[u8; NONCE], proof: &[u8; NONCE]) -> bool {
        self.mac(role, transcript).verify_slice(proof).is_ok()
    }

    fn mac(&self, role: &[u8], transcript: &[u8; NONCE]) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(role);
        mac.update(transcript);
        mac
    }
}

/// Makes the hash probe the CPU's features now rather than in the first
/// opening: `cpuid` traps to the hypervisor on a virtual machine (tens of
/// microseconds on a nested one), and a fork inherits the answer.
pub(crate) fn warm_up() {
    std::hint::black_box(Sha256::digest(std::hint::black_box(b"")));
}

/// A running hash of everything an opening exchanged, in order: what
/// proofs are made over, so that a proof is valid only for the exact
/// conversation (nonces, both introductions, the TLS session under it)
/// it was made in.
#[derive(Clone)]
pub(crate) struct Transcript(Sha256);

impl Transcript {
    /// A transcript bound to `binding` (the TLS session's exported key,
    /// or nothing).
    pub(crate) fn new(binding: &[u8]) -> Self {
        let mut transcript = Transcript(Sha256::new());
        transcript.absorb(b"tractor opening 4");
        transcript.absorb(binding);
        transcript
    }

    /// Adds one part, length-prefixed so parts cannot run into each other.
    pub(crate) fn absorb(&mut self, part: &[u8]) {
        self.0.update((part.len() as u64).to_le_bytes());
        self.0.update(part);
    }

    /// The hash of the transcript with `last` added, leaving it as is.
    pub(crate) fn with(&self, last: &[u8]) -> [u8; NONCE] {
        let mut transcript = self.clone();
        transcript.absorb(last);
        transcript.0.finalize().into()
    }
}

/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a secret file: a regular file (not through a symlink), owned by
/// this user and readable by no one else, of at most 4 KiB.
fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let cannot = |why: String| {
        Error::other(format!(
            "cannot use {shown} ({SECRET_FILE_ENV}) as the tree secret: {why}"
        ))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => cannot("it is a symbolic link; name the file itself".into()),
            _ => cannot(err.to_string()),
        })?;
    let meta = file.metadata().map_err(|err| cannot(err.to_string()))?;
    let uid = rustix::process::geteuid().as_raw();
    if !meta.is_file() {
        return Err(cannot("it is not a regular file".into()));
    }
    if meta.uid() != uid {
        return Err(cannot(format!(
            "it belongs to uid {}, not to this user (uid {uid})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(cannot(format!(
            "its mode is {mode:04o}, so other users may read it; make it private with \
             `chmod 600 {shown}`"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| cannot(err.to_string()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(cannot(format!("it is larger than {MAX_SECRET_FILE} bytes")));
    }
    Ok(bytes)
}

/// Removes variable `name` from the environment, and overwrites its value
/// where the process was started with it: `/proc/<pid>/environ` shows the
/// environment block the process began with, which removing the variable
/// leaves as it was.
fn scrub_env(name: &str) {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: called while the root starts, before its runtime or any
    // thread of ours exists (under libtest, the harness' other threads are
    // idle); each entry is a NUL-terminated string we may write to, as
    // `setenv` does not copy the block it was started with.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let value = std::ffi::CStr::from_ptr(*entry);
            if let Some(rest) = value.to_bytes().strip_prefix(prefix.as_bytes()) {
                let start = (*entry).add(prefix.len());
                std::ptr::write_bytes(start, 0, rest.len());
            }
            entry = entry.add(1);
        }
        std::env::remove_var(name);
    }
}

/// A fresh random nonce.
pub(crate) fn nonce() -> Result<[u8; NONCE]> {
    let mut nonce = [0; NONCE];
    getrandom::fill(&mut nonce)
        .map_err(|err| Error::other(format!("no randomness for a handshake: {err}")))?;
    Ok(nonce)
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_check_only_with_the_same_secret_transcript_and_role() {
        let secret = Secret(b"0123456789abcdef".to_vec());
        let other = Secret(b"0123456789abcdeX".to_vec());
        let mut transcript = Transcript::new(b"");
        transcript.absorb(b"hello");
        let proof = secret.prove(b"dial", &transcript.with(b"me"));
        assert!(secret.check(b"dial", &transcript.with(b"me"), &proof));
        assert!(!other.check(b"dial", &transcript.with(b"me"), &proof));
        assert!(!secret.check(b"accept", &transcript.with(b"me"), &proof));
        assert!(!secret.check(b"dial", &transcript.with(b"mallory"), &proof));
        let bound = Transcript::new(b"another session");
        assert!(!secret.check(b"dial", &bound.with(b"me"), &proof));
        assert!(Secret::from_bytes(b"short", "test").is_err());
    }
}
