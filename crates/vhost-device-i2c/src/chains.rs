//! Descriptor chains <-> `virtio-i2c-core`: decodes each requestq chain into a group entry,
//! runs finished groups on the [`Router`], and writes data and status back into the chains.
//!
//! No vhost types here but the drain loop's [`ChainSink`]/[`UsedRing`].

use log::{debug, error};
use vhost_device_common::chain::{ChainLayout, Segments, layout};
use vhost_device_common::queue::{ChainSink, UsedRing};
use vhost_device_common::report::ErrorChain;
use virtio_i2c_core::group::{Entry, GroupFailure, Pushed};
use virtio_i2c_core::request::{OUT_HDR_LEN, fail_next_of, parse_header};
use virtio_i2c_core::{Group, VIRTIO_I2C_MSG_ERR, VIRTIO_I2C_MSG_OK};
use vm_memory::GuestMemoryMmap;

use crate::host::Router;

/// A request waiting for its group to finish.
#[derive(Debug)]
pub struct Pending {
    head: u16,
    /// Device-writable buffers: read data, then the status byte at the end.
    writable: Segments,
}

/// Decodes one chain into a group entry. Reads the header once (no double fetch).
fn decode(mem: &GuestMemoryMmap, l: &ChainLayout) -> (Entry, bool) {
    if l.readable.len() < OUT_HDR_LEN {
        return (Entry::Invalid, true);
    }
    let mut hdr = [0u8; OUT_HDR_LEN];
    if l.readable.read_at(mem, 0, &mut hdr).is_err() {
        return (Entry::Invalid, true);
    }
    let header = match parse_header(&hdr) {
        Ok(h) => h,
        Err(_) => return (Entry::Invalid, !fail_next_of(&hdr)),
    };
    let last = !header.fail_next;
    if l.writable.is_empty() {
        // No status byte: the request cannot be answered, so it must not be executed.
        return (Entry::Invalid, last);
    }
    let payload = l.readable.len().saturating_sub(OUT_HDR_LEN);
    let response = l.writable.len().saturating_sub(1);
    let len = match (header.read, payload, response) {
        // Read: all data flows to the guest; write: all from it. Anything else is a buffer
        // of the wrong direction.
        (true, 0, n) => n,
        (false, n, 0) => n,
        _ => return (Entry::Invalid, last),
    };
    // An address outside the device list stays a valid request: the router refuses the
    // group before any adapter sees it (and the trace can say "no device").
    (Entry::Valid { header, len }, last)
}

fn complete(mem: &GuestMemoryMmap, used: &mut UsedRing<'_>, p: Pending, ok: bool, data: &[u8]) {
    let Some(status_at) = p.writable.len().checked_sub(1) else {
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
    let written = if ok { data.len() } else { 0 };
    let len = u32::try_from(written.saturating_add(1)).unwrap_or(1);
    used.add(p.head, len);
}

#[derive(Debug)]
pub struct RequestSink<'a> {
    /// Where groups run.
    pub router: &'a Router,
    /// The group being collected (kept across kicks).
    pub group: &'a mut Group<Pending>,
    /// `--trace`: log every group.
    pub trace: bool,
}

impl RequestSink<'_> {
    fn finish(&mut self, mem: &GuestMemoryMmap, used: &mut UsedRing<'_>) {
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
    fn chain(
        &mut self,
        chain: virtio_queue::DescriptorChain<&GuestMemoryMmap>,
        used: &mut UsedRing<'_>,
    ) {
        let mem = chain.memory();
        let l = match layout(chain.clone()) {
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
        let (entry, last) = decode(mem, &l);
        let pending = Pending {
            head: l.head,
            writable: l.writable,
        };
        match self.group.push(entry, last, pending) {
            Pushed::Write(buf) => {
                if l.readable.read_at(mem, OUT_HDR_LEN, buf).is_err() {
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

    fn batch_end(&mut self, mem: &GuestMemoryMmap, used: &mut UsedRing<'_>) {
        // A group cut off by the end of the available ring still runs: waiting for the rest
        // would stall a guest that (wrongly) set FAIL_NEXT on its last request.
        if !self.group.is_empty() {
            self.finish(mem, used);
        }
    }
}
