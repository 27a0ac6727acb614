#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `prodguard_core::shell::analyze` on 20,000 random command lines built
//! from the pieces that trouble shell parsers: it never panics, and what it
//! returns is well formed.

use std::collections::BTreeMap;

use prodguard_core::shell::{Context, MAX_COMMAND_BYTES, analyze};

/// xorshift64*: the same commands on every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "'",
    "\"",
    "\\",
    "\\\n",
    "$(",
    ")",
    "(",
    "`",
    "\\`",
    "{ ",
    " }",
    "${",
    "}",
    "$((",
    "))",
    "$'",
    "$\"",
    "<<A\n",
    "<<-'B'\n",
    "<<\"C\"\n",
    "A\n",
    "\tB\n",
    "C\n",
    "<<<",
    "<(",
    ">(",
    ">",
    ">>",
    "2>&1",
    "&>",
    "<",
    "|",
    "|&",
    "||",
    "&&",
    ";",
    ";;",
    "&",
    "\n",
    " ",
    "  ",
    "#",
    "# x\n",
    "bash -c '",
    "sh -c \"",
    "eval ",
    "sudo ",
    "env -i A=1 ",
    "xargs ",
    "timeout 5 ",
    "nice -n 3 ",
    "command ",
    "exec ",
    "psql ",
    "-c ",
    "-d app ",
    "-f x.sql ",
    "'DROP TABLE t'",
    "\"DELETE FROM t\"",
    "mysql -e ",
    "sqlite3 app.db ",
    "redis-cli FLUSHALL",
    "mongosh --eval ",
    "rm -rf ",
    "/srv/x ",
    "target/ ",
    "*",
    "~/",
    "$X",
    "${X:-/a}",
    "git push -f origin +main",
    "terraform destroy",
    "kubectl delete pod x",
    "cd /srv ",
    "cd .. ",
    "export PGHOST=h ",
    "unset PGHOST ",
    "case x in ",
    "a) ",
    "esac",
    "for i in a; do ",
    "done",
    "if true; then ",
    "fi",
    "[[ ",
    " ]]",
    "f() ",
    "x=(",
    "PGHOST=prod ",
    "é",
    "😀",
    "\r",
    "\0",
    "postgres://u:p@h/d ",
    "password=x ",
    "-p",
    "=",
    ":",
    "@",
    "%",
    "..",
    "/",
    "\\'",
    "\\\"",
    "$$",
    "$1",
    "$@",
];

fn random_command(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(50) {
            // Now and then a long run of one piece.
            0 => {
                let piece = PIECES[rng.below(PIECES.len())];
                out.push_str(&piece.repeat(rng.below(300)));
            }
            _ => out.push_str(PIECES[rng.below(PIECES.len())]),
        }
    }
    out
}

#[test]
fn random_commands_never_panic_and_are_reported_well_formed() {
    let env = BTreeMap::from([
        ("PGHOST".to_owned(), "prod-db".to_owned()),
        ("HOME".to_owned(), "/home/dev".to_owned()),
        ("X".to_owned(), "/srv/x".to_owned()),
    ]);
    let contexts = [
        Context::new(Some("/home/dev/app"), &env),
        Context::new(None, &env),
        Context::default(),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut recognised = 0usize;
    let mut problems = 0usize;
    for i in 0..20_000 {
        let command = random_command(&mut rng);
        assert!(command.len() <= MAX_COMMAND_BYTES);
        let analysis = analyze(&command, &contexts[i % contexts.len()]);

        recognised += analysis.commands.len();
        problems += usize::from(analysis.problem.is_some());
        for found in &analysis.commands {
            assert!(
                found.kind.split('.').count() >= 2
                    && found
                        .kind
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{command:?}: kind {:?}",
                found.kind
            );
            assert!(found.part.chars().count() <= 200, "{command:?}");
            assert_eq!(found.part, found.part.trim(), "{command:?}");
            assert!(!found.program.is_empty(), "{command:?}");
        }
        // Serialisable as the hook sends it.
        serde_json::to_string(&analysis).unwrap();
    }
    // The pieces do make both happen, many times.
    assert!(recognised > 1_000, "{recognised} recognised");
    assert!(problems > 1_000, "{problems} problems");
}
