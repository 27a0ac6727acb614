#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unreachable_pub)]
//! Shared by the tests: where the module is, one compiled copy for the
//! whole test binary (compiling it takes a while in debug builds), raw
//! access to the ABI, and tiny hand-made modules that misbehave.

use std::path::PathBuf;
use std::sync::OnceLock;

use prodguard_wasmtime::{ProdguardInstance, ProdguardModule};
use wasmtime::{Instance, Memory, Store};

/// `PRODGUARD_WASM` if set, else `<target dir>/prodguard.wasm`, where the
/// target dir is `CARGO_TARGET_DIR` (relative to the workspace root, as
/// scripts/build-wasm takes it) or `<workspace root>/target`.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PRODGUARD_WASM") {
        return PathBuf::from(path);
    }
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("prodguard.wasm")
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

pub fn module_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = module_path();
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}): run scripts/build-wasm first (or set PRODGUARD_WASM)",
                path.display()
            )
        })
    })
}

/// The module, compiled once per test binary.
pub fn module() -> &'static ProdguardModule {
    static MODULE: OnceLock<ProdguardModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        ProdguardModule::from_bytes(module_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", module_path().display()))
    })
}

pub fn instance() -> ProdguardInstance {
    module().instantiate().expect("instantiate")
}

/// Parses an answer, failing with the text when it is not JSON.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"))
}

/// The module driven by hand, pointer by pointer, as a host without this
/// crate would (or a careless one).
pub struct Raw {
    store: Store<()>,
    instance: Instance,
    pub memory: Memory,
}

impl Raw {
    pub fn new() -> Raw {
        let module = module();
        let mut store = Store::new(module.engine(), ());
        store.set_fuel(u64::MAX / 4).unwrap();
        let instance = Instance::new(&mut store, module.wasmtime_module(), &[]).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        Raw {
            store,
            instance,
            memory,
        }
    }

    fn refuel(&mut self) {
        self.store.set_fuel(10_000_000_000).unwrap();
    }

    /// Calls an export that takes `(req_ptr, req_len, out)`; a trap fails the test.
    pub fn call(&mut self, export: &str, req_ptr: u32, req_len: u32, out: u32) -> u32 {
        self.refuel();
        let func = self
            .instance
            .get_typed_func::<(u32, u32, u32), u32>(&mut self.store, export)
            .unwrap();
        func.call(&mut self.store, (req_ptr, req_len, out))
            .unwrap_or_else(|e| {
                panic!("{export}({req_ptr:#x}, {req_len}, {out:#x}) trapped: {e:#}")
            })
    }

    pub fn alloc(&mut self, len: u32) -> u32 {
        self.refuel();
        let func = self
            .instance
            .get_typed_func::<u32, u32>(&mut self.store, "prodguard_alloc")
            .unwrap();
        func.call(&mut self.store, len)
            .unwrap_or_else(|e| panic!("prodguard_alloc({len}) trapped: {e:#}"))
    }

    pub fn dealloc(&mut self, ptr: u32, len: u32) {
        self.refuel();
        let func = self
            .instance
            .get_typed_func::<(u32, u32), ()>(&mut self.store, "prodguard_dealloc")
            .unwrap();
        func.call(&mut self.store, (ptr, len))
            .unwrap_or_else(|e| panic!("prodguard_dealloc({ptr:#x}, {len}) trapped: {e:#}"))
    }

    pub fn abi_version(&mut self) -> u32 {
        self.refuel();
        let func = self
            .instance
            .get_typed_func::<(), u32>(&mut self.store, "prodguard_abi_version")
            .unwrap();
        func.call(&mut self.store, ()).unwrap()
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) {
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .unwrap();
    }

    pub fn read(&self, ptr: u32, len: u32) -> Vec<u8> {
        let mut bytes = vec![0; len as usize];
        self.memory
            .read(&self.store, ptr as usize, &mut bytes)
            .unwrap();
        bytes
    }

    /// The `(ptr, len)` pair at `out`.
    pub fn read_out(&self, out: u32) -> (u32, u32) {
        let pair = self.read(out, 8);
        (
            u32::from_le_bytes(pair[..4].try_into().unwrap()),
            u32::from_le_bytes(pair[4..].try_into().unwrap()),
        )
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// A copy of the whole linear memory.
    pub fn snapshot(&self) -> Vec<u8> {
        self.memory.data(&self.store).to_vec()
    }

    /// The whole calling convention of ABI.md: alloc and write the request,
    /// alloc `out`, call, copy the answer out, free all three.
    pub fn request(&mut self, export: &str, request: &[u8]) -> (u32, String) {
        let len = u32::try_from(request.len()).unwrap();
        let req = if len == 0 { 0 } else { self.alloc(len) };
        assert!(len == 0 || req != 0, "prodguard_alloc({len}) gave 0");
        self.write(req, request);
        let out = self.alloc(8);
        assert_ne!(out, 0);
        let status = self.call(export, req, len, out);
        let (ptr, answer_len) = self.read_out(out);
        let answer = String::from_utf8(self.read(ptr, answer_len)).expect("answer is UTF-8");
        self.dealloc(ptr, answer_len);
        self.dealloc(out, 8);
        self.dealloc(req, len);
        (status, answer)
    }
}

// ---------------------------------------------------------------- fake modules

const I32: u8 = 0x7f;

fn leb(mut value: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn name(text: &str, out: &mut Vec<u8>) {
    leb(text.len() as u32, out);
    out.extend_from_slice(text.as_bytes());
}

fn section(id: u8, items: &[Vec<u8>], out: &mut Vec<u8>) {
    if items.is_empty() {
        return;
    }
    let mut body = Vec::new();
    leb(items.len() as u32, &mut body);
    for item in items {
        body.extend_from_slice(item);
    }
    out.push(id);
    leb(body.len() as u32, out);
    out.extend_from_slice(&body);
}

/// `i32.const value`.
pub fn i32_const(value: i32) -> Vec<u8> {
    let mut out = vec![0x41];
    let mut value = i64::from(value);
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Function bodies for fake exports (the instructions, without `end`).
pub mod body {
    use super::i32_const;

    /// `loop br 0 end unreachable`: never returns.
    pub fn spin() -> Vec<u8> {
        vec![0x03, 0x40, 0x0c, 0x00, 0x0b, 0x00]
    }

    /// `unreachable`.
    pub fn trap() -> Vec<u8> {
        vec![0x00]
    }

    /// Grows memory a page at a time until growing fails, then traps.
    pub fn grow_forever() -> Vec<u8> {
        let mut out = vec![0x03, 0x40];
        out.extend(i32_const(1));
        out.extend([0x40, 0x00]); // memory.grow
        out.extend(i32_const(-1));
        out.extend([0x47, 0x0d, 0x00, 0x0b, 0x00]); // i32.ne, br_if 0, end, unreachable
        out
    }

    /// Writes `(ptr, len)` at `out` (the third parameter) and returns `status`.
    pub fn answer(ptr: u32, len: u32, status: i32) -> Vec<u8> {
        let mut out = vec![0x20, 0x02];
        out.extend(i32_const(ptr as i32));
        out.extend([0x36, 0x02, 0x00]); // i32.store align=4 offset=0
        out.extend([0x20, 0x02]);
        out.extend(i32_const(len as i32));
        out.extend([0x36, 0x02, 0x04]); // offset=4
        out.extend(i32_const(status));
        out
    }

    /// Returns `value`.
    pub fn constant(value: i32) -> Vec<u8> {
        i32_const(value)
    }
}

/// A WebAssembly module put together byte by byte (no `wat` needed): every
/// value is an i32, functions have no locals.
#[derive(Default)]
pub struct Fake {
    types: Vec<Vec<u8>>,
    imports: Vec<Vec<u8>>,
    functions: Vec<Vec<u8>>,
    code: Vec<Vec<u8>>,
    memory_pages: Option<u32>,
    exports: Vec<Vec<u8>>,
    data: Vec<Vec<u8>>,
    imported: u32,
}

impl Fake {
    fn type_index(&mut self, params: usize, results: usize) -> u32 {
        let mut ty = vec![0x60];
        leb(params as u32, &mut ty);
        ty.extend(std::iter::repeat_n(I32, params));
        leb(results as u32, &mut ty);
        ty.extend(std::iter::repeat_n(I32, results));
        if let Some(i) = self.types.iter().position(|t| *t == ty) {
            return i as u32;
        }
        self.types.push(ty);
        (self.types.len() - 1) as u32
    }

    /// Imports a function; call before adding functions.
    pub fn import(mut self, module: &str, field: &str) -> Fake {
        let ty = self.type_index(0, 0);
        let mut import = Vec::new();
        name(module, &mut import);
        name(field, &mut import);
        import.push(0x00);
        leb(ty, &mut import);
        self.imports.push(import);
        self.imported += 1;
        self
    }

    /// Adds and exports a function of `params` → `results` i32s.
    pub fn func(mut self, export: &str, params: usize, results: usize, body: &[u8]) -> Fake {
        let ty = self.type_index(params, results);
        let mut f = Vec::new();
        leb(ty, &mut f);
        self.functions.push(f);
        let mut code = vec![0x00]; // no locals
        code.extend_from_slice(body);
        code.push(0x0b);
        let mut entry = Vec::new();
        leb(code.len() as u32, &mut entry);
        entry.extend(code);
        self.code.push(entry);
        let index = self.imported + self.functions.len() as u32 - 1;
        let mut e = Vec::new();
        name(export, &mut e);
        e.push(0x00);
        leb(index, &mut e);
        self.exports.push(e);
        self
    }

    /// A memory of `pages` 64 KiB pages, exported as `memory`.
    pub fn memory(mut self, pages: u32) -> Fake {
        self.memory_pages = Some(pages);
        let mut e = Vec::new();
        name("memory", &mut e);
        e.push(0x02);
        leb(0, &mut e);
        self.exports.push(e);
        self
    }

    /// `bytes` at `offset` in memory 0.
    pub fn data(mut self, offset: u32, bytes: &[u8]) -> Fake {
        let mut d = vec![0x00];
        d.extend(i32_const(offset as i32));
        d.push(0x0b);
        leb(bytes.len() as u32, &mut d);
        d.extend_from_slice(bytes);
        self.data.push(d);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        section(1, &self.types, &mut out);
        section(2, &self.imports, &mut out);
        section(3, &self.functions, &mut out);
        if let Some(pages) = self.memory_pages {
            let mut limits = vec![0x00];
            leb(pages, &mut limits);
            section(5, &[limits], &mut out);
        }
        section(7, &self.exports, &mut out);
        section(10, &self.code, &mut out);
        section(11, &self.data, &mut out);
        out
    }
}

/// A module with ABI 2's exports whose `prodguard_evaluate` runs
/// `evaluate` (the others answer 125 with nothing written), reporting
/// `version` from `prodguard_abi_version`.
pub fn fake_abi(version: u32, evaluate: &[u8]) -> Fake {
    fake_abi_on(Fake::default(), version, evaluate)
}

/// [`fake_abi`] added to `base` (e.g. a module with imports).
pub fn fake_abi_on(base: Fake, version: u32, evaluate: &[u8]) -> Fake {
    base.memory(1)
        .func(
            "prodguard_abi_version",
            0,
            1,
            &body::constant(version as i32),
        )
        .func("prodguard_alloc", 1, 1, &body::constant(1024))
        .func("prodguard_dealloc", 2, 0, &[])
        .func("prodguard_evaluate", 3, 1, evaluate)
        .func("prodguard_audit_record", 3, 1, &body::constant(125))
        .func("prodguard_verify_approval", 3, 1, &body::constant(125))
}
