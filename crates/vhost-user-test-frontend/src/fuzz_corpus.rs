//! A fuzz target's corpus in the normal test suite, the same for every daemon: the seeds a
//! daemon crate builds must pass and match the committed `fuzz/corpus/<target>/` (written
//! with `UPDATE_FUZZ_CORPUS=1`), and every committed corpus file and every input that once
//! broke a check (`fuzz/regressions/<target>/`) must replay clean against a fresh backend
//! (see [`crate::guest_script`]). A daemon crate expands both with [`fuzz_corpus_tests!`].

// Test tooling: a failed check fails the calling test loudly.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use crate::guest_script::Outcome;

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
        assert!(!outcome.self_modifying, "{name}");
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
                Ok(Ok(_)) => {}
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

/// Declares the two corpus tests of the fuzz target `$target` (its directory name) for
/// the seeds `$seeds` (a `fn() -> Vec<Seed>`) and the replay `$replay` (a [`Replay`]).
#[macro_export]
macro_rules! fuzz_corpus_tests {
    ($target:expr, $seeds:path, $replay:path) => {
        #[test]
        fn seeds_pass_and_match_the_committed_corpus() {
            $crate::fuzz_corpus::check_seeds_match_the_corpus($target, $seeds(), $replay);
        }

        #[test]
        fn corpus_and_regressions_replay_clean() {
            $crate::fuzz_corpus::check_corpus_replays_clean($target, $seeds().len(), $replay);
        }
    };
}
