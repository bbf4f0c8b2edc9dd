//! Descriptor chains <-> `virtio-i2c-core`: decodes each requestq chain into a group entry,
//! runs finished groups on the [`Router`], and writes data and status back into the chains.
//!
//! No vhost types here but the drain loop's [`ChainSink`]/[`UsedRing`].

use log::{debug, error};
use vhost_device_common::chain::{ChainLayout, Segments};
use vhost_device_common::queue::{Chain, ChainSink, UsedRing};
use vhost_device_common::ram::Ram;
use vhost_device_common::report::ErrorChain;
use virtio_i2c_core::chain::{self, ChainShape, Decoded, PAYLOAD_OFFSET};
use virtio_i2c_core::group::{GroupFailure, Pushed};
use virtio_i2c_core::request::OUT_HDR_LEN;
use virtio_i2c_core::{Group, VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK};

use crate::host::Router;

/// A request waiting for its group to finish.
#[derive(Debug)]
pub struct Pending {
    head: u16,
    /// Device-writable buffers: read data, then the status byte at the end.
    writable: Segments,
}

/// Decodes one chain into a group entry ([`virtio_i2c_core::chain::decode`] holds the
/// rules). Reads the header once (no double fetch).
fn decode(mem: &Ram, l: &ChainLayout) -> Decoded {
    let shape = ChainShape {
        readable: l.readable.len(),
        writable: l.writable.len(),
    };
    let mut hdr = [0u8; OUT_HDR_LEN];
    let header =
        (shape.has_header() && l.readable.read_at(mem, 0, &mut hdr).is_ok()).then_some(&hdr);
    chain::decode(shape, header)
}

fn complete(mem: &Ram, used: &mut UsedRing<'_>, p: Pending, ok: bool, data: &[u8]) {
    let shape = ChainShape {
        readable: 0,
        writable: p.writable.len(),
    };
    let Some(status_at) = shape.status_at() else {
        // No byte to write a status into: return the chain untouched.
        used.add(p.head, 0);
        return;
    };
    let ok = ok && (data.is_empty() || p.writable.write_at(mem, 0, data).is_ok());
    let status = if ok {
        VIRTIO_I2C_MSG_OK
    } else {
        VIRTIO_I2C_MSG_ERR
    };
    if p.writable.write_at(mem, status_at, &[status]).is_err() {
        used.add(p.head, 0);
        return;
    }
    used.add(p.head, chain::used_len(ok, data.len()));
}

#[derive(Debug)]
pub struct RequestSink<'a> {
    /// Where groups run.
    pub router: &'a Router,
    /// The group being collected (finished when its last request arrives, or at the end
    /// of the batch at the latest).
    pub group: &'a mut Group<Pending>,
    /// `--trace`: log every group.
    pub trace: bool,
}

impl RequestSink<'_> {
    fn finish(&mut self, mem: &Ram, used: &mut UsedRing<'_>) {
        let router = self.router;
        let trace = self.trace;
        if trace && self.group.is_failed() {
            crate::trace::malformed(self.group.len());
        }
        let err = self.group.finish(
            |msgs| {
                let result = router.run(msgs);
                if trace {
                    crate::trace::group(msgs, &result);
                }
                result
            },
            |p, ok, data| complete(mem, used, p, ok, data),
        );
        match err {
            None => {}
            // Guests probe absent addresses routinely: not worth more than a debug line.
            Some(GroupFailure::Exec(e)) => debug!("transfer failed: {}", ErrorChain(&e)),
            // A bug in the group's bookkeeping: loud, and the group was failed, not truncated.
            Some(e @ GroupFailure::Internal(_)) => error!("{e}"),
        }
    }
}

impl ChainSink for RequestSink<'_> {
    fn chain(&mut self, chain: Chain<'_>, mem: &Ram, used: &mut UsedRing<'_>) {
        let l = match chain {
            Ok(l) => l,
            Err((head, e)) => {
                debug!("unusable chain {head}: {e}");
                // Its group (if any) cannot be trusted either; the chain ends it.
                self.group.mark_failed();
                self.finish(mem, used);
                used.add(head, 0);
                return;
            }
        };
        let Decoded { entry, last } = decode(mem, l);
        let pending = Pending {
            head: l.head,
            writable: l.writable,
        };
        match self.group.push(entry, last, pending) {
            Pushed::Write(buf) => {
                if l.readable.read_at(mem, PAYLOAD_OFFSET, buf).is_err() {
                    self.group.mark_failed();
                }
            }
            Pushed::Held => {}
            Pushed::FailNow(p) => complete(mem, used, p, false, &[]),
        }
        if last {
            self.finish(mem, used);
        }
    }

    fn batch_end(&mut self, mem: &Ram, used: &mut UsedRing<'_>) {
        // A group cut off by the end of the available ring still runs: waiting for the rest
        // would stall a guest that (wrongly) set FAIL_NEXT on its last request.
        if !self.group.is_empty() {
            self.finish(mem, used);
        }
    }
}
