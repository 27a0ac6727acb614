//! The exports. Every one checks what the host hands it (pointers against
//! the memory's size, UTF-8, sizes) and answers with a status code, so bad
//! input never traps the module or corrupts its memory.

// The exports take raw offsets into linear memory; this is the one place
// they become Rust references.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc};
use std::cell::RefCell;
use std::collections::BTreeMap;

use prodguard_core::json_api::{self, JsonApi, Response};

/// `major << 16 | minor`: a host refuses a major it does not know.
const ABI_VERSION: u32 = 2 << 16 | 4;

/// Requests larger than this are refused with 125 (no policy is this big).
const MAX_REQUEST_BYTES: u32 = 8 << 20;

/// Status: a pointer or length out of bounds, or input that is not UTF-8.
const INVALID_ARGUMENT: u32 = 2;
/// Status: the module could not allocate its answer.
const OUT_OF_MEMORY: u32 = 4;

thread_local! {
    /// Every block handed out by `prodguard_alloc` or as an answer, by
    /// address, with its length: `prodguard_dealloc` frees only what is
    /// here, so a double or wrong free is ignored instead of corrupting the
    /// heap.
    static LIVE: RefCell<BTreeMap<u32, u32>> = const { RefCell::new(BTreeMap::new()) };

    /// The instance's JSON API: it keeps the last policy parsed, so a host
    /// that sends the same policy with every request parses it once. A
    /// wasm instance is single-threaded and its memory its own, so this is
    /// the instance's state, not a process's.
    static API: RefCell<JsonApi> = RefCell::new(JsonApi::new());
}

/// The ABI version, `major << 16 | minor`.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_abi_version() -> u32 {
    ABI_VERSION
}

/// Allocates `len` bytes for the host to write a request into; 0 when
/// `len` is 0 or the memory cannot grow.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_alloc(len: u32) -> u32 {
    allocate(len)
}

fn allocate(len: u32) -> u32 {
    let Ok(layout) = Layout::from_size_align(len as usize, 1) else {
        return 0;
    };
    if len == 0 {
        return 0;
    }
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc(layout) };
    if ptr.is_null() {
        return 0;
    }
    // Addresses are 32-bit on wasm32, so the cast is exact.
    let address = ptr as usize as u32;
    LIVE.with(|live| live.borrow_mut().insert(address, len));
    address
}

/// Frees a block from `prodguard_alloc` or an answer. Unknown blocks, a
/// wrong length and `(0, _)` are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_dealloc(ptr: u32, len: u32) {
    let known = LIVE.with(|live| {
        let mut live = live.borrow_mut();
        if live.get(&ptr) == Some(&len) {
            live.remove(&ptr);
            true
        } else {
            false
        }
    });
    if !known {
        return;
    }
    let Ok(layout) = Layout::from_size_align(len as usize, 1) else {
        return;
    };
    // SAFETY: `ptr` was allocated by `allocate` with this very layout (the
    // registry says so) and is freed once (it was just removed from it).
    unsafe { dealloc(ptr as usize as *mut u8, layout) };
}

/// Evaluates a request (see ABI.md): detection, decision, and with
/// evidence the session's verdict.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_evaluate(req_ptr: u32, req_len: u32, out: u32) -> u32 {
    call(req_ptr, req_len, out, |request| {
        API.with(|api| match api.try_borrow_mut() {
            Ok(mut api) => api.evaluate_json(request),
            // Never: exports do not re-enter. Uncached is still right.
            Err(_) => json_api::evaluate_json(request),
        })
    })
}

/// Turns an audit event and the previous hash into the exact record line
/// the Rust file sink writes.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_audit_record(req_ptr: u32, req_len: u32, out: u32) -> u32 {
    call(req_ptr, req_len, out, json_api::audit_record_json)
}

/// Checks an approval token against an operation, under the request's
/// policy (its approvers' public keys), in the ledger the host names.
#[unsafe(no_mangle)]
pub extern "C" fn prodguard_verify_approval(req_ptr: u32, req_len: u32, out: u32) -> u32 {
    call(req_ptr, req_len, out, |request| {
        API.with(|api| match api.try_borrow_mut() {
            Ok(mut api) => api.verify_approval_json(request),
            // Never: exports do not re-enter. Uncached is still right.
            Err(_) => json_api::verify_approval_json(request),
        })
    })
}

/// The bytes of linear memory in use now (u64: a full 4 GiB memory does
/// not fit a wasm32 usize).
fn memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65536
}

/// Whether `[ptr, ptr + len)` lies inside linear memory (and is not the null
/// address, which Rust may not read through).
fn in_bounds(ptr: u32, len: u32) -> bool {
    ptr != 0 && u64::from(ptr) + u64::from(len) <= memory_bytes()
}

fn call(req_ptr: u32, req_len: u32, out: u32, handler: impl FnOnce(&str) -> Response) -> u32 {
    if !in_bounds(out, 8) {
        // Nowhere to write an answer: the status alone says why.
        return INVALID_ARGUMENT;
    }
    let response = if req_len > MAX_REQUEST_BYTES {
        Response::error(
            125,
            format!("the request is {req_len} bytes; at most {MAX_REQUEST_BYTES} are read"),
        )
    } else if req_len != 0 && !in_bounds(req_ptr, req_len) {
        Response::error(
            INVALID_ARGUMENT as i32,
            "the request's pointer and length lie outside the module's memory",
        )
    } else {
        let bytes: &[u8] = if req_len == 0 {
            &[]
        } else {
            // SAFETY: the range lies inside linear memory (checked above)
            // and nothing else runs while this call does.
            unsafe { std::slice::from_raw_parts(req_ptr as usize as *const u8, req_len as usize) }
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => handler(text),
            Err(e) => Response::error(
                INVALID_ARGUMENT as i32,
                format!("the request is not UTF-8: {e}"),
            ),
        }
    };
    let status = response.status as u32;
    let body = if response.status == 0 {
        format!("{{\"ok\":{}}}", response.body)
    } else {
        response.body
    };
    let (answer, written) = match u32::try_from(body.len()) {
        Ok(len) => (allocate(len), len),
        Err(_) => (0, 0),
    };
    if answer == 0 {
        write_out(out, 0, 0);
        return OUT_OF_MEMORY;
    }
    // SAFETY: `answer` is a fresh block of `written` bytes that nothing else
    // refers to, and `body` is at least that long.
    unsafe {
        std::ptr::copy_nonoverlapping(body.as_ptr(), answer as usize as *mut u8, written as usize)
    };
    write_out(out, answer, written);
    status
}

/// Writes (ptr, len) as two little-endian u32 at `out` (checked in bounds).
fn write_out(out: u32, ptr: u32, len: u32) {
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&ptr.to_le_bytes());
    pair[4..].copy_from_slice(&len.to_le_bytes());
    // SAFETY: `out..out + 8` is inside linear memory (checked by `call`);
    // a byte copy needs no alignment.
    unsafe { std::ptr::copy_nonoverlapping(pair.as_ptr(), out as usize as *mut u8, 8) };
}
