//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong loading `prodguard.wasm` or calling it.
///
/// A **decision** to deny or to ask for confirmation is not an error: it is
/// an [`Evaluation`](crate::Evaluation) whose `decision` or `session` says
/// so. Errors are about the request, the module or the host's limits.
///
/// Errors from a call that left the instance in an unknown state
/// ([`Trap`](Error::Trap), [`FuelExhausted`](Error::FuelExhausted),
/// [`MemoryLimit`](Error::MemoryLimit) after a trap,
/// [`AbiViolation`](Error::AbiViolation)) have already replaced the
/// instance with a fresh one when they are returned: the next call runs in
/// a clean module (see [`ProdguardInstance`](crate::ProdguardInstance)).
///
/// ```no_run
/// use prodguard_wasmtime::{Error, EvaluateRequest, ProdguardModule};
///
/// let module = ProdguardModule::from_file("target/prodguard.wasm")?;
/// let mut instance = module.instantiate()?;
/// match instance.evaluate(&EvaluateRequest::new("DB.Migrate")) {
///     Ok(evaluation) => println!("exit code {}", evaluation.decision.exit_code),
///     Err(Error::Status { code, message }) => eprintln!("refused ({code}): {message}"),
///     Err(other) => return Err(other),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The module file could not be read.
    #[error(
        "cannot read the prodguard module at {path}: {source}; build it with scripts/build-wasm \
         (it prints the path) or pass the path of a prodguard.wasm"
    )]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },

    /// wasmtime could not set up its engine or compile the bytes.
    #[error(
        "cannot compile the prodguard module: {message}; check that the file is a prodguard.wasm \
         built by scripts/build-wasm (a WebAssembly core module, not a component)"
    )]
    Compile {
        /// wasmtime's explanation.
        message: String,
    },

    /// The module imports something. ABI 2 modules import nothing, and a
    /// module that imports could call into the host, so it is refused.
    #[error(
        "the module imports `{module}`.`{name}`, but a prodguard.wasm of ABI 2 imports nothing; \
         refusing it (use an official prodguard.wasm built by scripts/build-wasm)"
    )]
    UnexpectedImport {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
    },

    /// The module's exports are not exactly the documented set, or one has
    /// the wrong type.
    #[error(
        "the module's exports do not match prodguard.wasm ABI 2: {problem}; use a prodguard.wasm \
         built by scripts/build-wasm"
    )]
    Exports {
        /// Which export is missing, unexpected or of the wrong type.
        problem: String,
    },

    /// The module speaks an ABI major version this crate was not written for.
    #[error(
        "the module speaks prodguard ABI {major}.{minor}, but this host understands ABI {supported}.x; \
         use a prodguard.wasm of ABI {supported}.x or a prodguard-wasmtime release for ABI {major}"
    )]
    AbiVersion {
        /// The module's major version.
        major: u16,
        /// The module's minor version.
        minor: u16,
        /// The major version this crate speaks.
        supported: u16,
    },

    /// wasmtime could not instantiate the module (for example its initial
    /// memory is larger than [`Limits::max_memory_bytes`](crate::Limits::max_memory_bytes)).
    #[error(
        "cannot instantiate the prodguard module: {message}; if the memory cap is the cause, \
         raise Limits::with_max_memory_bytes"
    )]
    Instantiate {
        /// wasmtime's explanation.
        message: String,
    },

    /// The request could not be encoded as JSON.
    #[error("cannot encode the request as JSON: {0}; check the values it holds")]
    Request(#[source] serde_json::Error),

    /// The module answered with a non-zero status (see ABI.md): the request
    /// is invalid (125), not UTF-8 or out of bounds (2), the approval does
    /// not verify (121), or the module could not allocate its answer (4).
    /// `message` is the module's own explanation, saying what to fix.
    #[error("prodguard refused the request (status {code}): {message}")]
    Status {
        /// The ABI status code: 2, 4, 121 or 125.
        code: u32,
        /// What is wrong and what to do, from the module.
        message: String,
    },

    /// The call used up its fuel budget before it finished: the module is
    /// looping or the budget is too small for the request. The instance was
    /// replaced by a fresh one.
    #[error(
        "prodguard.wasm ran out of fuel in `{export}` (budget {fuel} units per call); the instance \
         was replaced by a fresh one. If the request is legitimate (a very large policy), raise \
         Limits::with_fuel_per_call or ProdguardInstance::set_fuel_per_call"
    )]
    FuelExhausted {
        /// The export that was running.
        export: &'static str,
        /// The budget it had.
        fuel: u64,
    },

    /// The module needed more linear memory than the cap allows.
    #[error(
        "prodguard.wasm needed more than the memory cap of {limit} bytes in `{export}`; send a \
         smaller request or raise Limits::with_max_memory_bytes (the instance was replaced by a \
         fresh one if the module trapped)"
    )]
    MemoryLimit {
        /// The export (or `prodguard_alloc`) that was running.
        export: &'static str,
        /// The cap, in bytes.
        limit: usize,
    },

    /// The module trapped. ABI.md promises that bad input never traps, so
    /// this is a bug in prodguard: please report it with the request. The
    /// instance was replaced by a fresh one.
    #[error(
        "prodguard.wasm trapped in `{export}`: {message}. This is a bug in prodguard; please \
         report it with the request. The instance was replaced by a fresh one, so later calls work"
    )]
    Trap {
        /// The export that trapped.
        export: &'static str,
        /// wasmtime's description of the trap.
        message: String,
    },

    /// The module broke the ABI (an answer outside its memory, not UTF-8,
    /// not the documented JSON). The instance was replaced by a fresh one.
    #[error(
        "prodguard.wasm broke ABI 2 in `{export}`: {problem}. This is a bug in prodguard (or not a \
         prodguard.wasm); please report it. The instance was replaced by a fresh one"
    )]
    AbiViolation {
        /// The export that answered.
        export: &'static str,
        /// What was wrong with the answer.
        problem: String,
    },
}

impl Error {
    /// The ABI status code of an [`Error::Status`], `None` for other errors.
    ///
    /// ```
    /// use prodguard_wasmtime::Error;
    ///
    /// let error = Error::Status { code: 125, message: "invalid request".into() };
    /// assert_eq!(error.status(), Some(125));
    /// ```
    pub fn status(&self) -> Option<u32> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}
