//! `prodguard.wasm`: the prodguard core as a plain WebAssembly core module
//! for plugin hosts (wasmtime, Node, browsers). No wasm-bindgen and no
//! imports: the host passes every fact in as JSON and performs every side
//! effect itself. The ABI is specified in `bindings/wasm/ABI.md`.
//!
//! Build it with
//! `cargo build -p prodguard-wasm --target wasm32-unknown-unknown --profile wasm-release`;
//! on other targets this crate is empty.

#[cfg(target_arch = "wasm32")]
pub mod abi;
