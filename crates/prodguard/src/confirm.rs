//! Asking a person: the confirmation trait and the terminal prompt.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};

use nix::sys::termios::{FlushArg, tcflush};

pub use prodguard_core::audit::ConfirmEvidence;
pub use prodguard_core::policy::ConfirmMode;
pub use prodguard_core::session::{Challenge, ConfirmationAnswer};
use prodguard_core::text::escape;

/// Obtains confirmation for a guarded operation.
///
/// The guard fills in who confirmed (the actor) when the answer leaves
/// `approver` empty.
pub trait Confirmer: Send + Sync {
    /// Asks for confirmation of `challenge`.
    fn confirm(&self, challenge: &Challenge) -> ConfirmationAnswer;
}

impl<F> Confirmer for F
where
    F: Fn(&Challenge) -> ConfirmationAnswer + Send + Sync,
{
    fn confirm(&self, challenge: &Challenge) -> ConfirmationAnswer {
        self(challenge)
    }
}

/// Never confirms: for services that must not be asked anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoConfirmation;

impl Confirmer for NoConfirmation {
    fn confirm(&self, _: &Challenge) -> ConfirmationAnswer {
        ConfirmationAnswer::Unavailable("this program does not take confirmations".into())
    }
}

/// Asks on the controlling terminal (`/dev/tty`) for the target's name.
///
/// The person must type the target's name (or the environment's, when the
/// operation has no target) exactly; anything else, or end of input, is a
/// refusal. Only the terminal is read, never stdin (which may be a pipe
/// carrying anything), and input typed before the prompt is discarded.
/// An AI agent is never asked: the guard routes it to an approval token. Without a controlling terminal (CI, cron, a service) nothing is
/// asked and the answer is "unavailable": the guard fails closed.
#[derive(Debug, Clone)]
pub struct TerminalConfirmer {
    tty_path: String,
}

impl Default for TerminalConfirmer {
    fn default() -> Self {
        TerminalConfirmer {
            tty_path: "/dev/tty".into(),
        }
    }
}

/// The longest answer read; a name is short, a flood is not an answer.
const MAX_ANSWER_BYTES: u64 = 1024;

impl TerminalConfirmer {
    /// A confirmer asking on `/dev/tty`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prompt shown for `challenge`.
    pub fn prompt(challenge: &Challenge) -> String {
        let target = challenge
            .target
            .as_deref()
            .map(|t| format!(" on `{}`", escape(t)))
            .unwrap_or_default();
        let what = if challenge.target.is_some() {
            "the target's name"
        } else {
            "the environment's name"
        };
        // A SQL script's dry run, as the core wrote it (escaped there).
        let consequences: String = challenge
            .consequences
            .iter()
            .map(|line| format!("\n    {line}"))
            .collect();
        let consequences = if consequences.is_empty() {
            consequences
        } else {
            format!("\n  It will change (counted by a dry run, rolled back):{consequences}")
        };
        format!(
            "\nprodguard: `{op}`{target} in {env} (tier {tier}) needs your confirmation.\n  \
             Why: {why}.{consequences}\n  \
             To go ahead, type {what} `{expected}` and press Enter; anything else cancels.\n> ",
            op = escape(&challenge.operation),
            env = escape(&challenge.environment),
            tier = challenge.tier,
            why = challenge.why,
            expected = escape(&challenge.expected),
        )
    }
}

impl Confirmer for TerminalConfirmer {
    fn confirm(&self, challenge: &Challenge) -> ConfirmationAnswer {
        if challenge.mode == ConfirmMode::Approval {
            return ConfirmationAnswer::Unavailable(
                "the policy accepts only an approval token here (confirm.mode = \"approval\")"
                    .into(),
            );
        }
        let tty = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.tty_path)
        {
            Ok(tty) => tty,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                return ConfirmationAnswer::Unavailable(
                    "no terminal to ask on (this process has no controlling terminal)".into(),
                );
            }
            Err(e) => {
                return ConfirmationAnswer::Unavailable(format!(
                    "no terminal to ask on ({}: {e})",
                    self.tty_path
                ));
            }
        };
        // Typeahead is not an answer: whatever was queued on the terminal
        // before the question was shown (keys pressed ahead, a paste, a
        // program writing into the terminal) was not typed in reply to it.
        if let Err(e) = tcflush(&tty, FlushArg::TCIFLUSH) {
            return ConfirmationAnswer::Unavailable(format!(
                "cannot clear pending input on the terminal ({}: {e})",
                self.tty_path
            ));
        }
        let mut out = &tty;
        if let Err(e) = out
            .write_all(Self::prompt(challenge).as_bytes())
            .and_then(|()| out.flush())
        {
            return ConfirmationAnswer::Unavailable(format!("cannot write to the terminal: {e}"));
        }
        let mut answer = Vec::new();
        let mut reader = BufReader::new((&tty).take(MAX_ANSWER_BYTES));
        match reader.read_until(b'\n', &mut answer) {
            Ok(0) => return ConfirmationAnswer::Declined("no answer (end of input)".into()),
            Ok(_) => {}
            Err(e) => {
                return ConfirmationAnswer::Unavailable(format!("cannot read the terminal: {e}"));
            }
        }
        let typed = String::from_utf8_lossy(&answer);
        let answer = prodguard_core::confirm::typed_answer(challenge, &typed, None);
        let said: &[u8] = match answer {
            ConfirmationAnswer::Confirmed(_) => b"prodguard: confirmed.\n",
            _ => b"prodguard: that does not match; cancelled.\n",
        };
        let _ = out.write_all(said);
        answer
    }
}
