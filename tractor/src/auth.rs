//! The tree's secret, and proving knowledge of it.
//!
//! Every actor tree has a secret. Each connection opens with a mutual
//! challenge-response (see `ipc::handshake`): both sides send a fresh
//! random nonce and answer the other's with an HMAC-SHA256 keyed by the
//! secret, so the secret never crosses the wire and an answer cannot be
//! replayed. A peer that cannot answer is dropped before any of its
//! frames is read.
//!
//! A root takes the secret from `TRACTOR_SECRET` (the value's bytes) or
//! `TRACTOR_SECRET_FILE` (the file's contents, trailing newline removed);
//! programs that are to join one tree share it that way. Without either,
//! the root makes a random one: the tree is private to the program. A
//! child receives its parent's secret in its spawn spec (environment, never
//! argv, removed on start).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

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
            return Secret::from_bytes(value.as_encoded_bytes(), SECRET_ENV);
        }
        if let Some(path) = std::env::var_os(SECRET_FILE_ENV) {
            let bytes = std::fs::read(&path).map_err(|err| {
                Error::other(format!(
                    "cannot read the tree secret from {} ({SECRET_FILE_ENV}): {err}",
                    std::path::Path::new(&path).display()
                ))
            })?;
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

    /// Answers a challenge: `HMAC(secret, role | theirs | ours)`.
    pub(crate) fn prove(
        &self,
        role: &[u8],
        theirs: &[u8; NONCE],
        ours: &[u8; NONCE],
    ) -> [u8; NONCE] {
        self.mac(role, theirs, ours).finalize().into_bytes().into()
    }

    /// Checks an answer in constant time.
    pub(crate) fn check(
        &self,
        role: &[u8],
        theirs: &[u8; NONCE],
        ours: &[u8; NONCE],
        proof: &[u8; NONCE],
    ) -> bool {
        self.mac(role, theirs, ours).verify_slice(proof).is_ok()
    }

    fn mac(&self, role: &[u8], first: &[u8; NONCE], second: &[u8; NONCE]) -> Hmac<Sha256> {
        // Any key length is accepted by HMAC.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(role);
        mac.update(first);
        mac.update(second);
        mac
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
    fn proofs_check_only_with_the_same_secret_nonces_and_role() {
        let secret = Secret(b"0123456789abcdef".to_vec());
        let other = Secret(b"0123456789abcdeX".to_vec());
        let (a, b) = ([1; NONCE], [2; NONCE]);
        let proof = secret.prove(b"dial", &a, &b);
        assert!(secret.check(b"dial", &a, &b, &proof));
        assert!(!other.check(b"dial", &a, &b, &proof));
        assert!(!secret.check(b"accept", &a, &b, &proof));
        assert!(!secret.check(b"dial", &b, &a, &proof));
        assert!(Secret::from_bytes(b"short", "test").is_err());
    }
}
