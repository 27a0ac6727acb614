//! Loading `prodguard.wasm`: compile once, check the ABI, hand out instances.

use std::fmt;
use std::path::Path;

use wasmtime::{Config, Engine, ExternType, FuncType, Module, ValType};

use crate::Error;
use crate::instance::{Live, ProdguardInstance};

/// The ABI major version this crate speaks (ABI.md, version 1.0).
pub const SUPPORTED_ABI_MAJOR: u16 = 2;

/// The exports of an ABI 2 module, exactly: a module that exports anything
/// else, or lacks one, is refused.
pub const EXPORTS: [&str; 7] = [
    "memory",
    "prodguard_abi_version",
    "prodguard_alloc",
    "prodguard_dealloc",
    "prodguard_evaluate",
    "prodguard_audit_record",
    "prodguard_verify_approval",
];

/// Fuel per call by default: 1.5 billion units.
///
/// Measured with the ABI 1.0 module (fuel is roughly one unit per wasm
/// instruction): an evaluation under the built-in default policy uses
/// 0.15–0.5 million; one with a 100-rule policy and evidence about 15
/// million (the first time; the module reuses the last policy it parsed).
/// The default is 100× the latter, so no legitimate request comes near it
/// (even an 8 MiB request with a 4 MiB target name needs about 0.5
/// billion), while a module stuck in a loop is stopped within about two
/// seconds.
pub const DEFAULT_FUEL_PER_CALL: u64 = 1_500_000_000;

/// The linear-memory cap by default: 64 MiB.
///
/// The module starts with about 1 MiB and stays there for ordinary
/// requests; the largest answerable junk (a 4 MiB target name) peaks at
/// about 35 MiB. A request that needs more fails with
/// [`Error::MemoryLimit`](crate::Error::MemoryLimit) instead of taking the
/// host's memory.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 << 20;

/// What one instance may use: fuel per call and linear memory.
///
/// Fuel bounds the work of every call into the module (each of the
/// request's `prodguard_alloc`, the export itself, and each
/// `prodguard_dealloc` is refuelled to the budget), so a looping module
/// returns [`Error::FuelExhausted`] instead of hanging the host. The memory
/// cap bounds the module's linear memory; growing past it fails inside the
/// module, which then answers status 4 or traps ([`Error::MemoryLimit`]).
///
/// ```
/// use prodguard_wasmtime::Limits;
///
/// let limits = Limits::default().with_max_memory_bytes(32 << 20);
/// assert_eq!(limits.max_memory_bytes(), 32 << 20);
/// assert_eq!(limits.fuel_per_call(), prodguard_wasmtime::DEFAULT_FUEL_PER_CALL);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    fuel_per_call: u64,
    max_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_call: DEFAULT_FUEL_PER_CALL,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

impl Limits {
    /// These limits with a fuel budget of `fuel` units per call
    /// (default [`DEFAULT_FUEL_PER_CALL`]).
    ///
    /// ```
    /// let limits = prodguard_wasmtime::Limits::default().with_fuel_per_call(1_000_000_000);
    /// assert_eq!(limits.fuel_per_call(), 1_000_000_000);
    /// ```
    #[must_use]
    pub fn with_fuel_per_call(mut self, fuel: u64) -> Self {
        self.fuel_per_call = fuel;
        self
    }

    /// These limits with a linear-memory cap of `bytes` (default
    /// [`DEFAULT_MAX_MEMORY_BYTES`]; rounded down to 64 KiB pages by the
    /// module's growth).
    ///
    /// ```
    /// let limits = prodguard_wasmtime::Limits::default().with_max_memory_bytes(16 << 20);
    /// assert_eq!(limits.max_memory_bytes(), 16 << 20);
    /// ```
    #[must_use]
    pub fn with_max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// The fuel budget of each call into the module.
    ///
    /// ```
    /// assert_eq!(prodguard_wasmtime::Limits::default().fuel_per_call(), 1_500_000_000);
    /// ```
    pub fn fuel_per_call(&self) -> u64 {
        self.fuel_per_call
    }

    /// The most linear memory an instance may have, in bytes.
    ///
    /// ```
    /// assert_eq!(prodguard_wasmtime::Limits::default().max_memory_bytes(), 64 << 20);
    /// ```
    pub fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }
}

/// The module's ABI version, `major.minor`, from `prodguard_abi_version()`.
///
/// ```
/// use prodguard_wasmtime::AbiVersion;
///
/// let version = AbiVersion::from_raw(0x0001_0002);
/// assert_eq!((version.major, version.minor), (1, 2));
/// assert_eq!(version.to_string(), "1.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbiVersion {
    /// Changes when anything a host relies on changes incompatibly.
    pub major: u16,
    /// Changes for additions only.
    pub minor: u16,
}

impl AbiVersion {
    /// Splits `major << 16 | minor`.
    ///
    /// ```
    /// assert_eq!(prodguard_wasmtime::AbiVersion::from_raw(0x0001_0000).to_string(), "1.0");
    /// ```
    pub fn from_raw(raw: u32) -> AbiVersion {
        AbiVersion {
            major: (raw >> 16) as u16,
            minor: (raw & 0xffff) as u16,
        }
    }
}

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `prodguard.wasm`, compiled once and checked: the ABI major is 1, the
/// exports are exactly [`EXPORTS`] with their documented types, and it
/// imports nothing.
///
/// Cloning is cheap (the compiled code is shared), and the module is `Send`
/// and `Sync`: load it once and create a [`ProdguardInstance`] per thread
/// or per plugin, each with its own wasmtime `Store`.
///
/// ```no_run
/// use prodguard_wasmtime::{EvaluateRequest, ProdguardModule, gather_default_facts};
///
/// let module = ProdguardModule::from_file("target/prodguard.wasm")?;
/// let mut instance = module.instantiate()?;
/// let evaluation = instance.evaluate(
///     &EvaluateRequest::new("db.migrate").target("orders").facts(gather_default_facts()),
/// )?;
/// println!("{:?} (exit code {})", evaluation.decision.result, evaluation.decision.exit_code);
/// # Ok::<(), prodguard_wasmtime::Error>(())
/// ```
#[derive(Clone)]
pub struct ProdguardModule {
    engine: Engine,
    module: Module,
    version: AbiVersion,
    limits: Limits,
}

impl fmt::Debug for ProdguardModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProdguardModule")
            .field("abi_version", &self.version)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ProdguardModule {
    /// Reads, compiles and checks the module at `path` (for example what
    /// `scripts/build-wasm` prints), with the default [`Limits`].
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// assert_eq!(module.abi_version().major, 1);
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<ProdguardModule, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        ProdguardModule::from_bytes(&bytes)
    }

    /// Compiles and checks a module from its bytes, with the default [`Limits`].
    ///
    /// ```no_run
    /// let bytes = std::fs::read("target/prodguard.wasm").unwrap();
    /// let module = prodguard_wasmtime::ProdguardModule::from_bytes(&bytes)?;
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<ProdguardModule, Error> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| Error::Compile {
            message: format!("{e:#}"),
        })?;
        let module = Module::new(&engine, bytes).map_err(|e| Error::Compile {
            message: format!("{e:#}"),
        })?;
        check_imports(&module)?;
        check_exports(&module)?;
        let mut loaded = ProdguardModule {
            engine,
            module,
            version: AbiVersion { major: 0, minor: 0 },
            limits: Limits::default(),
        };
        let mut probe = Live::new(&loaded)?;
        let version = AbiVersion::from_raw(probe.abi_version(loaded.limits.fuel_per_call())?);
        if version.major != SUPPORTED_ABI_MAJOR {
            return Err(Error::AbiVersion {
                major: version.major,
                minor: version.minor,
                supported: SUPPORTED_ABI_MAJOR,
            });
        }
        loaded.version = version;
        Ok(loaded)
    }

    /// The same compiled module with other [`Limits`] for the instances
    /// made from it from now on (cheap: nothing is recompiled).
    ///
    /// ```no_run
    /// use prodguard_wasmtime::{Limits, ProdguardModule};
    ///
    /// let module = ProdguardModule::from_file("target/prodguard.wasm")?
    ///     .with_limits(Limits::default().with_max_memory_bytes(32 << 20));
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> ProdguardModule {
        self.limits = limits;
        self
    }

    /// The limits new instances get.
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// assert_eq!(module.limits(), prodguard_wasmtime::Limits::default());
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The module's ABI version (its major is [`SUPPORTED_ABI_MAJOR`]).
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// println!("prodguard.wasm speaks ABI {}", module.abi_version());
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn abi_version(&self) -> AbiVersion {
        self.version
    }

    /// A fresh instance with its own `Store`, memory and fuel.
    ///
    /// Instantiating is cheap (nothing is compiled); an instance serves one
    /// call at a time.
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// let mut first = module.instantiate()?;
    /// let mut second = module.instantiate()?; // independent of `first`
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn instantiate(&self) -> Result<ProdguardInstance, Error> {
        ProdguardInstance::new(self.clone())
    }

    /// The wasmtime engine the module was compiled with (fuel consumption
    /// is on: a `Store` made with it must be given fuel before each call).
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// let mut store = wasmtime::Store::new(module.engine(), ());
    /// store.set_fuel(1_000_000).expect("fuel is on");
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiled wasmtime module, for hosts that need to drive the ABI
    /// themselves (everything in this crate goes through
    /// [`ProdguardInstance`] instead).
    ///
    /// ```no_run
    /// let module = prodguard_wasmtime::ProdguardModule::from_file("target/prodguard.wasm")?;
    /// let mut store = wasmtime::Store::new(module.engine(), ());
    /// store.set_fuel(1_000_000).expect("fuel is on");
    /// let instance = wasmtime::Instance::new(&mut store, module.wasmtime_module(), &[]).expect("no imports");
    /// let version = instance
    ///     .get_typed_func::<(), u32>(&mut store, "prodguard_abi_version")
    ///     .and_then(|f| f.call(&mut store, ()))
    ///     .expect("an ABI 2 module");
    /// assert_eq!(version >> 16, 1);
    /// # Ok::<(), prodguard_wasmtime::Error>(())
    /// ```
    pub fn wasmtime_module(&self) -> &Module {
        &self.module
    }
}

fn check_imports(module: &Module) -> Result<(), Error> {
    match module.imports().next() {
        None => Ok(()),
        Some(import) => Err(Error::UnexpectedImport {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
        }),
    }
}

/// The signature of each function export: (parameter count, result count),
/// every value an i32.
fn expected_signature(name: &str) -> Option<(usize, usize)> {
    match name {
        "prodguard_abi_version" => Some((0, 1)),
        "prodguard_alloc" => Some((1, 1)),
        "prodguard_dealloc" => Some((2, 0)),
        "prodguard_evaluate" | "prodguard_audit_record" | "prodguard_verify_approval" => {
            Some((3, 1))
        }
        _ => None,
    }
}

fn all_i32(ty: &FuncType) -> bool {
    ty.params()
        .chain(ty.results())
        .all(|t| matches!(t, ValType::I32))
}

fn check_exports(module: &Module) -> Result<(), Error> {
    let problem = |problem: String| Err(Error::Exports { problem });
    let mut seen = Vec::new();
    for export in module.exports() {
        let name = export.name();
        if !EXPORTS.contains(&name) {
            return problem(format!("unexpected export `{name}`"));
        }
        match (name, export.ty()) {
            ("memory", ExternType::Memory(memory)) => {
                if memory.is_64() || memory.is_shared() || memory.page_size() != 65536 {
                    return problem(
                        "`memory` must be an unshared 32-bit memory with 64 KiB pages".into(),
                    );
                }
            }
            ("memory", other) => {
                return problem(format!("`memory` is a {}, not a memory", kind(&other)));
            }
            (_, ExternType::Func(func)) => {
                let (params, results) = expected_signature(name).unwrap_or_default();
                if func.params().len() != params
                    || func.results().len() != results
                    || !all_i32(&func)
                {
                    return problem(format!(
                        "`{name}` has type {func}, expected {params} i32 parameter(s) and {results} i32 result(s)"
                    ));
                }
            }
            (_, other) => {
                return problem(format!("`{name}` is a {}, not a function", kind(&other)));
            }
        }
        seen.push(name.to_owned());
    }
    for name in EXPORTS {
        if !seen.iter().any(|s| s == name) {
            return problem(format!("missing export `{name}`"));
        }
    }
    Ok(())
}

fn kind(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        _ => "tag",
    }
}
