//! One instance of the module and the calling convention of ABI.md.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::{
    Instance, Memory, ResourceLimiter, Store, Trap, TypedFunc, WasmParams, WasmResults,
};

use crate::types::{ApprovalClaims, Evaluation, RecordLine};
use crate::{Error, ProdguardModule};

/// One of the three request/answer exports of ABI.md.
///
/// ```
/// use prodguard_wasmtime::Export;
///
/// assert_eq!(Export::Evaluate.name(), "prodguard_evaluate");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Export {
    /// `prodguard_evaluate`: detection, decision and the session's verdict.
    Evaluate,
    /// `prodguard_audit_record`: an audit event → the record line.
    AuditRecord,
    /// `prodguard_verify_approval`: checks an approval token.
    VerifyApproval,
}

impl Export {
    /// The export's name in the module.
    ///
    /// ```
    /// assert_eq!(prodguard_wasmtime::Export::AuditRecord.name(), "prodguard_audit_record");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Export::Evaluate => "prodguard_evaluate",
            Export::AuditRecord => "prodguard_audit_record",
            Export::VerifyApproval => "prodguard_verify_approval",
        }
    }
}

const ALLOC: &str = "prodguard_alloc";
const DEALLOC: &str = "prodguard_dealloc";
const ABI_VERSION: &str = "prodguard_abi_version";

/// The ABI's status for an answer the module could not allocate.
const OUT_OF_MEMORY: u32 = 4;

/// Refuses linear-memory growth past the cap, and remembers that it did
/// (so a failure can be reported as [`Error::MemoryLimit`]).
struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The module's function table is fixed; nothing legitimate grows it far.
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A live wasmtime instance: its store, memory and exports.
pub(crate) struct Live {
    store: Store<MemoryCap>,
    memory: Memory,
    abi_version: TypedFunc<(), u32>,
    alloc: TypedFunc<u32, u32>,
    dealloc: TypedFunc<(u32, u32), ()>,
    evaluate: TypedFunc<(u32, u32, u32), u32>,
    audit_record: TypedFunc<(u32, u32, u32), u32>,
    verify_approval: TypedFunc<(u32, u32, u32), u32>,
}

/// What one exchange gave back.
struct Exchange {
    status: u32,
    answer: Vec<u8>,
    fuel_used: u64,
}

impl Live {
    pub(crate) fn new(module: &ProdguardModule) -> Result<Live, Error> {
        let limits = module.limits();
        let mut store = Store::new(
            module.engine(),
            MemoryCap {
                limit: limits.max_memory_bytes(),
                hit: false,
            },
        );
        store.limiter(|cap| cap as &mut dyn ResourceLimiter);
        let instantiate = |message: String| Error::Instantiate { message };
        store
            .set_fuel(limits.fuel_per_call())
            .map_err(|e| instantiate(format!("{e:#}")))?;
        let instance = Instance::new(&mut store, module.wasmtime_module(), &[])
            .map_err(|e| instantiate(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| instantiate("the module has no `memory` export".into()))?;
        macro_rules! func {
            ($name:expr) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| instantiate(format!("{}: {e:#}", $name)))?
            };
        }
        Ok(Live {
            abi_version: func!(ABI_VERSION),
            alloc: func!(ALLOC),
            dealloc: func!(DEALLOC),
            evaluate: func!(Export::Evaluate.name()),
            audit_record: func!(Export::AuditRecord.name()),
            verify_approval: func!(Export::VerifyApproval.name()),
            memory,
            store,
        })
    }

    pub(crate) fn abi_version(&mut self, fuel: u64) -> Result<u32, Error> {
        let func = self.abi_version.clone();
        self.invoke(ABI_VERSION, &func, (), fuel)
    }

    /// Calls `func` with a fresh fuel budget; a trap becomes the matching error.
    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        func: &TypedFunc<P, R>,
        args: P,
        fuel: u64,
    ) -> Result<R, Error> {
        if let Err(e) = self.store.set_fuel(fuel) {
            return Err(Error::Trap {
                export: name,
                message: format!("cannot set the fuel budget: {e:#}"),
            });
        }
        func.call(&mut self.store, args).map_err(|e| {
            if matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) {
                Error::FuelExhausted { export: name, fuel }
            } else if self.store.data().hit {
                Error::MemoryLimit {
                    export: name,
                    limit: self.store.data().limit,
                }
            } else {
                Error::Trap {
                    export: name,
                    message: format!("{e:#}"),
                }
            }
        })
    }

    fn out_of_memory(&self, export: &'static str) -> Error {
        let cap = self.store.data();
        if cap.hit {
            Error::MemoryLimit {
                export,
                limit: cap.limit,
            }
        } else {
            Error::Status {
                code: OUT_OF_MEMORY,
                message: format!("the module could not allocate memory in `{export}`"),
            }
        }
    }

    fn alloc(&mut self, len: u32, fuel: u64) -> Result<u32, Error> {
        let func = self.alloc.clone();
        let ptr = self.invoke(ALLOC, &func, len, fuel)?;
        if ptr == 0 {
            return Err(self.out_of_memory(ALLOC));
        }
        Ok(ptr)
    }

    fn dealloc(&mut self, ptr: u32, len: u32, fuel: u64) -> Result<(), Error> {
        let func = self.dealloc.clone();
        self.invoke(DEALLOC, &func, (ptr, len), fuel)
    }

    fn violation(export: Export, problem: impl Into<String>) -> Error {
        Error::AbiViolation {
            export: export.name(),
            problem: problem.into(),
        }
    }

    /// ABI.md's calling convention: alloc the request and `out`, call, read
    /// `(ptr, len)` at `out`, copy the answer out, then free the answer, the
    /// request and `out`.
    fn exchange(&mut self, export: Export, request: &[u8], fuel: u64) -> Result<Exchange, Error> {
        self.store.data_mut().hit = false;
        let Ok(len) = u32::try_from(request.len()) else {
            return Err(Error::MemoryLimit {
                export: ALLOC,
                limit: self.store.data().limit,
            });
        };
        let req_ptr = if len == 0 { 0 } else { self.alloc(len, fuel)? };
        if len != 0 {
            self.memory
                .write(&mut self.store, req_ptr as usize, request)
                .map_err(|_| {
                    Live::violation(export, "prodguard_alloc returned a block outside memory")
                })?;
        }
        let out = match self.alloc(8, fuel) {
            Ok(out) => out,
            Err(e) => {
                if req_ptr != 0 {
                    self.dealloc(req_ptr, len, fuel)?;
                }
                return Err(e);
            }
        };
        // A module that writes nothing leaves (0, 0), not stale bytes.
        self.memory
            .write(&mut self.store, out as usize, &[0; 8])
            .map_err(|_| {
                Live::violation(export, "prodguard_alloc returned a block outside memory")
            })?;
        let func = match export {
            Export::Evaluate => self.evaluate.clone(),
            Export::AuditRecord => self.audit_record.clone(),
            Export::VerifyApproval => self.verify_approval.clone(),
        };
        let status = self.invoke(export.name(), &func, (req_ptr, len, out), fuel)?;
        let fuel_used = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        // Memory may have grown during the call: read it afresh.
        let mut pair = [0u8; 8];
        self.memory
            .read(&self.store, out as usize, &mut pair)
            .map_err(|_| Live::violation(export, "`out` is no longer inside memory"))?;
        let [a, b, c, d, e, f, g, h] = pair;
        let answer_ptr = u32::from_le_bytes([a, b, c, d]);
        let answer_len = u32::from_le_bytes([e, f, g, h]);
        let answer = if answer_len == 0 {
            Vec::new()
        } else {
            let start = answer_ptr as usize;
            let end = start.saturating_add(answer_len as usize);
            match self.memory.data(&self.store).get(start..end) {
                Some(bytes) if answer_ptr != 0 => bytes.to_vec(),
                _ => {
                    return Err(Live::violation(
                        export,
                        format!(
                            "the answer ({answer_ptr:#x}, {answer_len} bytes) lies outside memory"
                        ),
                    ));
                }
            }
        };
        if answer_ptr != 0 {
            self.dealloc(answer_ptr, answer_len, fuel)?;
        }
        self.dealloc(out, 8, fuel)?;
        if req_ptr != 0 {
            self.dealloc(req_ptr, len, fuel)?;
        }
        if status == OUT_OF_MEMORY && answer.is_empty() && self.store.data().hit {
            return Err(self.out_of_memory(export.name()));
        }
        Ok(Exchange {
            status,
            answer,
            fuel_used,
        })
    }
}

/// An instance of `prodguard.wasm` with its own wasmtime `Store`: calls
/// go through ABI.md's calling convention, under the fuel budget and the
/// memory cap of its [`Limits`](crate::Limits).
///
/// One call at a time (`&mut self`); the instance is `Send`, so it can move
/// between threads, but each thread that evaluates concurrently needs its
/// own instance (see [`ProdguardModule::instantiate`]).
///
/// **After a trap the instance replaces itself.** When a call traps
/// (including running out of fuel or past the memory cap) or the module
/// breaks the ABI, the call returns the error *and* the instance discards
/// its store and instantiates the module afresh before returning, as ABI.md
/// requires. The next call runs in a clean module; nothing is poisoned.
/// [`replacements`](ProdguardInstance::replacements) counts how often that
/// happened (anything above 0 is a bug worth reporting, or a budget set
/// too low).
///
/// ```no_run
/// use prodguard_wasmtime::{EvaluateRequest, ProdguardModule};
///
/// let module = ProdguardModule::from_file("target/prodguard.wasm")?;
/// let mut instance = module.instantiate()?;
/// let evaluation = instance.evaluate(&EvaluateRequest::new("cache.flush"))?;
/// assert_eq!(instance.replacements(), 0);
/// # Ok::<(), prodguard_wasmtime::Error>(())
/// ```
pub struct ProdguardInstance {
    module: ProdguardModule,
    fuel_per_call: u64,
    live: Option<Live>,
    fuel_used: u64,
    replacements: u64,
}

impl std::fmt::Debug for ProdguardInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProdguardInstance")
            .field("module", &self.module)
            .field("fuel_per_call", &self.fuel_per_call)
            .field("memory_bytes", &self.memory_bytes())
            .field("replacements", &self.replacements)
            .finish_non_exhaustive()
    }
}

impl ProdguardInstance {
    pub(crate) fn new(module: ProdguardModule) -> Result<ProdguardInstance, Error> {
        let live = Live::new(&module)?;
        Ok(ProdguardInstance {
            fuel_per_call: module.limits().fuel_per_call(),
            module,
            live: Some(live),
            fuel_used: 0,
            replacements: 0,
        })
    }

    /// Evaluates a request with `prodguard_evaluate`: detection, decision
    /// and, when the request carries evidence, the guard session's verdict.
    ///
    /// `request` is an [`EvaluateRequest`](crate::EvaluateRequest), a
    /// `serde_json::Value`, or anything else that serialises to the
    /// request JSON of ABI.md. A deny or a confirmation to ask for is an
    /// `Ok` evaluation; a bad request or policy is
    /// [`Error::Status`] with code 125 and the module's message.
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{ProdguardModule, Verdict};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let evaluation = instance.evaluate(&serde_json::json!({
    ///     "facts": {"env": {"APP_ENV": "production"}},
    ///     "operation": {"kind": "db.migrate", "target": "orders"},
    /// }))?;
    /// assert_eq!(evaluation.decision.result, Verdict::Require);
    /// assert_eq!(evaluation.decision.exit_code, 121);
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn evaluate<R: Serialize + ?Sized>(&mut self, request: &R) -> Result<Evaluation, Error> {
        self.typed(Export::Evaluate, request)
    }

    /// Turns an audit event into the exact record line the Rust file sink
    /// writes, chained to `prev`, with `prodguard_audit_record`.
    ///
    /// `request` is an [`AuditRecordRequest`](crate::AuditRecordRequest)
    /// or its JSON. Append [`RecordLine::line`] to the log as is; the next
    /// record's `prev` is [`RecordLine::hash`].
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{AuditRecordRequest, ProdguardModule, GENESIS_PREV};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let first = instance.audit_record(&AuditRecordRequest {
    ///     log_id: "3f6c0e1a9b2d4c5e".into(),
    ///     seq: 1,
    ///     ts: "2026-11-27T10:00:00.000001Z".into(),
    ///     host: "web-1".into(),
    ///     pid: 4242,
    ///     prev: GENESIS_PREV.into(),
    ///     event: serde_json::from_value(serde_json::json!({"kind": "note", "message": "plugin host started"}))?,
    /// })?;
    /// assert!(first.line.ends_with('\n'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn audit_record<R: Serialize + ?Sized>(
        &mut self,
        request: &R,
    ) -> Result<RecordLine, Error> {
        self.typed(Export::AuditRecord, request)
    }

    /// Checks an approval token against an operation with
    /// `prodguard_verify_approval`: its claims when it approves, otherwise
    /// [`Error::Status`] with code 121 naming the binding that failed.
    ///
    /// The token is judged by the request's policy (its `[approval]
    /// approvers`, `max_ttl` and `four_eyes`) and must name the ledger the
    /// host spends it in. The host still spends the claims' `nonce` once
    /// (its ledger must refuse a nonce it has seen).
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{Actor, ActorKind, ApprovalRequest, Operation, ProdguardModule, Tier};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let result = instance.verify_approval(&ApprovalRequest {
    ///     token: std::env::var("PRODGUARD_APPROVAL").unwrap_or_default(),
    ///     policy: None,
    ///     // Read only once /etc/prodguard is found to be root's alone.
    ///     system_policy: prodguard_wasmtime::system_policy_text()?,
    ///     ledger: Some("file://db-1/var/log/prodguard/audit.jsonl".into()),
    ///     operation: Operation::new("db.migrate").target("orders"),
    ///     environment: "production".into(),
    ///     tier: Tier::Production,
    ///     requester: Actor {
    ///         user: "alice".into(),
    ///         kind: ActorKind::Human,
    ///         account: Some("alice".into()),
    ///     },
    ///     now: prodguard_wasmtime::now_rfc3339(),
    /// });
    /// match result {
    ///     Ok(claims) => println!("approved by {}; spend nonce {}", claims.approver, claims.nonce),
    ///     Err(e) => println!("not approved: {e}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify_approval<R: Serialize + ?Sized>(
        &mut self,
        request: &R,
    ) -> Result<ApprovalClaims, Error> {
        self.typed(Export::VerifyApproval, request)
    }

    /// Calls `export` with the request bytes as they are and returns the
    /// status and the answer text exactly as the module wrote them
    /// (`{"ok": …}` for status 0, `{"error": …}` otherwise, empty for
    /// status 4). A non-zero status is *not* an `Err` here; only a trap,
    /// the limits or a broken ABI are.
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{Export, ProdguardModule};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let (status, answer) = instance.call_json(Export::Evaluate, r#"{"operation": {"kind": 3}}"#)?;
    /// assert_eq!(status, 125);
    /// assert!(answer.starts_with(r#"{"error":"#));
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn call_json(
        &mut self,
        export: Export,
        request: impl AsRef<[u8]>,
    ) -> Result<(u32, String), Error> {
        let fuel = self.fuel_per_call;
        let result = match self.live() {
            Ok(live) => live.exchange(export, request.as_ref(), fuel),
            Err(e) => Err(e),
        };
        let exchange = match result {
            Ok(exchange) => exchange,
            Err(e) => return Err(self.after_failure(e)),
        };
        self.fuel_used = exchange.fuel_used;
        match String::from_utf8(exchange.answer) {
            Ok(answer) => Ok((exchange.status, answer)),
            Err(_) => Err(self.after_failure(Live::violation(export, "the answer is not UTF-8"))),
        }
    }

    /// The fuel budget of each call into the module (from the module's
    /// [`Limits`](crate::Limits) until [`set_fuel_per_call`](ProdguardInstance::set_fuel_per_call)).
    ///
    /// ```no_run
    /// let instance = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// assert_eq!(instance.fuel_per_call(), prodguard_wasmtime::DEFAULT_FUEL_PER_CALL);
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn fuel_per_call(&self) -> u64 {
        self.fuel_per_call
    }

    /// Sets the fuel budget of each later call into the module.
    ///
    /// ```no_run
    /// let mut instance = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// instance.set_fuel_per_call(1_000_000_000); // a very large policy
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn set_fuel_per_call(&mut self, fuel: u64) {
        self.fuel_per_call = fuel;
    }

    /// The fuel the last successful export call used (the request's own
    /// alloc and dealloc calls not counted): a guide for
    /// [`set_fuel_per_call`](ProdguardInstance::set_fuel_per_call).
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{EvaluateRequest, ProdguardModule};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let policy = std::fs::read_to_string("prodguard.toml").unwrap_or_default();
    /// instance.evaluate(&EvaluateRequest::new("db.migrate").policy(policy))?;
    /// // Leave a wide margin: a looping module is what the budget is for.
    /// instance.set_fuel_per_call(instance.fuel_used().saturating_mul(100).max(10_000_000));
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// The size of the instance's linear memory now, in bytes (0 while no
    /// instance is live, i.e. after a replacement failed to instantiate).
    /// It never shrinks while the instance lives, and stays within
    /// [`Limits::max_memory_bytes`](crate::Limits::max_memory_bytes).
    ///
    /// ```no_run
    /// let instance = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// assert!(instance.memory_bytes() <= instance.module().limits().max_memory_bytes());
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |live| live.memory.data_size(&live.store))
    }

    /// How many times this instance replaced its wasmtime instance after a
    /// trap, fuel exhaustion, the memory cap or a broken ABI.
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{Error, EvaluateRequest, ProdguardModule};
    ///
    /// let mut instance = ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// instance.set_fuel_per_call(10); // far too little
    /// let error = instance.evaluate(&EvaluateRequest::new("db.migrate")).unwrap_err();
    /// assert!(matches!(error, Error::FuelExhausted { .. }));
    /// assert_eq!(instance.replacements(), 1); // and the instance is fresh again
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn replacements(&self) -> u64 {
        self.replacements
    }

    /// The module this instance runs.
    ///
    /// ```no_run
    /// let instance = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?.instantiate()?;
    /// let another = instance.module().instantiate()?;
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn module(&self) -> &ProdguardModule {
        &self.module
    }

    fn live(&mut self) -> Result<&mut Live, Error> {
        let live = match self.live.take() {
            Some(live) => live,
            None => Live::new(&self.module)?,
        };
        Ok(self.live.insert(live))
    }

    /// Discards the wasmtime instance when `error` means its state can no
    /// longer be trusted, and starts a fresh one (or, if that fails, leaves
    /// none: the next call tries again).
    fn after_failure(&mut self, error: Error) -> Error {
        let poisons = matches!(
            error,
            Error::Trap { .. }
                | Error::FuelExhausted { .. }
                | Error::MemoryLimit { .. }
                | Error::AbiViolation { .. }
        );
        if poisons {
            self.replacements += 1;
            self.live = None;
            self.live = Live::new(&self.module).ok();
        }
        error
    }

    fn typed<T: DeserializeOwned, R: Serialize + ?Sized>(
        &mut self,
        export: Export,
        request: &R,
    ) -> Result<T, Error> {
        let bytes = serde_json::to_vec(request).map_err(Error::Request)?;
        let (status, answer) = self.call_json(export, bytes)?;
        if status == 0 {
            #[derive(serde::Deserialize)]
            struct Answer<T> {
                ok: T,
            }
            return match serde_json::from_str::<Answer<T>>(&answer) {
                Ok(answer) => Ok(answer.ok),
                Err(e) => Err(self.after_failure(Live::violation(
                    export,
                    format!("the answer of status 0 is not the documented {{\"ok\": …}}: {e}"),
                ))),
            };
        }
        #[derive(serde::Deserialize)]
        struct ErrorAnswer {
            error: ErrorBody,
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            message: String,
        }
        match serde_json::from_str::<ErrorAnswer>(&answer) {
            Ok(body) => Err(Error::Status {
                code: status,
                message: body.error.message,
            }),
            Err(_) if answer.is_empty() => Err(Error::Status {
                code: status,
                message: if status == OUT_OF_MEMORY {
                    "the module could not allocate its answer; send a smaller request".into()
                } else {
                    "the module gave no answer".into()
                },
            }),
            Err(e) => Err(self.after_failure(Live::violation(
                export,
                format!(
                    "the answer of status {status} is not the documented {{\"error\": …}}: {e}"
                ),
            ))),
        }
    }
}
