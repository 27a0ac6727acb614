#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Timing needs the clock, which the library never reads.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
//! `prodguard_core::shell::analyze` runs in time linear in its input:
//! a 256 KiB command of each shape that makes naive shell parsers
//! quadratic (or recurse without end) is analysed in under a second in a
//! debug build on a busy CI machine (100–180 ms on an idle one, ≤ 43 ms in
//! release), and four times the input takes about four times as long.
//!
//! The shapes run one after another in one test, so that no other test of
//! this binary competes for the CPU while they are timed. Each time is the
//! fastest of up to seven runs (two for the slowest shapes); a shape that
//! misses is measured once more (a virtual machine's host can slow a whole
//! second down), against the same limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prodguard_core::shell::{Context, MAX_COMMAND_BYTES, analyze};

/// `unit` repeated up to `len` bytes (cut on a character boundary), then
/// `tail`.
fn shape(head: &str, unit: &str, tail: &str, len: usize) -> String {
    let mut text = head.to_owned();
    let room = len.saturating_sub(head.len() + tail.len());
    while text.len() + unit.len() <= head.len() + room {
        text.push_str(unit);
    }
    text.push_str(tail);
    text
}

/// The fastest of seven runs (the least disturbed by other work).
fn time(command: &str, context: &Context<'_>) -> Duration {
    // The fastest of up to seven runs, stopping after a third of a second
    // of them (at least two): timer noise averages out on the fast shapes,
    // and the slow ones do not make the whole suite wait.
    let mut fastest = Duration::MAX;
    let mut spent = Duration::ZERO;
    for run in 0..7 {
        let start = Instant::now();
        let analysis = analyze(command, context);
        let elapsed = start.elapsed();
        std::hint::black_box(analysis);
        fastest = fastest.min(elapsed);
        spent += elapsed;
        if run >= 1 && spent > Duration::from_millis(300) {
            break;
        }
    }
    fastest
}

#[test]
fn adversarial_shapes_are_analysed_in_linear_time() {
    let shapes: &[(&str, &str, &str, &str)] = &[
        ("$( x N", "", "$(", ""),
        ("' x N", "", "'", ""),
        ("\\ x N", "", "\\", ""),
        ("<<A\\n x N", "", "<<A\n", ""),
        ("bash -c ' x N", "", "bash -c '", ""),
        ("\"$( x N", "", "\"$(", ""),
        ("${ x N", "", "${", ""),
        ("$(( x N", "", "$((", ""),
        ("` x N", "", "`", ""),
        ("\\` x N", "echo `", "\\`", "`"),
        ("( x N", "", "(", ""),
        ("{ x N", "", "{ ", ""),
        ("(x) x N", "", "(x)", ""),
        ("$(x) x N", "", "$(x)", ""),
        ("`x` x N", "", "`x`", ""),
        ("eval x N", "", "eval ", "rm -rf /srv/x"),
        ("sudo x N", "", "sudo ", "rm -rf /srv/x"),
        ("env A=1 x N", "", "env A=1 ", "psql"),
        ("bash -c bash x N", "", "bash -c bash ", ""),
        ("a | x N", "", "a | ", "psql"),
        (
            "echo x | cat | x N",
            "echo 'DROP TABLE t'",
            " | cat",
            " | psql",
        ),
        ("<<A on one line x N", "", "<<A ", "\n"),
        ("heredoc body lines", "cat <<A\n", "x $(y) `z`\n", "A\n"),
        ("\"\\\"\" x N", "echo \"", "\\\"", "\""),
        ("$'\\x41' x N", "echo ", "$'\\x41'", ""),
        ("rm -rf /x; x N", "", "rm -rf /srv/x; ", ""),
        ("rm -rf target; x N", "", "rm -rf target; ", ""),
        ("rm -rf many paths", "rm -rf", " /srv/a", ""),
        ("cd x N", "", "cd /srv/a; ", "rm -rf x"),
        (
            "export x N then substitutions",
            "",
            "export A=1; $(x); ",
            "",
        ),
        ("git push -f x N", "", "git push -f origin +main; ", ""),
        ("kubectl delete x N", "", "kubectl delete pod x; ", ""),
        ("URL passwords in one word", "rm -rf ", "x://u:p@h", ""),
        ("password= in one word", "rm -rf ", "password=x&", ""),
        ("URLs without a user, one word", "rm -rf ", "x://a", ""),
        ("password ' in one word", "psql -c \"", "password '", "\""),
        ("identified by x N", "psql -c \"", "identified by ", "\""),
        ("case items x N", "case x in ", "a) rm -rf /x;; ", "esac"),
        (
            "case items in $( x N",
            "x=$(case x in ",
            "(a) rm -rf /x;; b) y;; ",
            "esac)",
        ),
        ("case in case x N", "", "case x in a) ", ""),
        (
            "find -exec x N",
            "find /srv ",
            "-exec sh -c 'rm -rf $1' _ {} \\; ",
            "",
        ),
        ("find -delete x N", "", "find /srv -delete; ", ""),
        ("ssh x N", "", "ssh h ", "rm -rf /x"),
        ("split $X x N", "X='-r /a'; rm ", "$X ", ""),
        ("$r program x N", "r=rm; ", "$r ", "-rf /x"),
        ("$r commands x N", "r=rm; ", "$r -rf /x; ", ""),
        ("$(which) x N", "", "$(which rm) ", ""),
        ("coproc x N", "", "coproc X { a; }; ", ""),
        ("busybox x N", "", "busybox ", "rm -rf /x"),
        ("watch x N", "", "watch ", "rm -rf /x"),
        ("ssh 'cmd'; x N", "", "ssh h 'rm -rf /x'; ", ""),
        ("docker exec x N", "", "docker exec c ", "rm -rf /x"),
        ("kubectl exec -- x N", "", "kubectl exec p -- ", "rm -rf /x"),
        ("kubectl -n x N", "kubectl ", "-n a ", "exec p -- rm -rf /x"),
        ("for loops x N", "", "for i in a; do b; done; ", ""),
        ("function definitions x N", "", "f() { g; }; ", ""),
        ("assignments x N", "", "A=$B ", "psql"),
        ("long word", "echo ", "a", ""),
        ("#comment lines", "", "# rm -rf / $( ` '\n", ""),
    ];
    let env = BTreeMap::from([("PGHOST".to_owned(), "prod-db".to_owned())]);
    let context = Context::new(Some("/home/dev/app"), &env);
    let mut report = Vec::new();
    let mut slow = Vec::new();
    for &(name, head, unit, tail) in shapes {
        let full = shape(head, unit, tail, MAX_COMMAND_BYTES);
        let quarter = shape(head, unit, tail, MAX_COMMAND_BYTES / 4);
        assert!(full.len() <= MAX_COMMAND_BYTES, "{name}");
        let mut line = String::new();
        let mut ok = false;
        for attempt in 0..2 {
            let t_full = time(&full, &context);
            let t_quarter = time(&quarter, &context);
            line = format!(
                "{name:<32} 256 KiB: {:>7.2} ms   64 KiB: {:>6.2} ms{}",
                t_full.as_secs_f64() * 1e3,
                t_quarter.as_secs_f64() * 1e3,
                if attempt > 0 {
                    "   (measured again)"
                } else {
                    ""
                }
            );
            // Under the budget, and growing about linearly: four times
            // the input in at most eight times the time (plus timer noise).
            ok = t_full < Duration::from_millis(1000)
                && t_full <= t_quarter * 8 + Duration::from_millis(5);
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("{line}");
        report.push(line);
        if !ok {
            slow.push(name);
        }
    }
    assert!(
        slow.is_empty(),
        "not linear or too slow: {slow:?}\n{}",
        report.join("\n")
    );
}
