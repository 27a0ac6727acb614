//! The guard session state machine.
