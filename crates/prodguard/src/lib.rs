//! The prodguard runtime.
