//! The async API (feature `tokio`) on a real multi-threaded runtime with
//! one worker thread: while a person is being asked, the executor keeps
//! serving other tasks.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use prodguard::confirm::Challenge;
use prodguard::testing::{self, MemoryAudit, yes};
use prodguard::{Facts, Guard, RunError};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn a_pending_prompt_does_not_hold_up_the_executor() {
    let (answer_tx, answer_rx) = mpsc::channel::<()>();
    let answer_rx = Mutex::new(answer_rx);
    let audit = MemoryAudit::default();
    // The person answers only once another task on the single worker
    // thread has made progress; were the prompt on that thread, it never
    // would, and the person would time out and decline.
    let guard = Guard::builder()
        .facts(Facts {
            explicit: Some("production".into()),
            ..Facts::default()
        })
        .audit_sink(audit.clone())
        .confirmer(move |_: &Challenge| {
            match answer_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
            {
                Ok(()) => yes(),
                Err(_) => prodguard::confirm::ConfirmationAnswer::Declined(
                    "the executor was blocked".into(),
                ),
            }
        })
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicU32::new(0));
    runtime().block_on(async {
        let counter = ticks.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
            answer_tx.send(()).unwrap();
        });
        // On the worker thread too (block_on would drive it on this one).
        let rows = tokio::spawn(async move {
            guard
                .operation("db.drop.table")
                .target("carts")
                .run_async(|| async { Ok::<_, std::io::Error>(3) })
                .await
        });
        assert_eq!(rows.await.unwrap().unwrap(), 3);
    });
    assert_eq!(ticks.load(Ordering::SeqCst), 5);
    let last = audit.records().pop().unwrap();
    assert_eq!(last.outcome.unwrap().status, "ok");
}

#[test]
fn errors_panics_and_refusals_are_recorded_and_refused_work_never_starts() {
    let guard = testing::guard().environment("production").build().unwrap();
    let polled = Arc::new(AtomicBool::new(false));
    let status = |guard: &testing::TestGuard| {
        guard
            .records()
            .last()
            .unwrap()
            .outcome
            .clone()
            .unwrap()
            .status
    };
    runtime().block_on(async {
        // Nobody to ask: refused, and the future is never polled.
        let flag = polled.clone();
        let refused = guard
            .operation("db.drop.table")
            .target("carts")
            .run_async(|| async move {
                flag.store(true, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .await;
        assert!(matches!(refused, Err(RunError::Refused(e)) if e.exit_code().code() == 121));
        assert!(!polled.load(Ordering::SeqCst));
    });
    let dev = testing::guard().environment("development").build().unwrap();
    let rt = runtime();
    let failed = rt.block_on(
        dev.operation("db.migrate")
            .run_async(|| async { Err::<(), _>("column exists") }),
    );
    assert!(matches!(failed, Err(RunError::Failed("column exists"))));
    assert_eq!(status(&dev), "failed");
    let panicked = rt.block_on(async {
        let dev = dev.guard().clone();
        tokio::spawn(async move {
            dev.operation("db.migrate")
                .run_async(|| async {
                    tokio::task::yield_now().await;
                    panic!("boom");
                    #[allow(unreachable_code)]
                    Ok::<(), std::io::Error>(())
                })
                .await
        })
        .await
    });
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(status(&dev), "panicked");
    // A permit is 'static: it can go to another task and finish there.
    let permit = rt
        .block_on(dev.operation("db.migrate").begin_async())
        .unwrap();
    rt.block_on(async { tokio::spawn(permit.finish_async(Ok(()))).await })
        .unwrap();
    assert_eq!(status(&dev), "ok");
    let _ = guard;
}

/// Remembers which thread appended each record.
#[derive(Clone, Default)]
struct ThreadsSeen(MemoryAudit, Arc<Mutex<Vec<String>>>);

impl prodguard::audit::AuditSink for ThreadsSeen {
    fn append(
        &self,
        event: &prodguard_core::audit::AuditEvent,
    ) -> Result<prodguard::audit::AppendReceipt, prodguard::audit::AuditError> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        self.1.lock().unwrap().push(name);
        self.0.append(event)
    }
}

#[test]
fn work_dropped_by_a_timeout_is_recorded_abandoned_off_the_executor() {
    let seen = ThreadsSeen::default();
    let guard = Guard::builder()
        .facts(Facts {
            explicit: Some("development".into()),
            ..Facts::default()
        })
        .audit_sink(seen.clone())
        .build()
        .unwrap();
    let rt = runtime();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let timed_out = rt.block_on(async {
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(50),
                guard.operation("db.migrate").run_async(|| async move {
                    flag.store(true, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok::<(), std::io::Error>(())
                }),
            )
            .await
        })
        .await
        .unwrap()
    });
    assert!(timed_out.is_err(), "the timeout fired");
    assert!(started.load(Ordering::SeqCst));
    // Recorded on a thread of its own, not the worker: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while seen
        .0
        .records()
        .last()
        .and_then(|r| r.outcome.clone())
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no outcome recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let last = seen.0.records().pop().unwrap();
    assert_eq!(last.outcome.unwrap().status, "abandoned");
    let threads = seen.1.lock().unwrap().clone();
    assert_eq!(
        threads.last().map(String::as_str),
        Some("prodguard-abandoned"),
        "{threads:?}"
    );
}
