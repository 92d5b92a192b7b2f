//! Locking a `std` mutex whatever a panic left in it.
//!
//! A panic in remote code is caught and reported (see `invoke`), and the
//! actor lives on; a mutex poisoned on the way is still used, since failing
//! every later lock would take the actor down instead of one call.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
