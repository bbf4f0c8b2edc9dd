//! The per-ring budget of warnings for errors a guest or frontend causes: nothing they do can
//! fill the host's log.

use std::sync::atomic::{AtomicU32, Ordering};

use log::{debug, warn};

/// A budget of warning-level log lines, so that nothing a guest or frontend does can fill the
/// log: the first few reports are warnings, the rest debug lines.
#[derive(Debug)]
pub struct WarningBudget {
    left: AtomicU32,
}

impl WarningBudget {
    /// A budget of `n` warnings.
    pub const fn new(n: u32) -> Self {
        WarningBudget {
            left: AtomicU32::new(n),
        }
    }

    /// Whether the next report may be a warning (uses one from the budget).
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Logs `args` as a warning while the budget lasts, then at debug level.
    pub fn warn(&self, args: std::fmt::Arguments<'_>) {
        if self.take() {
            warn!("{args} (repeats of guest or frontend errors are logged at debug level)");
        } else {
            debug!("{args}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_budget_runs_out() {
        let r = WarningBudget::new(2);
        assert!(r.take());
        assert!(r.take());
        assert!(!r.take());
        assert!(!r.take());
    }
}
