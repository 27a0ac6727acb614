//! The audit trail in PostgreSQL against a real server: many processes
//! appending at once, tampering found by the verifier, a lost connection.
//!
//! Needs `eval $(scripts/pg-cluster start)` first (PRODGUARD_TEST_PG).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg_common;

use std::collections::BTreeSet;
use std::sync::Arc;

use pg_common::*;
use prodguard::audit::{AuditError, AuditSink};
use prodguard::pg::{PgAuditSink, PgServer, verify};
use prodguard_core::audit::AuditEvent;

/// A child appending `PRODGUARD_PGTEST_COUNT` notes from each of
/// `PRODGUARD_PGTEST_THREADS` threads (each with its own sink, so its own
/// connection), printing `RESULT seq message` for each acknowledged one.
#[test]
fn child() {
    let Some(role) = child_role() else {
        return;
    };
    assert_eq!(role, "append");
    let url = std::env::var(URL).unwrap();
    let var = |name: &str| std::env::var(name).unwrap().parse::<usize>().unwrap();
    let (threads, count) = (
        var("PRODGUARD_PGTEST_THREADS"),
        var("PRODGUARD_PGTEST_COUNT"),
    );
    let id = std::process::id();
    let sinks: Vec<Arc<PgAuditSink>> = (0..threads)
        .map(|_| {
            let sink = PgAuditSink::new(&url).unwrap();
            sink.check().unwrap();
            Arc::new(sink)
        })
        .collect();
    wait_for_start();
    let handles: Vec<_> = sinks
        .into_iter()
        .enumerate()
        .map(|(t, sink)| {
            std::thread::spawn(move || {
                (0..count)
                    .map(|i| {
                        let message = format!("p{id}-t{t}-{i}");
                        let receipt = sink.append(&AuditEvent::note(message.clone())).unwrap();
                        format!("{} {message}", receipt.seq)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for line in handle.join().unwrap() {
            println!("RESULT {line}");
        }
    }
}

fn rows(url: &str) -> Vec<(i64, i64, String)> {
    connect(url)
        .query(
            "SELECT id, seq, record FROM prodguard_audit ORDER BY id",
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[test]
fn concurrent_appends_from_many_processes_count_exactly_and_the_chain_verifies() {
    let url = fresh_db("audit_concurrent");
    let (processes, threads, count) = (6usize, 2usize, 15usize);
    let start_at = now_micros() + 2_000_000;
    let children: Vec<_> = (0..processes)
        .map(|_| {
            spawn_child(
                "append",
                &url,
                &[
                    ("PRODGUARD_PGTEST_THREADS", threads.to_string()),
                    ("PRODGUARD_PGTEST_COUNT", count.to_string()),
                    (START_AT, start_at.to_string()),
                ],
            )
        })
        .collect();
    let mut acknowledged = Vec::new();
    for child in children {
        acknowledged.extend(results(child));
    }
    let total = processes * threads * count;
    assert_eq!(acknowledged.len(), total);

    // Every acknowledged record is in the table exactly once, at its seq.
    let seqs: BTreeSet<u64> = acknowledged
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=total as u64).collect(),
        "seqs are 1..={total}, each once"
    );
    let stored = rows(&url);
    assert_eq!(stored.len(), total, "exact count");
    for line in &acknowledged {
        let (seq, message) = line.split_once(' ').unwrap();
        let seq: i64 = seq.parse().unwrap();
        let (_, _, record) = stored.iter().find(|(_, s, _)| *s == seq).unwrap();
        let record: serde_json::Value = serde_json::from_str(record).unwrap();
        assert_eq!(record["message"], *message);
    }
    // Rows are in chain order and the whole chain verifies.
    assert!(stored.windows(2).all(|w| w[0].1 + 1 == w[1].1));
    let report = verify(&PgServer::parse(&url).unwrap(), None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, total as u64);
    assert_eq!(report.head_seq, total as u64);
    assert_eq!(report.exit_code(), 0);
    // One log: every record carries the first record's log_id.
    let ids: BTreeSet<String> = stored
        .iter()
        .map(|(_, _, r)| {
            serde_json::from_str::<serde_json::Value>(r).unwrap()["log_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        report.log_id.as_deref(),
        ids.iter().next().map(String::as_str)
    );
}

/// A database holding a chain of `n` notes `note-1`…`note-n`.
fn chain_of(name: &str, n: u64) -> (String, PgAuditSink) {
    let url = fresh_db(name);
    let sink = PgAuditSink::new(&url).unwrap();
    for i in 1..=n {
        assert_eq!(
            sink.append(&AuditEvent::note(format!("note-{i}")))
                .unwrap()
                .seq,
            i
        );
    }
    let report = verify(sink.server(), None).unwrap();
    assert!(report.intact() && report.records == n, "{report:?}");
    (url, sink)
}

fn damage_of(url: &str) -> (u64, String, i32) {
    let report = verify(&PgServer::parse(url).unwrap(), None).unwrap();
    let damage = report
        .damage
        .clone()
        .unwrap_or_else(|| panic!("no damage found: {report:?}"));
    (damage.expected_seq, damage.problem, report.exit_code())
}

#[test]
fn an_edited_row_is_detected() {
    let (url, _) = chain_of("audit_edit", 5);
    connect(&url)
        .execute(
            "UPDATE prodguard_audit SET record = replace(record, 'note-3', 'note-X') WHERE seq = 3",
            &[],
        )
        .unwrap();
    let (seq, problem, code) = damage_of(&url);
    assert_eq!((seq, code), (3, 1), "{problem}");
    assert!(problem.contains("hash mismatch"), "{problem}");
    let report = verify(&PgServer::parse(&url).unwrap(), None).unwrap();
    assert_eq!(report.records, 2, "the records before the edit verify");
}

#[test]
fn an_edited_column_is_detected() {
    let (url, _) = chain_of("audit_edit_column", 4);
    connect(&url)
        .execute(
            "UPDATE prodguard_audit SET log_id = 'another' WHERE seq = 2",
            &[],
        )
        .unwrap();
    let (seq, problem, code) = damage_of(&url);
    assert_eq!((seq, code), (2, 1), "{problem}");
    assert!(problem.contains("the row was edited"), "{problem}");
}

#[test]
fn a_deleted_row_is_detected() {
    let (url, _) = chain_of("audit_delete", 5);
    connect(&url)
        .execute("DELETE FROM prodguard_audit WHERE seq = 3", &[])
        .unwrap();
    let (seq, problem, code) = damage_of(&url);
    assert_eq!((seq, code), (3, 1), "{problem}");
    assert!(problem.contains("chain broken"), "{problem}");
}

#[test]
fn swapped_rows_are_detected() {
    // The rows' order (their ids) swapped…
    let (url, _) = chain_of("audit_swap_ids", 5);
    connect(&url)
        .batch_execute(
            "UPDATE prodguard_audit SET id = -id WHERE seq = 2;
             UPDATE prodguard_audit SET id = id - 1 WHERE seq = 3;
             UPDATE prodguard_audit SET id = -id + 1 WHERE seq = 2;",
        )
        .unwrap();
    let order: Vec<i64> = rows(&url).iter().map(|r| r.1).collect();
    assert_eq!(order, [1, 3, 2, 4, 5]);
    let (seq, problem, code) = damage_of(&url);
    assert_eq!((seq, code), (2, 1), "{problem}");

    // …and two rows' contents swapped, ids and columns left in place.
    let (url, _) = chain_of("audit_swap_records", 5);
    connect(&url)
        .batch_execute(
            "UPDATE prodguard_audit a SET record = b.record FROM prodguard_audit b
             WHERE (a.seq, b.seq) IN ((2, 4), (4, 2));",
        )
        .unwrap();
    let (seq, problem, code) = damage_of(&url);
    assert_eq!((seq, code), (2, 1), "{problem}");
}

#[test]
fn a_truncated_trail_misses_its_anchor_and_a_damaged_head_stops_appends() {
    let (url, sink) = chain_of("audit_anchor", 4);
    let server = PgServer::parse(&url).unwrap();
    let anchor = verify(&server, None).unwrap().head_anchor().unwrap();
    assert_eq!(anchor.seq, 4);
    assert_eq!(verify(&server, Some(&anchor)).unwrap().exit_code(), 0);

    // Deleting the last row leaves a chain that verifies on its own, but
    // it no longer reaches the anchor kept elsewhere: exit 3.
    connect(&url)
        .execute("DELETE FROM prodguard_audit WHERE seq = 4", &[])
        .unwrap();
    let report = verify(&server, Some(&anchor)).unwrap();
    assert!(report.damage.is_none());
    assert_eq!(report.exit_code(), 3, "{report:?}");

    // An edited last row: appends refuse rather than chain onto it.
    connect(&url)
        .execute(
            "UPDATE prodguard_audit SET record = replace(record, 'note-3', 'note-Y') WHERE seq = 3",
            &[],
        )
        .unwrap();
    let err = sink.append(&AuditEvent::note("after")).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(sink.check().is_err());
    assert_eq!(rows(&url).len(), 3, "nothing was appended");
}

#[test]
fn records_hold_the_exact_bytes_the_chain_hashed() {
    let url = fresh_db("audit_bytes");
    let sink = PgAuditSink::new(&url).unwrap();
    let receipt = sink
        .append(&AuditEvent::note("exact \u{e9}\u{1F600} \"quoted\""))
        .unwrap();
    let row = connect(&url)
        .query_one("SELECT record, hash, seq, log_id FROM prodguard_audit", &[])
        .unwrap();
    let record: String = row.get(0);
    assert!(!record.ends_with('\n'));
    assert!(record.ends_with(&format!(",\"hash\":\"{}\"}}", receipt.hash)));
    assert_eq!(row.get::<_, String>(1), receipt.hash);
    assert_eq!(row.get::<_, i64>(2), 1);
    // The same verifier as for files accepts the bytes as stored.
    let mut verifier = prodguard_core::audit::ChainVerifier::new();
    assert_eq!(verifier.push(record.as_bytes()).unwrap().hash, receipt.hash);
    // The schema's version row is there for later migrations.
    let version: i32 = connect(&url)
        .query_one("SELECT max(version) FROM prodguard_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, prodguard::pg::SCHEMA_VERSION);
}

#[test]
fn a_lost_connection_fails_the_append_and_the_next_one_reconnects() {
    let url = fresh_db("audit_reconnect");
    let sink = PgAuditSink::new(&url).unwrap();
    sink.append(&AuditEvent::note("one")).unwrap();
    // The server ends every other session on this database (as a restart would).
    let mut admin = connect(&url);
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = sink.append(&AuditEvent::note("lost")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(sink.server().name()), "{text}");
    // The next append connects again and continues the chain.
    assert_eq!(sink.append(&AuditEvent::note("two")).unwrap().seq, 2);
    let report = verify(sink.server(), None).unwrap();
    assert!(report.intact() && report.records == 2, "{report:?}");
}

#[test]
fn appends_chain_under_a_stricter_default_isolation_level() {
    // A server (or database) whose default is serializable must not make
    // concurrent appenders read a stale head.
    let url = fresh_db("audit_serializable");
    let mut db = connect(&url);
    let name: String = db
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    db.batch_execute(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
    ))
    .unwrap();
    let (threads, count) = (4u64, 20u64);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let sink = PgAuditSink::new(&url).unwrap();
                for i in 0..count {
                    sink.append(&AuditEvent::note(format!("t{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let report = verify(&PgServer::parse(&url).unwrap(), None).unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.records, threads * count);
}

/// Makes the flush after each append's commit fail in the database of
/// `url` on the calls whose number `n` (from 1) meets `failing` (SQL): a
/// `pg_logical_emit_message` of its own, found before the real one.
fn stage_failing_flush(url: &str, failing: &str) {
    let mut db = connect(url);
    let name: String = db
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    db.batch_execute(&format!(
        "CREATE SEQUENCE flush_calls;
         CREATE FUNCTION public.pg_logical_emit_message(boolean, text, text) RETURNS pg_lsn
         LANGUAGE plpgsql AS $$
         DECLARE n bigint := nextval('flush_calls');
         BEGIN
             IF {failing} THEN RAISE EXCEPTION 'flush % failed (staged)', n; END IF;
             RETURN pg_catalog.pg_logical_emit_message($1, $2, $3);
         END $$;
         ALTER DATABASE {name} SET search_path = public, pg_catalog;"
    ))
    .unwrap();
}

#[test]
fn a_flush_that_fails_after_the_commit_is_tried_again_on_a_new_connection() {
    let url = fresh_db("audit_flush_again");
    stage_failing_flush(&url, "n = 1");
    let sink = PgAuditSink::new(&url).unwrap();
    assert_eq!(sink.append(&AuditEvent::note("one")).unwrap().seq, 1);
    assert_eq!(sink.append(&AuditEvent::note("two")).unwrap().seq, 2);
    let calls: i64 = connect(&url)
        .query_one("SELECT last_value FROM flush_calls", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        calls, 3,
        "one failed flush, its second try, the next append's"
    );
    let report = verify(sink.server(), None).unwrap();
    assert!(report.intact() && report.records == 2, "{report:?}");
}

#[test]
fn a_record_committed_whose_flush_keeps_failing_is_reported_committed_but_unconfirmed() {
    let url = fresh_db("audit_flush_fails");
    stage_failing_flush(&url, "true");
    let sink = PgAuditSink::new(&url).unwrap();
    let err = sink.append(&AuditEvent::note("one")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AuditError::Io { .. }), "{text}");
    assert!(
        text.contains("the record is committed as seq 1, but its durability is unconfirmed"),
        "{text}"
    );
    assert!(text.contains("flush 1 failed (staged)"), "{text}");
    assert!(text.contains("flush 2 failed (staged)"), "{text}");
    assert!(
        text.contains(&format!(
            "`prodguard audit verify --postgres {}` shows whether seq 1 survived",
            sink.server().name()
        )),
        "{text}"
    );
    assert!(!text.contains("not have been written"), "{text}");
    // It is in the trail, as it says.
    let rows = rows(&url);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, 1, "{rows:?}");
}
