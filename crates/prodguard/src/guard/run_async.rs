//! The async API (feature `tokio`): the same guard, with what blocks — the
//! prompt, the backup, the audit log's fdatasync, a fleet lock — on the
//! runtime's blocking threads, so an executor thread keeps serving other
//! tasks while a person is asked.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{GuardedOperation, Permit};
use crate::{GuardError, RunError};

impl GuardedOperation<'_> {
    /// [`begin`](Self::begin) on a blocking thread: passes every guard
    /// (asking a person, making the backup, writing the intent) without
    /// holding up the executor, and returns the permit, which is `'static`.
    ///
    /// Must be called from within a tokio runtime.
    pub async fn begin_async(self) -> Result<Permit, GuardError> {
        let guard = self.guard.clone();
        let approval = self.approval.or_else(|| guard.approval.clone());
        let operation = self.operation;
        blocking(move || guard.begin_with(operation, approval.as_deref())).await?
    }

    /// [`run`](Self::run) for async work: once every guard passes (on a
    /// blocking thread), calls `work` and awaits its future here, then
    /// records how it ended — `ok`, `failed` with the error's message, or
    /// `panicked` (the panic is then resumed) — on a blocking thread again.
    /// `work` is a closure, so nothing of it starts unless the guard passes.
    ///
    /// If the returned future is dropped while the work runs (a timeout, a
    /// `select!`), the outcome `abandoned` is recorded on a thread of its
    /// own, never on the executor.
    ///
    /// ```
    /// # async fn apply(pool: &()) -> Result<u64, std::io::Error> { Ok(3) }
    /// # let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let guard = prodguard::testing::guard().environment("development").build()?;
    /// let pool = ();
    /// let rows = guard
    ///     .operation("db.migrate")
    ///     .target("orders")
    ///     .run_async(|| apply(&pool))
    ///     .await?;
    /// assert_eq!(rows, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn run_async<T, E, F>(self, work: impl FnOnce() -> F) -> Result<T, RunError<E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut permit = Pending(Some(self.begin_async().await?));
        let ended = match catch_unwind(AssertUnwindSafe(work)) {
            Ok(future) => CatchUnwind(Box::pin(future)).await,
            Err(panic) => Err(panic),
        };
        // Only emptied here; should it ever be empty, nothing is claimed.
        let Some(permit) = permit.0.take() else {
            return Err(RunError::Refused(GuardError::Policy(
                "internal error: the guarded operation's permit is gone; its outcome is unknown"
                    .into(),
            )));
        };
        match ended {
            Ok(result) => {
                let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
                permit.finish_async(outcome).await;
                result.map_err(RunError::Failed)
            }
            Err(panic) => {
                // Recorded before the panic goes on, as `run` does.
                let _ = blocking(move || permit.finish_panicked()).await;
                resume_unwind(panic)
            }
        }
    }
}

impl Permit {
    /// [`finish`](Self::finish) on a blocking thread (the outcome record is
    /// fsynced). Must be called from within a tokio runtime.
    pub async fn finish_async(mut self, result: Result<(), String>) {
        // Should the runtime refuse the task, the permit is dropped with it
        // and records this outcome, not `abandoned`.
        self.settled = Some(match &result {
            Ok(()) => ("ok", None),
            Err(e) => ("failed", Some(e.clone())),
        });
        let _ = blocking(move || self.finish(result)).await;
    }
}

/// A permit held across an `.await`: dropped there (the future was
/// cancelled), it records `abandoned` on a thread of its own, since the
/// audit append fsyncs and a fleet-mode sink may not run on an executor.
struct Pending(Option<Permit>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("prodguard-abandoned".into())
                .spawn(move || drop(permit));
        }
    }
}

/// Runs `f` on a blocking thread; a panic in it goes on here.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GuardError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => resume_unwind(panic),
            Err(_) => Err(GuardError::Policy(
                "the tokio runtime is shutting down, so the guard could not run; nothing ran"
                    .into(),
            )),
        },
    }
}

/// Polls a future, catching a panic in it as `catch_unwind` does for a
/// closure, so the outcome `panicked` is recorded before the panic goes on.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| work.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
