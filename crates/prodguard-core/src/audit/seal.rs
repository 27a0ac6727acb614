//! Seals: tamper evidence beyond the chain. A seal record MACs the chain's
//! head with a key that evolves per epoch.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{hex, unhex32};

/// What a seal record carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    /// The key's epoch.
    pub epoch: u64,
    /// Hex HMAC-SHA256 of (domain, log id, seq, prev) under the epoch's key.
    pub mac: String,
}

/// The domain tag of seal MACs.
pub const SEAL_DOMAIN: &[u8] = b"prodguard.audit.seal.v1\0";
const EVOLVE_DOMAIN: &[u8] = b"prodguard.audit.seal.evolve.v1\0";

/// A forward-secure seal key: each epoch's key is the hash of the one
/// before, and a writer erases the old key once it has sealed with it, so a
/// host compromised later cannot forge seals of earlier epochs. Whoever
/// holds an epoch's key (kept off the host) can check every later seal.
///
/// ```
/// use prodguard_core::audit::SealKey;
/// let k0 = SealKey { epoch: 0, key: [7; 32] };
/// let k2 = k0.evolve().evolve();
/// assert_eq!(k0.at_epoch(2), Some(k2.clone()));
/// assert_eq!(k2.at_epoch(0), None, "keys only evolve forward");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey {
    /// Which epoch this key belongs to.
    pub epoch: u64,
    /// The key.
    pub key: [u8; 32],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl SealKey {
    /// The next epoch's key: `K(e+1) = SHA-256(domain ‖ K(e))`.
    pub fn evolve(&self) -> SealKey {
        let mut hasher = Sha256::new();
        hasher.update(EVOLVE_DOMAIN);
        hasher.update(self.key);
        SealKey {
            epoch: self.epoch.saturating_add(1),
            key: hasher.finalize().into(),
        }
    }

    /// This key evolved to `epoch`; `None` for an earlier epoch.
    pub fn at_epoch(&self, epoch: u64) -> Option<SealKey> {
        if epoch < self.epoch || epoch - self.epoch > 100_000_000 {
            return None;
        }
        let mut key = self.clone();
        while key.epoch < epoch {
            key = key.evolve();
        }
        Some(key)
    }

    /// HMAC-SHA256 over the seal's input; `None` never happens (HMAC takes
    /// keys of any length), and callers fail closed if it did.
    fn mac_of(&self, log_id: &str, seq: u64, prev: &str) -> Option<hmac::Hmac<Sha256>> {
        use hmac::{KeyInit, Mac};
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).ok()?;
        mac.update(SEAL_DOMAIN);
        mac.update(log_id.as_bytes());
        mac.update(b"\0");
        mac.update(seq.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(prev.as_bytes());
        Some(mac)
    }

    /// The seal for the record at `seq` of `log_id` whose `prev` is the head.
    pub fn seal(&self, log_id: &str, seq: u64, prev: &str) -> SealInfo {
        use hmac::Mac;
        SealInfo {
            epoch: self.epoch,
            mac: self
                .mac_of(log_id, seq, prev)
                .map(|mac| hex(&mac.finalize().into_bytes()))
                .unwrap_or_default(),
        }
    }

    /// Whether `mac` (hex) is this key's seal of (`log_id`, `seq`, `prev`), in constant time.
    pub fn verify(&self, log_id: &str, seq: u64, prev: &str, mac: &str) -> bool {
        use hmac::Mac;
        match (unhex32(mac), self.mac_of(log_id, seq, prev)) {
            (Some(bytes), Some(expected)) => expected.verify_slice(&bytes).is_ok(),
            _ => false,
        }
    }
}

/// The most records a log sealed every `every` records may hold after its
/// last seal (or its start) before a missing seal is tampering.
///
/// What the writer guarantees: every writer that seals puts a seal at each
/// seq that is a multiple of `every` (the slot after an event whose next seq
/// is one), in the same write and `fdatasync` as the events before it, under
/// the log's lock — so concurrent writers sharing the policy seal at the same
/// places and a crash tears both or neither (a torn tail, exit 2, not a gap).
/// An extra seal (`prodguard audit seal`) can fall just before a slot, so up
/// to `every` records follow a seal before the next. One record from a
/// writer that does not seal (a library caller's `repair_file`, a process
/// run with another policy) taking a seal's slot defers that seal by another
/// `every`: that is the margin. Sealing is by count only; nothing seals on a
/// timer. So more than `2 × every` records after the last seal means seals
/// were removed.
///
/// ```
/// use prodguard_core::audit::max_unsealed;
/// assert_eq!(max_unsealed(1000), 2000);
/// ```
pub fn max_unsealed(every: u64) -> u64 {
    every.saturating_mul(2)
}

/// Checks the seals of a log in order, with a verification key kept off the host.
#[derive(Debug, Clone)]
pub struct SealChecker {
    key: SealKey,
    last_epoch: Option<u64>,
    last_sealed_seq: u64,
}

impl SealChecker {
    /// A checker that accepts seals from `key`'s epoch on.
    pub fn new(key: SealKey) -> Self {
        SealChecker {
            key,
            last_epoch: None,
            last_sealed_seq: 0,
        }
    }

    /// A checker for a log whose start was pruned: `seal`, the last seal
    /// before the kept records (carried by the prune record), is checked
    /// now with the key evolved to its epoch, and the next seal must be of
    /// the epoch after it.
    pub fn resume(
        key: SealKey,
        log_id: &str,
        seq: u64,
        prev: &str,
        seal: &SealInfo,
    ) -> Result<Self, String> {
        let Some(evolved) = key.at_epoch(seal.epoch) else {
            return Err(format!(
                "the last pruned seal is of epoch {}, before the verification key's epoch {}",
                seal.epoch, key.epoch
            ));
        };
        if !evolved.verify(log_id, seq, prev, &seal.mac) {
            return Err(format!(
                "the last pruned seal (record {seq}, epoch {}) named by the prune record does not verify: the prune record was forged",
                seal.epoch
            ));
        }
        Ok(SealChecker {
            key: evolved,
            last_epoch: Some(seal.epoch),
            last_sealed_seq: seq,
        })
    }

    /// Whether record `seq` comes too long after the last seal for a log
    /// sealed every `every` records ([`max_unsealed`]): a seal is missing.
    pub fn overdue(&self, seq: u64, every: u64) -> bool {
        seq.saturating_sub(self.last_sealed_seq) > max_unsealed(every)
    }

    /// The seq of the last seal that checked out (0 before any).
    pub fn last_sealed_seq(&self) -> u64 {
        self.last_sealed_seq
    }

    /// Checks a seal record at `seq` whose `prev` was the chain's head.
    pub fn check(
        &mut self,
        log_id: &str,
        seq: u64,
        prev: &str,
        seal: &SealInfo,
    ) -> Result<(), String> {
        // The first seal must be made with the verification key's own epoch:
        // a later epoch's key (what a compromised host holds) cannot start a chain of seals.
        let expected = self
            .last_epoch
            .map_or(self.key.epoch, |last| last.saturating_add(1));
        if seal.epoch != expected {
            return Err(format!(
                "seal epoch {} where epoch {expected} was expected: epochs must be continuous from the verification key's",
                seal.epoch
            ));
        }
        let Some(key) = self.key.at_epoch(seal.epoch) else {
            return Err(format!(
                "seal epoch {} is before the verification key's epoch {}",
                seal.epoch, self.key.epoch
            ));
        };
        if !key.verify(log_id, seq, prev, &seal.mac) {
            return Err(format!(
                "the seal of epoch {} does not verify: the records before it were changed, or the seal was forged",
                seal.epoch
            ));
        }
        // Later seals can only be of later epochs: keep the evolved key.
        self.key = key;
        self.last_epoch = Some(seal.epoch);
        self.last_sealed_seq = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_verify_only_with_the_right_epoch_key_and_head() {
        let k0 = SealKey {
            epoch: 0,
            key: [3; 32],
        };
        let seal0 = k0.seal("log", 10, "aa");
        let seal1 = k0.evolve().seal("log", 20, "bb");
        let mut checker = SealChecker::new(k0.clone());
        checker.check("log", 10, "aa", &seal0).unwrap();
        checker.check("log", 20, "bb", &seal1).unwrap();
        assert_eq!(checker.last_sealed_seq(), 20);
        // A changed head, seq or log id breaks the MAC.
        for (log, seq, prev) in [("log", 10, "ab"), ("log", 11, "aa"), ("other", 10, "aa")] {
            assert!(
                SealChecker::new(k0.clone())
                    .check(log, seq, prev, &seal0)
                    .is_err()
            );
        }
        // A skipped or repeated epoch is refused.
        let mut checker = SealChecker::new(k0.clone());
        checker.check("log", 10, "aa", &seal0).unwrap();
        assert!(
            checker
                .check("log", 20, "bb", &k0.evolve().evolve().seal("log", 20, "bb"))
                .is_err()
        );
        // A later epoch's key (what a compromised host holds) cannot forge an earlier seal.
        let stolen = k0.evolve();
        let forged = SealInfo {
            epoch: 0,
            ..stolen.seal("log", 10, "aa")
        };
        assert!(
            SealChecker::new(k0.clone())
                .check("log", 10, "aa", &forged)
                .is_err()
        );
        assert!(
            SealChecker::new(stolen.clone())
                .check("log", 10, "aa", &seal0)
                .is_err(),
            "epoch before the key"
        );
        // A forger holding epoch 1's key cannot start a fresh log whose seals verify from epoch 0's.
        let fresh = stolen.seal("log", 3, "cc");
        assert!(
            SealChecker::new(k0.clone())
                .check("log", 3, "cc", &fresh)
                .is_err()
        );
        assert!(!k0.verify("log", 10, "aa", "zz"));
    }
}
