//! Group commit: threads appending at the same time share one write and
//! one flush, each acknowledged only after it.

use std::collections::HashMap;

use prodguard_core::audit::AuditEvent;

use super::FileSink;
use crate::audit::{AppendReceipt, AuditError};

/// Appenders waiting for a shared write and flush (group commit).
#[derive(Default)]
pub(super) struct Group {
    next_ticket: u64,
    queue: Vec<(u64, AuditEvent)>,
    leader_active: bool,
    /// Appenders blocked on `turn`: a lone writer wakes nobody (saving a
    /// futex call per append).
    waiting: usize,
    done: HashMap<u64, Result<AppendReceipt, String>>,
}

impl FileSink {
    /// Appends `event` with whatever other threads are appending now: one
    /// of them leads, writing and syncing the whole queue at once.
    pub(super) fn append_grouped(&self, event: &AuditEvent) -> Result<AppendReceipt, AuditError> {
        // The leader encodes every queued event; a copy outlives this call's borrow.
        let event = event.clone();
        let mut group = self.group.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = group.next_ticket;
        group.next_ticket += 1;
        group.queue.push((ticket, event));
        loop {
            if let Some(result) = group.done.remove(&ticket) {
                return result.map_err(|cause| AuditError::Batch {
                    path: self.path.clone(),
                    cause,
                });
            }
            if group.leader_active {
                group.waiting += 1;
                group = self.turn.wait(group).unwrap_or_else(|p| p.into_inner());
                group.waiting -= 1;
                continue;
            }
            // Lead: write everything queued so far with one write and one sync.
            group.leader_active = true;
            let batch = std::mem::take(&mut group.queue);
            drop(group);
            let (tickets, events): (Vec<u64>, Vec<AuditEvent>) = batch.into_iter().unzip();
            // A panic while leading (say in a tracing layer) must not leave
            // the followers waiting for a leader that is gone.
            let led = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.with_locked_writer(|writer, ops| {
                    self.append_batch_locked(writer, ops, &events, false)
                        .map(|(receipts, _)| receipts)
                })
            }));
            group = self.group.lock().unwrap_or_else(|p| p.into_inner());
            group.leader_active = false;
            let result = match led {
                Ok(result) => result,
                Err(panic) => {
                    for &t in &tickets {
                        group
                            .done
                            .insert(t, Err("the appending thread panicked".into()));
                    }
                    group.done.remove(&ticket);
                    drop(group);
                    self.turn.notify_all();
                    std::panic::resume_unwind(panic);
                }
            };
            let mine = match result {
                Ok(receipts) => {
                    let mut mine = None;
                    for (t, receipt) in tickets.into_iter().zip(receipts) {
                        if t == ticket {
                            mine = Some(Ok(receipt));
                        } else {
                            group.done.insert(t, Ok(receipt));
                        }
                    }
                    mine
                }
                Err(e) => {
                    for &t in tickets.iter().filter(|&&t| t != ticket) {
                        group.done.insert(t, Err(e.to_string()));
                    }
                    Some(Err(e))
                }
            };
            if group.waiting > 0 {
                self.turn.notify_all();
            }
            if let Some(result) = mine {
                return result;
            }
        }
    }
}
