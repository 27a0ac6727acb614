//! Answering prodguard's prompt as a person does, for tests that drive a
//! real terminal (`script`): shared by the library's and the CLI's tests
//! (`#[path]`-included, so each test crate compiles its own copy of one text).

use std::io::{Read, Write};
use std::process::{Child, Output};

/// The end of prodguard's prompt: what is typed after it answers it.
pub(crate) const PROMPT_END: &[u8] = b"anything else cancels.";

/// Types `answer` once the prompt is on the screen, as a person does (what
/// is typed before the prompt is discarded), and collects the rest.
pub(crate) fn type_when_asked(mut child: Child, answer: &str) -> Output {
    let mut input = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut screen = Vec::new();
    let mut buf = [0u8; 4096];
    while !screen.windows(PROMPT_END.len()).any(|w| w == PROMPT_END) {
        match out.read(&mut buf).unwrap() {
            0 => break,
            n => screen.extend_from_slice(&buf[..n]),
        }
    }
    // Asked, or it ended without asking; either way the answer is harmless.
    let _ = input.write_all(format!("{answer}\n").as_bytes());
    drop(input);
    out.read_to_end(&mut screen).unwrap();
    let mut output = child.wait_with_output().unwrap();
    output.stdout = screen;
    output
}
