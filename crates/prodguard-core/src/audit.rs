//! Audit events, records and the hash chain.
