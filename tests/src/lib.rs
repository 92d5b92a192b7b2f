//! Shared helpers for tractor's integration tests.
