//! One way to print an error: its message and every source, on one line.

use std::fmt;

/// Displays an error and its sources as `error: source: source...`, each cause once.
///
/// Some errors already write their source into their own message (seccompiler's
/// `Error calling seccomp: {errno}`, landlock's `failed to open "{path}": {source}`) and also
/// return it from `source()`. A source whose text the message printed before it already
/// contains is therefore skipped (its own sources are still looked at), so that such an error
/// does not print its cause twice.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Error paths only: the text of the last message printed, to compare the next with.
        let mut printed = self.0.to_string();
        f.write_str(&printed)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !printed.contains(&text) {
                write!(f, ": {text}")?;
                printed = text;
            }
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::daemon::RunError;
    use crate::sandbox::SandboxError;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Message(
        String,
        #[source] Option<Box<dyn std::error::Error + Send + Sync>>,
    );

    fn line(e: &(dyn std::error::Error + 'static)) -> String {
        ErrorChain(e).to_string()
    }

    /// `text` appears in `line` exactly once.
    fn once(line: &str, text: &str) {
        assert_eq!(line.matches(text).count(), 1, "{text:?} once in {line:?}");
    }

    #[test]
    fn prints_every_source_once() {
        let e = Outer(io::Error::other("inner"));
        assert_eq!(line(&e), "outer: inner");
    }

    #[test]
    fn a_repeated_source_is_skipped_and_the_next_one_still_printed() {
        let inner = Message("inner".into(), None);
        let middle = Message("middle".into(), Some(Box::new(inner)));
        let outer = Message("outer, i.e. middle".into(), Some(Box::new(middle)));
        assert_eq!(line(&outer), "outer, i.e. middle: inner");
    }

    #[test]
    fn seccomp_call_error_under_qemu_user() {
        // What the daemon printed under qemu-user, where seccomp(2) is not implemented.
        let errno = io::Error::from_raw_os_error(libc::ENOSYS);
        let e: RunError<io::Error> = RunError::Sandbox(SandboxError::SeccompApply(
            seccompiler::Error::Seccomp(io::Error::from_raw_os_error(libc::ENOSYS)),
        ));
        let printed = line(&e);
        once(&printed, &errno.to_string());
        assert!(
            printed.starts_with("cannot enter the sandbox: cannot install the seccomp filter: "),
            "{printed}"
        );
    }

    #[test]
    fn seccomp_backend_error_inside_seccomp_error() {
        let backend = seccompiler::BackendError::EmptyRule;
        let text = backend.to_string();
        let e = SandboxError::SeccompApply(seccompiler::Error::Backend(backend));
        once(&line(&e), &text);
    }

    #[test]
    fn seccomp_build_error() {
        let backend = seccompiler::BackendError::InvalidTargetArch("pdp11".into());
        let text = backend.to_string();
        let e = SandboxError::SeccompBuild(backend);
        let printed = line(&e);
        once(&printed, &text);
        assert!(
            printed.starts_with("cannot build the seccomp filter: "),
            "{printed}"
        );
    }

    #[test]
    fn landlock_path_error() {
        let path = std::path::PathBuf::from("/nonexistent-issue15/sockets");
        let source = landlock::PathFd::new(&path).expect_err("the path does not exist");
        let errno = io::Error::from_raw_os_error(libc::ENOENT).to_string();
        let e = SandboxError::LandlockPath { path, source };
        let printed = line(&e);
        once(&printed, &errno);
        once(&printed, "/nonexistent-issue15/sockets\"");
    }

    #[test]
    fn io_error_wrapping_an_error_with_a_source() {
        // `memory::check_update` hands the library an `io::Error::other(MemoryError)`.
        let errno = io::Error::from_raw_os_error(libc::EBADF);
        let memory = crate::memory::MemoryError::Inspect {
            guest: 0x1000,
            source: io::Error::from_raw_os_error(libc::EBADF),
        };
        let text = memory.to_string();
        let printed = line(&Outer(io::Error::other(memory)));
        once(&printed, &text);
        once(&printed, &errno.to_string());
    }
}
