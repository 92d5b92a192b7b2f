//! What `#[tractor::main]` and `#[tractor::test]` expand to: the body,
//! handed to a [`RootBuilder`] by whichever of two ways suits it.
//!
//! A `Send` body runs as a task on a runtime worker ([`RootBuilder::run`],
//! the fast path); any other body runs on the thread that called `main`
//! ([`RootBuilder::run_local`]). The macros cannot tell which a body is, so
//! they call `run` on `&&RootBody`, and autoref picks [`SpawnedBody`] when
//! its bounds hold and [`InlineBody`] otherwise. Not public API.

use std::cell::Cell;
use std::future::Future;

use super::RootBuilder;

/// The body of `main` or of a test, held until run.
pub struct RootBody<F>(Cell<Option<F>>);

impl<F> RootBody<F> {
    /// Wraps the body.
    pub fn new(body: F) -> Self {
        RootBody(Cell::new(Some(body)))
    }

    fn take(&self) -> F {
        // The entry macros call `run` exactly once.
        match self.0.take() {
            Some(body) => body,
            None => unreachable!("a root body runs once"),
        }
    }
}

/// Runs a `Send` body as a task on a runtime worker (the fast path).
pub trait SpawnedBody {
    /// What the body returns.
    type Output;
    /// Becomes a child if spawned as one, else runs the body as the root.
    fn run(self, root: RootBuilder) -> Self::Output;
}

impl<F, Fut> SpawnedBody for &&RootBody<F>
where
    F: FnOnce() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn run(self, root: RootBuilder) -> Fut::Output {
        root.run(self.take()())
    }
}

/// Runs a body that is not `Send` on the thread that called `main`.
pub trait InlineBody {
    /// What the body returns.
    type Output;
    /// Becomes a child if spawned as one, else runs the body as the root.
    fn run(self, root: RootBuilder) -> Self::Output;
}

impl<F, Fut> InlineBody for &RootBody<F>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;

    fn run(self, root: RootBuilder) -> Fut::Output {
        root.run_local(self.take()())
    }
}
