//! The opening both suites share: connect to the daemon, then check its offered features.

use std::path::Path;

use vhost_user_test_frontend::{FrontendOptions, TestFrontend};

use crate::{Report, ensure};

/// Connects to the daemon at `socket` with `num_queues` queues of `queue_size` entries and
/// `mem_size` bytes of guest memory,
/// recording the check `connect`, then records `features`: every bit of `required` must be
/// offered (`lacks` names them in the failure). `None` if the connection failed; the
/// remaining checks are then skipped.
pub fn connect(
    rep: &mut Report,
    socket: &Path,
    num_queues: usize,
    queue_size: u16,
    mem_size: usize,
    required: u64,
    lacks: &str,
) -> Option<TestFrontend> {
    let opts = FrontendOptions {
        num_queues,
        queue_size,
        mem_size,
        ..FrontendOptions::default()
    };
    let fe = match TestFrontend::connect(socket, opts) {
        Ok(fe) => {
            rep.check("connect", Ok(()));
            fe
        }
        Err(e) => {
            rep.check("connect", Err(format!("{}: {e}", socket.display())));
            return None;
        }
    };
    let f = fe.offered_features();
    rep.check(
        "features",
        ensure(f & required == required, || {
            format!("offered {f:#x} lacks {lacks}")
        }),
    );
    Some(fe)
}
