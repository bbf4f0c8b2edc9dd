//! A fuzz target's corpus in the normal test suite, the same for every daemon: the seeds a
//! daemon crate builds must pass and match the committed `fuzz/corpus/<target>/` (written
//! with `UPDATE_FUZZ_CORPUS=1`), and every committed corpus file and every input that once
//! broke a check (`fuzz/regressions/<target>/`) must replay clean against a fresh backend
//! (see [`crate::guest_script`]), none with an event left unchecked; and seeded random
//! scripts must replay clean, few of them self-modifying. A daemon crate expands the three
//! with [`fuzz_corpus_tests!`].

// Test tooling: a failed check fails the calling test loudly.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use crate::guest_script::{Outcome, QUEUE_STRIDE, ScriptBuilder};
use crate::hostile::Rng;

/// A seed: its file name, the script, and how many chains the device must return.
pub type Seed = (&'static str, Vec<u8>, usize);

/// Replays one script against a fresh backend; `Err` describes the violated check.
pub type Replay = fn(&[u8]) -> Result<Outcome, String>;

/// How long one replayed script may take (they take milliseconds).
pub const REPLAY_DEADLINE: Duration = Duration::from_secs(30);

/// The workspace's cargo-fuzz directory.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Each seed returns its number of chains, modifies no descriptor it was given, and is the
/// committed file of `fuzz/corpus/<target>/` (`UPDATE_FUZZ_CORPUS=1` rewrites them).
pub fn check_seeds_match_the_corpus(target: &str, seeds: Vec<Seed>, replay: Replay) {
    let dir = fuzz_dir().join("corpus").join(target);
    let update = std::env::var_os("UPDATE_FUZZ_CORPUS").is_some();
    for (name, script, returned) in seeds {
        let outcome = replay(&script).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.used, returned, "{name}: chains returned");
        assert_eq!(outcome.unchecked_events, 0, "{name}: events left unchecked");
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            std::fs::write(&path, &script).expect("write a seed");
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FUZZ_CORPUS=1 writes it)", path.display()));
        assert_eq!(
            committed, script,
            "{name}: stale seed (UPDATE_FUZZ_CORPUS=1)"
        );
    }
}

/// Every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` replays clean,
/// each on a thread within [`REPLAY_DEADLINE`] (an input that hangs the device fails the
/// test instead of blocking it); a missing or empty directory fails, and at least `min`
/// files must have been replayed.
pub fn check_corpus_replays_clean(target: &str, min: usize, replay: Replay) {
    let mut replayed = 0usize;
    for sub in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(sub).join(target);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .collect();
        assert!(!entries.is_empty(), "{} holds no input", dir.display());
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let script = std::fs::read(&path).expect("read an input");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(replay(&script));
            });
            match rx.recv_timeout(REPLAY_DEADLINE) {
                // Every committed input keeps all its checks: none is self-modifying.
                Ok(Ok(outcome)) => assert_eq!(
                    outcome.unchecked_events,
                    0,
                    "{}: events left unchecked",
                    path.display()
                ),
                Ok(Err(e)) => panic!("{}: {e}", path.display()),
                Err(e) => panic!(
                    "{}: no result within {REPLAY_DEADLINE:?}: {e}",
                    path.display()
                ),
            }
            replayed = replayed.saturating_add(1);
        }
    }
    assert!(replayed >= min, "only {replayed} files replayed");
}

/// Random scripts replayed by [`check_random_scripts`]: how many, and their seed.
pub const RANDOM_SCRIPTS: usize = 10_000;
const RANDOM_SEED: u64 = 0x5eed_f00d;

/// A random script of 4 to 63 steps (the seeds' shape with random operands): descriptors
/// with any flags of NEXT, WRITE and INDIRECT at addresses uniform over the script's `u16`
/// range (half of the lengths below 0x100, half any `u16`), postings of heads mostly inside
/// the table, short writes anywhere in RAM and in the rings, kicks of any event, rarely an
/// available index set; the last step is an event.
pub fn random_script(rng: &mut Rng) -> Vec<u8> {
    let size_log = u8::try_from(rng.below(8)).unwrap_or(0);
    let size = 2u64 << size_log;
    let mut script = ScriptBuilder::new(size_log, rng.below(2) == 1);
    let byte = |rng: &mut Rng| rng.next_u64().to_le_bytes()[0];
    let word = |rng: &mut Rng| u16::try_from(rng.below(0x1_0000)).unwrap_or(0);
    let index = |rng: &mut Rng| u8::try_from(rng.below(size.min(256))).unwrap_or(0);
    for _ in 0..rng.below(60).saturating_add(3) {
        let q = u8::try_from(rng.below(2)).unwrap_or(0);
        script = match rng.below(100) {
            0..=39 => {
                let addr = word(rng);
                let len = if rng.below(2) == 0 {
                    u16::try_from(rng.below(0x100)).unwrap_or(0)
                } else {
                    word(rng)
                };
                let flags = [0, 1, 2, 3, 4, 6]
                    .get(usize::try_from(rng.below(6)).unwrap_or(0))
                    .copied()
                    .unwrap_or(0);
                let (i, next) = (index(rng), index(rng));
                script.desc(q, i, addr, len, flags, next)
            }
            40..=64 => {
                let head = if rng.below(10) == 0 {
                    byte(rng)
                } else {
                    index(rng)
                };
                script.post(q, head)
            }
            65..=76 => {
                let bytes: Vec<u8> = (0..=rng.below(16)).map(|_| byte(rng)).collect();
                script.write(word(rng), &bytes)
            }
            77..=79 => {
                // Ring fields and raw descriptors of both queues.
                let bytes: Vec<u8> = (0..=rng.below(16)).map(|_| byte(rng)).collect();
                let offset = u16::try_from(rng.below(2 * QUEUE_STRIDE)).unwrap_or(0);
                script.ring_write(offset, &bytes)
            }
            80..=97 => script.event(byte(rng)),
            _ => script.avail_idx(q, word(rng)),
        };
    }
    script.event(byte(rng)).build()
}

/// [`RANDOM_SCRIPTS`] scripts of [`random_script`] (from a fixed seed) replay clean, and at
/// most `max_self_modifying` of them are self-modifying (the checks skip part of them); the
/// count goes to stderr.
pub fn check_random_scripts(target: &str, max_self_modifying: usize, replay: Replay) {
    let mut rng = Rng::new(RANDOM_SEED);
    let (mut self_modifying, mut events, mut unchecked) = (0usize, 0usize, 0usize);
    for n in 0..RANDOM_SCRIPTS {
        let script = random_script(&mut rng);
        let outcome = replay(&script).unwrap_or_else(|e| panic!("random script {n}: {e}"));
        if outcome.self_modifying() {
            self_modifying = self_modifying.saturating_add(1);
        }
        events = events.saturating_add(outcome.events);
        unchecked = unchecked.saturating_add(outcome.unchecked_events);
    }
    eprintln!(
        "{target}: {self_modifying} of {RANDOM_SCRIPTS} random scripts self-modifying, \
         {unchecked} of {events} events unchecked (seed {RANDOM_SEED:#x})"
    );
    assert!(
        self_modifying <= max_self_modifying,
        "{target}: {self_modifying} of {RANDOM_SCRIPTS} random scripts self-modifying, at \
         most {max_self_modifying} expected"
    );
}

/// Declares the three corpus tests of the fuzz target `$target` (its directory name) for
/// the seeds `$seeds` (a `fn() -> Vec<Seed>`), the replay `$replay` (a [`Replay`]) and
/// the bound on self-modifying random scripts (see [`check_random_scripts`]).
#[macro_export]
macro_rules! fuzz_corpus_tests {
    ($target:expr, $seeds:path, $replay:path, max_self_modifying: $max:expr) => {
        #[test]
        fn seeds_pass_and_match_the_committed_corpus() {
            $crate::fuzz_corpus::check_seeds_match_the_corpus($target, $seeds(), $replay);
        }

        #[test]
        fn corpus_and_regressions_replay_clean() {
            $crate::fuzz_corpus::check_corpus_replays_clean($target, $seeds().len(), $replay);
        }

        #[test]
        fn random_scripts_replay_clean() {
            $crate::fuzz_corpus::check_random_scripts($target, $max, $replay);
        }
    };
}
