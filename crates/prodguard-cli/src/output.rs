//! Writing to standard output: [`emit`] (behind `say!`/`say_raw!`; JSON
//! answers go through [`crate::envelope`]); to standard error: [`tell`]
//! (behind `tell!`).

use std::sync::OnceLock;

/// Set by the first failed write to standard output; later writes are skipped.
static LOST: OnceLock<std::io::ErrorKind> = OnceLock::new();

/// Writes `text` to standard output. A failure (a reader that left, a full
/// disk) is remembered, and the rest of the output is skipped: the command
/// still ends with its own exit code, which [`exit_code`] keeps.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    if LOST.get().is_some() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        let _ = LOST.set(e.kind());
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tell!("prodguard: cannot write to standard output: {e}");
        }
    }
}

/// Whether standard output was lost: commands that only print stop early.
pub(crate) fn lost() -> bool {
    LOST.get().is_some()
}

/// The process's exit code for a command that returned `status`. A
/// command's answer (a refusal, "tampered", the child's code) stands even
/// when its output could not be written; a success whose output was lost is
/// not one: 141 (as if SIGPIPE had ended it) when the reader left, 74
/// (EX_IOERR) for any other write error.
pub(crate) fn exit_code(status: i32) -> i32 {
    match LOST.get() {
        Some(_) if status != 0 => status,
        Some(std::io::ErrorKind::BrokenPipe) => 141,
        Some(_) => 74,
        None => status,
    }
}

/// Writes `text` to standard error; a closed or failing stderr loses the
/// message and nothing else (the exit code is the decision's).
pub(crate) fn tell(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
