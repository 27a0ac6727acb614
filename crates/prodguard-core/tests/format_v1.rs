//! Logs written before the encoder and the verifier were rewritten still
//! verify, and the encoder still writes their bytes exactly.
#![allow(clippy::unwrap_used)]

use prodguard_core::Timestamp;
use prodguard_core::audit::{ChainVerifier, Envelope, Record, SealChecker, SealKey, encode_record};

const LOG: &str = include_str!("../../../tests/audit/format-v1.jsonl");

#[test]
fn an_old_log_verifies_seal_included() {
    let mut verifier = ChainVerifier::new();
    let mut seals = SealChecker::new(SealKey {
        epoch: 0,
        key: [7; 32],
    });
    for line in LOG.split_inclusive('\n') {
        let link = verifier.push(line.as_bytes()).unwrap();
        if let Some(seal) = &link.seal {
            seals
                .check(&link.log_id, link.seq, &link.prev, seal)
                .unwrap();
        }
    }
    assert_eq!(verifier.next_seq(), 9);
    assert_eq!(seals.last_sealed_seq(), 8);
    assert_eq!(
        verifier.head_hash(),
        "79dd5bf430923b83f3838fb1ad65d043bb0333186a0391741dc3038e0fad02a9"
    );
}

#[test]
fn the_encoder_writes_an_old_log_byte_for_byte() {
    for line in LOG.split_inclusive('\n') {
        let record: Record = serde_json::from_str(line).unwrap();
        let envelope = Envelope {
            log_id: record.log_id.clone(),
            seq: record.seq,
            ts: Timestamp::parse_rfc3339(&record.ts).unwrap(),
            host: record.host.clone(),
            pid: record.pid,
        };
        let (bytes, hash) = encode_record(&envelope, &record.event, &record.prev).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), line);
        assert_eq!(Some(hash), record.hash);
    }
}
