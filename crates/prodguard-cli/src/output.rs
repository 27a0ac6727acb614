//! Writing to standard output: [`emit`] (behind `say!`/`say_raw!`) and
//! [`print_json`]; to standard error: [`tell`] (behind `tell!`).

use prodguard::GuardError;

/// Writes `text` to standard output; a closed pipe ends the process quietly
/// with 141, any other write error with 1.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // 128 + SIGPIPE, as if the signal had ended us.
            std::process::exit(141);
        }
        tell!("prodguard: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Writes `text` to standard error; a closed or failing stderr loses the
/// message and nothing else (the exit code is the decision's).
pub(crate) fn tell(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), GuardError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| GuardError::Policy(format!("cannot render JSON: {e}")))?;
    say!("{text}");
    Ok(())
}
