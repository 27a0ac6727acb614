//! The scanner and the run precheck against the strict parser: random
//! tamperings of real chains (flipped bits and bytes, truncated and joined
//! lines, reordered keys, whitespace, escapes, unknown and duplicate keys,
//! other number forms, `null` members, deep nesting, invalid UTF-8, control
//! characters; with and without a recomputed hash) must give the same
//! precheck and the same verdict, line by line, whichever path reads them.

use super::*;

use crate::test_rng::Rng;

fn events() -> Vec<AuditEvent> {
    let mut intent = AuditEvent::new(EventKind::Intent);
    intent.attempt_id = Some("0123456789abcdef0123456789abcdef".into());
    intent.actor = Some(Actor {
        user: "ana".into(),
        kind: ActorKind::Human,
    });
    intent.op = Some(OperationRecord {
        kind: "db.migrate".into(),
        target: Some("orders".into()),
        env: "production".into(),
        tier: Tier::Production,
        decided_by: "env:APP_ENV".into(),
        fingerprint: Some("sha256:abc".into()),
    });
    intent.decision = Some(DecisionRecord {
        result: "proceed".into(),
        rule: Some("default: protected tiers".into()),
        requirements: vec![Requirement::Confirm, Requirement::Backup],
        reasons: vec!["needs `confirm` + backup".into(), "tier production".into()],
        exit_code: None,
    });
    intent.backup = Some(BackupEvidence {
        location: "/var/backups/orders.dump".into(),
        sha256: "ab".repeat(32),
        bytes: 123_456_789,
        created: Timestamp(1_700_000_000_000_000),
        verified: true,
        verification: None,
    });
    intent.confirm = Some(ConfirmEvidence {
        method: "typed".into(),
        approver: Some("bo".into()),
        token_id: None,
        exp: Some(Timestamp(-5)),
    });
    let mut outcome = AuditEvent::new(EventKind::Outcome);
    outcome.outcome = Some(OutcomeRecord {
        status: "failed".into(),
        duration_ms: 0,
        error: Some("exit status 1: \"boom\"\n\ttrace…".into()),
        exit_code: Some(-1),
    });
    let mut refusal = AuditEvent::new(EventKind::Refusal);
    refusal.decision = Some(DecisionRecord {
        result: "refused".into(),
        rule: None,
        requirements: vec![],
        reasons: vec![],
        exit_code: Some(120),
    });
    let mut seal = AuditEvent::new(EventKind::Seal);
    seal.seal = Some(SealInfo {
        epoch: 3,
        mac: "cd".repeat(32),
    });
    vec![
        intent,
        outcome,
        refusal,
        seal,
        AuditEvent::note("plain note"),
        AuditEvent::note("ünïcödé ✓ 日本 \u{1F600} and a \\ backslash"),
        AuditEvent::note("control \u{1} \u{1f} \u{7f} chars and / slash"),
        AuditEvent::note(""),
        AuditEvent::new(EventKind::Recovery),
    ]
}

fn chain(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let events = events();
    let mut prev = GENESIS_PREV.to_owned();
    // An id that needs escaping sends every line to the strict parser.
    let log_id = if rng.below(8) == 0 {
        "log \"ä\""
    } else {
        "log-1"
    };
    (1..=n as u64)
        .map(|seq| {
            let envelope = Envelope {
                log_id: log_id.into(),
                seq,
                ts: Timestamp(1_700_000_000_000_000 + seq as i64),
                host: "höst".into(),
                pid: 7,
            };
            let (line, hash) = encode_record(&envelope, rng.pick(&events), &prev).unwrap();
            prev = hash;
            line
        })
        .collect()
}

/// The line with its hash member recomputed for its own bytes and the
/// `prev` it names (or `GENESIS_PREV`): a forger's line.
fn rehash(line: &[u8]) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let Ok((head, _)) = split_hash(body) else {
        return line.to_vec();
    };
    let prev = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("prev")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| GENESIS_PREV.to_owned());
    let hash = chain_hash(&prev, &[head, b"}"].concat());
    let mut out = head.to_vec();
    out.extend_from_slice(HASH_SUFFIX_PREFIX);
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

/// Replaces the first occurrence of `from` (after a random start) with `to`.
fn replace_once(line: &[u8], from: &[u8], to: &[u8], rng: &mut Rng) -> Vec<u8> {
    let starts: Vec<usize> = line
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        return line.to_vec();
    }
    let at = *rng.pick(&starts);
    [&line[..at], to, &line[at + from.len()..]].concat()
}

fn tamper(line: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = line.to_vec();
    let len = out.len();
    match rng.below(27) {
        0 => out[rng.below(len)] ^= 1 << rng.below(8),
        1 => out[rng.below(len)] = rng.next() as u8,
        2 => out.truncate(rng.below(len)),
        3 => {
            out.truncate(rng.below(len));
            out.push(b'\n');
        }
        4 => {
            // Keys reordered (serde_json's map sorts them), hash kept.
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&out) {
                out = serde_json::to_vec(&value).unwrap();
                out.push(b'\n');
            }
        }
        5 => {
            let at = rng.below(len);
            out.insert(at, *rng.pick(b" \t\r\n"));
        }
        6 => out = replace_once(&out, b":", b": ", rng),
        7 => out = replace_once(&out, b",", b" ,", rng),
        8 => out = replace_once(&out, b"\"seq\":", b"\"s\\u0065q\":", rng),
        9 => {
            out = replace_once(
                &out,
                b"\"v\":1,",
                b"\"v\":1,\"extra\":[1,{\"a\":null}],",
                rng,
            )
        }
        10 => {
            let key = *rng.pick(&[
                &b"\"seq\":1,"[..],
                b"\"kind\":\"note\",",
                b"\"v\":2,",
                b"\"hash\":\"x\",",
            ]);
            out = replace_once(&out, b"\"v\":1,", &[b"\"v\":1,", key].concat(), rng);
        }
        11 => {
            let seq = *rng.pick(&[
                &b"1.0"[..],
                b"1e0",
                b"-1",
                b"01",
                b"18446744073709551616",
                b"\"1\"",
                b"null",
            ]);
            if let Some(at) = out.windows(6).position(|w| w == b"\"seq\":") {
                let digits = out[at + 6..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                out.splice(at + 6..at + 6 + digits, seq.iter().copied());
            }
        }
        12 => {
            let member = *rng.pick(&[
                &b"\"attempt_id\":null,"[..],
                b"\"message\":null,",
                b"\"seal\":null,",
                b"\"seal\":{\"epoch\":1,\"mac\":\"ab\"},",
                b"\"op\":[],",
            ]);
            out = replace_once(&out, b"\"prev\":", &[member, b"\"prev\":"].concat(), rng);
        }
        13 => {
            let depth = rng.below(200);
            let nested = [
                b"\"deep\":".to_vec(),
                vec![b'['; depth],
                vec![b']'; depth],
                b",".to_vec(),
            ]
            .concat();
            let nested = if depth == 0 {
                b"\"deep\":[],".to_vec()
            } else {
                nested
            };
            out = replace_once(
                &out,
                b"\"prev\":",
                &[&nested[..], b"\"prev\":"].concat(),
                rng,
            );
        }
        14 => out = replace_once(&out, b"e", b"\\u0065", rng),
        15 => out = replace_once(&out, b"e", b"\\ud800", rng),
        16 => out = replace_once(&out, b"e", b"\\x", rng),
        17 => out = replace_once(&out, b"e", &[0xc3], rng),
        18 => out = replace_once(&out, b"e", &[0x01], rng),
        19 => out = replace_once(&out, b"\"", b"'", rng),
        20 => out = replace_once(&out, b"true", b"tru", rng),
        21 => out = replace_once(&out, b"\"kind\":\"", b"\"kind\":\"seal", rng),
        22 => out = replace_once(&out, b"{", b"[", rng),
        23 => out = replace_once(&out, b"\"log_id\":\"log-1\"", b"\"log_id\":\"log-2\"", rng),
        24 => {
            let seq = *rng.pick(&[&b"0"[..], b"1", b"2", b"3", b"18446744073709551615"]);
            if let Some(at) = out.windows(6).position(|w| w == b"\"seq\":") {
                let digits = out[at + 6..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                out.splice(at + 6..at + 6 + digits, seq.iter().copied());
            }
        }
        25 => {
            if let Some(at) = out.windows(8).position(|w| w == b"\"prev\":\"") {
                out.splice(at + 8..at + 8 + 64, GENESIS_PREV.bytes());
            }
        }
        _ => out = replace_once(&out, b"}", b"},", rng),
    }
    out
}

fn results(lines: &[Vec<u8>], precheck: impl Fn(&[u8]) -> Prechecked<'_>) -> Vec<String> {
    let mut verifier = ChainVerifier::new();
    let mut out: Vec<String> = lines
        .iter()
        .map(|line| format!("{:?}", verifier.advance(precheck(line))))
        .collect();
    out.push(format!(
        "{} {} {:?}",
        verifier.head_hash(),
        verifier.next_seq(),
        verifier.log_id()
    ));
    out
}

fn run_results(lines: &[Vec<u8>], rng: &mut Rng) -> Vec<String> {
    let mut verifier = ChainVerifier::new();
    let mut out = Vec::new();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
    let mut rest = &refs[..];
    while !rest.is_empty() {
        let (run, after) = rest.split_at(1 + rng.below(rest.len()));
        rest = after;
        for checked in ChainVerifier::precheck_run(run) {
            out.push(format!("{:?}", verifier.advance(checked)));
        }
    }
    out.push(format!(
        "{} {} {:?}",
        verifier.head_hash(),
        verifier.next_seq(),
        verifier.log_id()
    ));
    out
}

/// Which lines `advance` accepts, and where the chain ends, when random
/// spans of lines are offered whole first ([`ChainVerifier::advance_span`])
/// and line by line when a span is not clean or not accepted.
fn span_results(lines: &[Vec<u8>], rng: &mut Rng) -> (Vec<bool>, String) {
    let mut verifier = ChainVerifier::new();
    let mut accepted = Vec::new();
    let mut rest = lines;
    while !rest.is_empty() {
        let (span, after) = rest.split_at(1 + rng.below(rest.len()));
        rest = after;
        let before = format!("{verifier:?}");
        if let Some(whole) = ChainVerifier::precheck_span(span.iter().map(Vec::as_slice), None)
            && verifier.advance_span(&whole, None)
        {
            assert_eq!(whole.records(), span.len() as u64);
            accepted.extend(span.iter().map(|_| true));
            continue;
        }
        assert_eq!(
            format!("{verifier:?}"),
            before,
            "a refused span moves nothing"
        );
        accepted.extend(span.iter().map(|line| verifier.push(line).is_ok()));
    }
    let end = format!(
        "{} {} {:?}",
        verifier.head_hash(),
        verifier.next_seq(),
        verifier.log_id()
    );
    (accepted, end)
}

#[test]
fn the_scanner_and_runs_agree_with_the_strict_parser_on_random_tamperings() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut scanned = 0;
    for round in 0..3000 {
        let n = 1 + rng.below(8);
        let mut lines = chain(&mut rng, n);
        for _ in 0..1 + rng.below(3) {
            let target = rng.below(lines.len());
            let mut line = tamper(&lines[target], &mut rng);
            if rng.below(2) == 0 {
                line = rehash(&line);
            }
            lines[target] = line;
        }
        if rng.below(10) == 0 {
            // Reordered or dropped records.
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
            if lines.len() > 1 && rng.below(2) == 0 {
                lines.remove(rng.below(lines.len()));
            }
        }
        for line in &lines {
            let fast = format!("{:?}", ChainVerifier::precheck(line));
            let strict = format!("{:?}", ChainVerifier::precheck_strict(line));
            assert_eq!(
                fast,
                strict,
                "round {round}: {}",
                String::from_utf8_lossy(line)
            );
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            scanned += usize::from(scan::link_fields(body).is_some());
        }
        let strict = results(&lines, ChainVerifier::precheck_strict);
        assert_eq!(
            results(&lines, ChainVerifier::precheck),
            strict,
            "round {round}"
        );
        assert_eq!(
            run_results(&lines, &mut rng),
            strict,
            "round {round} (runs)"
        );
        let (accepted, end) = span_results(&lines, &mut rng);
        let strict_accepted: Vec<bool> = strict[..lines.len()]
            .iter()
            .map(|r| r.starts_with("Ok"))
            .collect();
        assert_eq!(
            (accepted, &end),
            (strict_accepted, strict.last().unwrap()),
            "round {round} (spans)"
        );
    }
    // Most untouched lines take the scanner's way.
    assert!(scanned > 5000, "only {scanned} lines were scanned");
}

#[test]
fn a_run_does_not_vouch_for_a_line_whose_predecessor_was_not_accepted() {
    let mut rng = Rng(7);
    let lines = chain(&mut rng, 4);
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
    // Line 2 follows line 1 in the run, but this verifier never accepted line 1.
    let mut run = ChainVerifier::precheck_run(&refs).into_iter();
    let first = run.next().unwrap();
    let mut verifier = ChainVerifier::new();
    drop(first);
    assert!(matches!(
        verifier.advance(run.next().unwrap()),
        Err(ChainError::PrevMismatch { .. })
    ));
    // Another verifier that accepted line 1 of another run of the same bytes.
    let mut other = ChainVerifier::new();
    other.push(&lines[0]).unwrap();
    let mut run = ChainVerifier::precheck_run(&refs).into_iter();
    run.next();
    assert_eq!(other.advance(run.next().unwrap()).unwrap().seq, 2);
    // A rejected line breaks the run: the next line gets the full check.
    let mut tampered = lines.clone();
    tampered[1][20] ^= 1;
    let refs: Vec<&[u8]> = tampered.iter().map(|l| l.as_slice()).collect();
    let mut verifier = ChainVerifier::new();
    let results: Vec<_> = ChainVerifier::precheck_run(&refs)
        .into_iter()
        .map(|c| verifier.advance(c))
        .collect();
    assert!(results[0].is_ok() && results[1].is_err() && results[2].is_err());
    // The last possible seq is refused inside a run too.
    let mut prev = GENESIS_PREV.to_owned();
    let lines: Vec<Vec<u8>> = [u64::MAX - 1, u64::MAX]
        .into_iter()
        .map(|seq| {
            let envelope = Envelope {
                log_id: "log".into(),
                seq,
                ts: Timestamp(0),
                host: "h".into(),
                pid: 1,
            };
            let (line, hash) = encode_record(&envelope, &AuditEvent::note("n"), &prev).unwrap();
            prev = hash;
            line
        })
        .collect();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
    let start = || ChainVerifier::resume(GENESIS_PREV.into(), u64::MAX - 1, None);
    let mut one_by_one = start();
    let expected: Vec<_> = lines.iter().map(|l| one_by_one.push(l)).collect();
    assert!(expected[0].is_ok() && expected[1].is_err());
    let mut verifier = start();
    let got: Vec<_> = ChainVerifier::precheck_run(&refs)
        .into_iter()
        .map(|c| verifier.advance(c))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(verifier.head_hash(), one_by_one.head_hash());
}
