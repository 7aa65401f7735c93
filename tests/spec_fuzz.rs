//! Fuzzing the figure specification parser: arbitrary and mutated inputs
//! (from the real paper.toml and the small test spec) never make it panic,
//! and every rejection carries a `file:line:col` location.
//!
//! A seeded mutation loop, so a failure is reproducible from the printed
//! seed and input; it runs in a few seconds in release mode.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use learning_dynamics::spec;

/// Fragments that TOML and our schema care about, including values at and
/// beyond the edges of every range, and multi-byte characters.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "#",
    "\n",
    "\r\n",
    "\\",
    "\\u",
    " ",
    "\t",
    "0",
    "-0",
    "1",
    "-1",
    "1.0",
    "0.0",
    "-0.01",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "+inf",
    "1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "4001",
    "199",
    "9",
    "0x10",
    "0o7",
    "0b1",
    "1_000",
    "1979-05-27T07:32:00Z",
    "true",
    "false",
    "\"\"",
    "[]",
    "{}",
    "é",
    "ß",
    "\u{2028}",
    "\u{feff}",
    "🦀",
    "\u{0}",
    "figure",
    "[[figure]]",
    "[figure.experiment.sigmoid]",
    "[figure.experiment.phase_diagram]",
    "[figure.experiment.nope]",
    "[[figure.claim]]",
    "[figure.render]",
    "[[figure.experiment.sigmoid.model]]",
    "id",
    "check.at_least",
    "check.sharper",
    "class = \"finding\"",
    "series = []",
    "scalar",
    "init.random",
    "init.aligned",
    "depth = 9",
    "width",
    "seed_count = 0",
];

fn mutate(rng: &mut common::TestRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(10) {
            // Flip one bit.
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            // Overwrite one byte with any byte.
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.next() as u8;
            }
            // Truncate.
            2 => bytes.truncate(at),
            // Delete a range.
            3 => {
                let end = (at + rng.below(64)).min(len);
                bytes.drain(at..end);
            }
            // Insert a token.
            4 | 5 => {
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            // Replace the value after an '=' with a token.
            6 => {
                if let Some(eq) = bytes[at..].iter().position(|&b| b == b'=').map(|p| at + p + 1) {
                    let end = bytes[eq..]
                        .iter()
                        .position(|&b| b == b'\n' || b == b',' || b == b'}')
                        .map_or(bytes.len(), |p| eq + p);
                    let token = format!(" {}", rng.pick(TOKENS)).into_bytes();
                    bytes.splice(eq..end, token);
                }
            }
            // Line edits: delete, duplicate, or move a line.
            _ => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let i = rng.below(lines.len());
                match rng.below(3) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let line = lines[i].clone();
                        lines.insert(rng.below(lines.len() + 1), line);
                    }
                    _ => {
                        let j = rng.below(lines.len());
                        lines.swap(i, j);
                    }
                }
                bytes = lines.join(&b'\n');
            }
        }
    }
    bytes
}

/// Random text from scratch: TOML-ish tokens and arbitrary bytes.
fn arbitrary(rng: &mut common::TestRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(60) {
        if rng.below(4) == 0 {
            out.push(rng.next() as u8);
        } else {
            out.extend_from_slice(rng.pick(TOKENS).as_bytes());
        }
    }
    out
}

/// Parses `bytes` as "paper.toml": never panics; an error names the file, a
/// line and a column inside the input, and says something.
fn check(seed: u64, bytes: &[u8]) -> bool {
    let path = Path::new("paper.toml");
    let result = catch_unwind(AssertUnwindSafe(|| spec::parse_bytes(path, bytes)));
    let shown = String::from_utf8_lossy(bytes);
    let errors = match result {
        Err(_) => panic!("the parser panicked (seed {seed}) on:\n{shown}"),
        Ok(Ok(_)) => return true,
        Ok(Err(errors)) => errors,
    };
    assert!(!errors.0.is_empty(), "an error without a problem (seed {seed})");
    let lines = bytes.split(|&b| b == b'\n').count();
    for e in &errors.0 {
        assert!(
            e.line >= 1 && e.line <= lines && e.column >= 1,
            "location {}:{} outside the input (seed {seed}):\n{shown}",
            e.line,
            e.column
        );
        assert!(!e.message.trim().is_empty(), "an empty message (seed {seed}):\n{shown}");
        let rendered = e.to_string();
        let prefix = format!("paper.toml:{}:{}: ", e.line, e.column);
        assert!(rendered.starts_with(&prefix), "no file:line:col (seed {seed}): {rendered}");
    }
    assert!(errors.to_string().contains("nothing was run or written"));
    false
}

#[test]
fn mutated_and_arbitrary_specs_never_panic_and_errors_have_a_location() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inputs = [std::fs::read(root.join("paper.toml")).unwrap(), std::fs::read(common::small_spec_path()).unwrap()];
    for input in &inputs {
        assert!(check(0, input), "the unmutated spec parses");
    }
    let start = std::time::Instant::now();
    let (mut accepted, mut rejected) = (0, 0);
    for seed in 0..30_000u64 {
        let mut rng = common::TestRng::new("test/spec-fuzz", seed);
        let bytes =
            if seed % 8 == 7 { arbitrary(&mut rng) } else { mutate(&mut rng, inputs[(seed % 2) as usize].clone()) };
        if check(seed, &bytes) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    eprintln!(
        "{accepted} mutants accepted, {rejected} rejected with a location, in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(rejected > accepted, "the mutations should mostly break the spec");
}

#[test]
fn invalid_utf8_is_located() {
    let mut bytes = common::small_spec_text().into_bytes();
    let at = bytes.windows(13).position(|w| w == b"input_dim = 2").unwrap() + 12;
    bytes[at] = 0xE9; // "é" in Latin-1
    let e = &spec::parse_bytes(Path::new("paper.toml"), &bytes).unwrap_err().0[0];
    assert_eq!((e.line, e.column), (9, 13), "{e}");
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}
