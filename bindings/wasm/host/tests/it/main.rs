#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! prodguard.wasm in real wasmtime, through prodguard-wasmtime.
//!
//! One test binary on purpose: compiling the module takes a while in debug
//! builds, and every test shares one compiled copy (`common::module`).
//! The module must be built first: `scripts/build-wasm` (or set
//! `PRODGUARD_WASM` to its path).

mod common;

mod audit;
mod dts;
mod exports;
mod facts;
mod fuzz;
mod junk;
mod limits;
mod memory;
mod policy;
mod session;
mod sql;
mod vectors;
