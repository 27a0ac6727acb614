//! `prodguard completions SHELL` and `prodguard man`: what clap's own
//! generators make of the command line's shape in `cli`, so they never
//! drift from it.

use clap::CommandFactory;
use clap_complete::Shell;
use prodguard::GuardError;

use crate::cli::Cli;
use crate::envelope::{self, Envelope};

/// Prints `shell`'s completion script.
pub(crate) fn completions(shell: Shell) -> Envelope {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "prodguard", &mut script);
    say_raw!("{}", String::from_utf8_lossy(&script));
    envelope::exit(0)
}

/// Prints the man page, prodguard(1), in roff.
pub(crate) fn man() -> Result<Envelope, GuardError> {
    let mut page = Vec::new();
    // The NAME line already starts "prodguard \-": the about without the name.
    let command =
        Cli::command().about("know when you are in production, and guard what could hurt it");
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| GuardError::Policy(format!("cannot render the man page: {e}")))?;
    say_raw!("{}", String::from_utf8_lossy(&page));
    Ok(envelope::exit(0))
}
