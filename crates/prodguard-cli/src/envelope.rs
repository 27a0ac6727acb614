//! The one shape of every `--json` answer, and the one place it is made
//! and printed:
//!
//! ```text
//! {"v": 1, "ok": {…}}                                    exit code 0
//! {"v": 1, "error": {"code": N, "message": "…"}}         exit code N
//! {"v": 1, "error": {"code": N, "message": "…", "data": {…}}}
//! ```
//!
//! Every command returns an [`Envelope`]; `main` prints it under `--json`
//! and leaves with [`Envelope::code`], so the document and the exit code
//! cannot disagree. `data` is there when the failure is itself an answer
//! (`check`'s decision, `audit verify`'s report, `exec`'s run).

use serde::Serialize;
use serde_json::Value;

/// The envelope's version: raised only by a change that breaks a reader.
pub(crate) const VERSION: u32 = 1;

/// A command's answer: what `--json` prints, and the exit code.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

#[derive(Debug, Serialize)]
struct Failure {
    code: i32,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

/// Success (exit code 0) with `value`, an object.
pub(crate) fn ok(value: Value) -> Envelope {
    Envelope {
        v: VERSION,
        ok: Some(value),
        error: None,
    }
}

/// Failure with exit code `code` (never 0) and what went wrong.
pub(crate) fn error(code: i32, message: impl Into<String>) -> Envelope {
    Envelope {
        v: VERSION,
        ok: None,
        error: Some(Failure {
            // A failure that exited 0 would read as a success to a script
            // that checks only the code.
            code: if code == 0 { 1 } else { code },
            message: message.into(),
            data: None,
        }),
    }
}

/// Only an exit code, for the commands that do not answer in JSON (the
/// agents' hooks speak each agent's protocol).
pub(crate) fn exit(code: i32) -> Envelope {
    if code == 0 {
        ok(Value::Object(serde_json::Map::new()))
    } else {
        error(code, format!("exited with {code}"))
    }
}

impl Envelope {
    /// The exit code it stands for.
    pub(crate) fn code(&self) -> i32 {
        self.error.as_ref().map_or(0, |e| e.code)
    }

    /// A failure's answer (`data`); a success keeps its own.
    pub(crate) fn with_data(mut self, data: Value) -> Envelope {
        if let Some(error) = &mut self.error {
            error.data = Some(data);
        }
        self
    }

    /// Says a failure's message on stderr, as `prodguard: MESSAGE`, as every
    /// command does with or without `--json` (diagnostics stay on stderr).
    pub(crate) fn told(self) -> Envelope {
        if let Some(error) = &self.error {
            tell!("prodguard: {}", error.message);
        }
        self
    }

    /// Prints it on stdout: the only thing a `--json` command prints there.
    pub(crate) fn print(&self) {
        match serde_json::to_string_pretty(self) {
            Ok(text) => say!("{text}"),
            // Unreachable for `Value`s; still one envelope, from serde.
            Err(e) => {
                let fallback = error(self.code(), format!("cannot render the answer: {e}"));
                say!("{}", serde_json::to_string(&fallback).unwrap_or_default());
            }
        }
    }
}
