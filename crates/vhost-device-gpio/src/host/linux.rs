//! A host GPIO chip through the Linux character device (uAPI v2, via `gpiocdev-uapi`).
//!
//! The chip is opened and its line names read once at startup ([`ChipInfo`]), and that one
//! open chip serves every line request of every connection: a request is the GET_LINE ioctl
//! on the chip's fd, never a new open (after setup the daemon opens no files). Each
//! connection gets a [`LinuxChip`] with no line requested: a line is requested (consumer
//! `vhost-device-gpio`) when the guest gives it a direction or an interrupt type and
//! released on direction NONE; dropping the `LinuxChip` releases every line. Every request's
//! fd is added to one epoll instance, whose fd the vhost-user worker waits on.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpiocdev_uapi::v2;
use virtio_gpio_core::{Direction, Edge, EdgeDetection, GpioHost, LineConfig};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::error::HostError;

/// Consumer label of every line request.
pub const CONSUMER: &str = "vhost-device-gpio";

/// Why a chip cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The chip does not exist or cannot be opened.
    #[error("cannot open {path}")]
    Open {
        /// The chip's path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The chip's information could not be read (or it is not a GPIO character device).
    #[error("cannot read the lines of {path}")]
    Info {
        /// The chip's path.
        path: PathBuf,
        /// The uAPI error.
        #[source]
        source: gpiocdev_uapi::Error,
    },
    /// virtio-gpio needs 1 to 65535 lines.
    #[error("{path} has {lines} lines; virtio-gpio serves 1 to 65535")]
    LineCount {
        /// The chip's path.
        path: PathBuf,
        /// The chip's line count.
        lines: u32,
    },
}

/// A chip opened at startup: its fd (shared by every connection's line requests), its
/// label and its line names.
#[derive(Debug)]
pub struct ChipInfo {
    chip: File,
    path: PathBuf,
    label: String,
    names: Vec<String>,
}

impl ChipInfo {
    /// Opens `/dev/gpiochip{index}` and reads its line count and names.
    pub fn open(index: u32) -> Result<Self, OpenError> {
        let path = PathBuf::from(format!("/dev/gpiochip{index}"));
        let chip = File::open(&path).map_err(|source| OpenError::Open {
            path: path.clone(),
            source,
        })?;
        // GET_CHIPINFO fails (ENOTTY) on anything that is not a GPIO character device.
        let info = v2::get_chip_info(&chip).map_err(|source| OpenError::Info {
            path: path.clone(),
            source,
        })?;
        let count = u16::try_from(info.num_lines)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| OpenError::LineCount {
                path: path.clone(),
                lines: info.num_lines,
            })?;
        let names = (0..u32::from(count))
            .map(|offset| v2::get_line_info(&chip, offset).map(|li| String::from(&li.name)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| OpenError::Info {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            chip,
            path,
            label: String::from(&info.label),
            names,
        })
    }

    /// The chip's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chip's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Number of lines (1 to 65535).
    pub fn num_lines(&self) -> u16 {
        u16::try_from(self.names.len()).unwrap_or(u16::MAX)
    }
}

/// The uAPI configuration of one line.
fn uapi_config(config: LineConfig) -> v2::LineConfig {
    use v2::LineFlags as F;
    let mut cfg = v2::LineConfig::default();
    match config.direction {
        Direction::Out => {
            cfg.flags = F::OUTPUT;
            cfg.add_values(&v2::LineValues {
                bits: u64::from(config.output),
                mask: 1,
            });
        }
        // A line with an interrupt type but no direction is watched as an input
        // (the kernel detects edges on inputs only).
        Direction::In | Direction::None => {
            cfg.flags = F::INPUT
                | match config.edges {
                    EdgeDetection::None => F::empty(),
                    EdgeDetection::Rising => F::EDGE_RISING,
                    EdgeDetection::Falling => F::EDGE_FALLING,
                    EdgeDetection::Both => F::EDGE_RISING | F::EDGE_FALLING,
                };
        }
    }
    cfg
}

/// Words (u64) of one edge event as the kernel reads it out.
const EDGE_EVENT_WORDS: usize = size_of::<v2::LineEdgeEvent>() / size_of::<u64>();

/// One requested line (a uAPI v2 line request holding exactly that line, as bit 0).
#[derive(Debug)]
struct LineRequest {
    file: File,
}

impl LineRequest {
    /// Requests `line` through the already open `chip` (an ioctl, not an open).
    fn new(chip: &File, line: u16, config: LineConfig) -> gpiocdev_uapi::Result<Self> {
        let mut request = v2::LineRequest {
            consumer: CONSUMER.into(),
            config: uapi_config(config),
            num_lines: 1,
            ..Default::default()
        };
        request.offsets.set(0, u32::from(line));
        v2::get_line(chip, request).map(|file| Self { file })
    }

    fn reconfigure(&self, config: LineConfig) -> gpiocdev_uapi::Result<()> {
        v2::set_line_config(&self.file, uapi_config(config))
    }

    fn value(&self) -> gpiocdev_uapi::Result<bool> {
        let mut values = v2::LineValues { bits: 0, mask: 1 };
        v2::get_line_values(&self.file, &mut values)?;
        Ok(values.bits & 1 != 0)
    }

    fn set_value(&self, value: bool) -> gpiocdev_uapi::Result<()> {
        v2::set_line_values(
            &self.file,
            &v2::LineValues {
                bits: u64::from(value),
                mask: 1,
            },
        )
    }

    /// The next pending edge, if any (never blocks).
    fn next_edge(&self) -> gpiocdev_uapi::Result<Option<Edge>> {
        if !v2::has_event(&self.file)? {
            return Ok(None);
        }
        let mut buf = [0u64; EDGE_EVENT_WORDS];
        let words = v2::read_event(&self.file, &mut buf)?;
        let event = v2::LineEdgeEvent::from_slice(buf.get(..words).unwrap_or_default())?;
        Ok(match v2::LineEdgeEventKind::try_from(event.kind) {
            Ok(v2::LineEdgeEventKind::RisingEdge) => Some(Edge::Rising),
            Ok(v2::LineEdgeEventKind::FallingEdge) => Some(Edge::Falling),
            // Not an edge the v2 uAPI defines: skipped (the kernel never sends one).
            Err(()) => None,
        })
    }
}

impl AsRawFd for LineRequest {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// One connection's view of a host chip.
#[derive(Debug)]
pub struct LinuxChip {
    info: Arc<ChipInfo>,
    requests: Vec<Option<LineRequest>>,
    epoll: Epoll,
}

impl LinuxChip {
    /// A connection's chip, with no line requested.
    pub fn new(info: Arc<ChipInfo>) -> Result<Self, HostError> {
        let epoll = Epoll::new().map_err(|source| HostError::Event {
            op: "create",
            source,
        })?;
        let mut requests = Vec::new();
        requests.resize_with(usize::from(info.num_lines()), || None);
        Ok(Self {
            info,
            requests,
            epoll,
        })
    }

    fn line_error(&self, line: u16, op: &'static str, source: gpiocdev_uapi::Error) -> HostError {
        HostError::Line {
            chip: self.info.path.clone(),
            line,
            op,
            source,
        }
    }

    fn request(&self, line: u16) -> Result<&LineRequest, HostError> {
        self.requests
            .get(usize::from(line))
            .and_then(Option::as_ref)
            .ok_or(HostError::NotRequested(line))
    }

    fn release(&mut self, line: u16) {
        if let Some(request) = self
            .requests
            .get_mut(usize::from(line))
            .and_then(Option::take)
        {
            // The request's fd leaves the epoll set by itself when it is closed; deleting it
            // first keeps the set exact even if the fd number is reused.
            let _ = self.epoll.ctl(
                ControlOperation::Delete,
                request.as_raw_fd(),
                EpollEvent::default(),
            );
        }
    }
}

impl GpioHost for LinuxChip {
    type Error = HostError;

    fn num_lines(&self) -> u16 {
        self.info.num_lines()
    }

    fn line_name(&self, line: u16) -> Option<&str> {
        self.info.names.get(usize::from(line)).map(String::as_str)
    }

    fn configure(&mut self, line: u16, config: LineConfig) -> Result<(), HostError> {
        if config.is_released() {
            self.release(line);
            return Ok(());
        }
        if let Ok(request) = self.request(line) {
            return request
                .reconfigure(config)
                .map_err(|e| self.line_error(line, "reconfigure", e));
        }
        let request = LineRequest::new(&self.info.chip, line, config)
            .map_err(|e| self.line_error(line, "request", e))?;
        self.epoll
            .ctl(
                ControlOperation::Add,
                request.as_raw_fd(),
                EpollEvent::new(EventSet::IN, u64::from(line)),
            )
            .map_err(|source| HostError::Event {
                op: "watch a line request in",
                source,
            })?;
        if let Some(slot) = self.requests.get_mut(usize::from(line)) {
            *slot = Some(request);
        }
        Ok(())
    }

    fn get_value(&mut self, line: u16) -> Result<bool, HostError> {
        let value = self
            .request(line)?
            .value()
            .map_err(|e| self.line_error(line, "read", e))?;
        Ok(value)
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        self.request(line)?
            .set_value(value)
            .map_err(|e| self.line_error(line, "write", e))
    }

    fn read_edges(&mut self, on_edge: &mut dyn FnMut(u16, Edge)) -> Result<(), HostError> {
        let mut ready = [EpollEvent::default(); 16];
        loop {
            let n = self
                .epoll
                .wait(0, &mut ready)
                .map_err(|source| HostError::Event {
                    op: "wait on",
                    source,
                })?;
            for event in ready.iter().take(n) {
                let Ok(line) = u16::try_from(event.data()) else {
                    continue;
                };
                let Ok(request) = self.request(line) else {
                    continue;
                };
                while let Some(edge) = request
                    .next_edge()
                    .map_err(|e| self.line_error(line, "read an edge of", e))?
                {
                    on_edge(line, edge);
                }
            }
            if n < ready.len() {
                return Ok(());
            }
        }
    }
}

impl AsRawFd for LinuxChip {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v2::LineFlags as F;

    fn flags_and_values(config: LineConfig) -> (F, Option<u64>) {
        let c = uapi_config(config);
        let values = (0..c.num_attrs as usize).find_map(|i| match c.attr(i).attr.to_value() {
            Some(v2::LineAttributeValue::Values(v)) => {
                assert_eq!(c.attr(i).mask, 1, "values apply to the one requested line");
                Some(v)
            }
            _ => None,
        });
        (c.flags, values)
    }

    #[test]
    fn output_keeps_its_value_and_has_no_edges() {
        for (output, bits) in [(true, 1), (false, 0)] {
            let (flags, values) = flags_and_values(LineConfig {
                direction: Direction::Out,
                output,
                edges: EdgeDetection::None,
            });
            assert_eq!(flags, F::OUTPUT);
            assert_eq!(values, Some(bits));
        }
    }

    #[test]
    fn inputs_get_the_requested_edges() {
        for (edges, want) in [
            (EdgeDetection::None, F::empty()),
            (EdgeDetection::Rising, F::EDGE_RISING),
            (EdgeDetection::Falling, F::EDGE_FALLING),
            (EdgeDetection::Both, F::EDGE_RISING | F::EDGE_FALLING),
        ] {
            for direction in [Direction::In, Direction::None] {
                let (flags, values) = flags_and_values(LineConfig {
                    direction,
                    output: true,
                    edges,
                });
                assert_eq!(flags, F::INPUT | want);
                assert_eq!(values, None);
            }
        }
    }

    /// A line request goes to the chip opened at startup (GET_LINE on its fd), never to a
    /// new open of the chip's path: here the path does not exist and the "chip" is
    /// /dev/null, so a re-open would fail with ENOENT while the request fails exactly as
    /// GET_LINE on /dev/null fails on this machine (ENOTTY from Linux; ENOSYS under a
    /// qemu-user that does not know the ioctl): the errno is measured, not assumed.
    #[test]
    fn line_requests_use_the_chip_opened_at_startup() {
        let config = |direction| LineConfig {
            direction,
            output: false,
            edges: EdgeDetection::None,
        };
        let on_dev_null = |direction| {
            let dev_null = File::open("/dev/null").unwrap();
            match LineRequest::new(&dev_null, 2, config(direction)).map(drop) {
                Err(gpiocdev_uapi::Error::Os(v2::Errno(errno))) => errno,
                other => panic!("GET_LINE on /dev/null: expected an OS error, got {other:?}"),
            }
        };
        let info = ChipInfo {
            chip: File::open("/dev/null").unwrap(),
            path: PathBuf::from("/nonexistent/gpiochip9"),
            label: "test".into(),
            names: vec![String::new(); 4],
        };
        let mut chip = LinuxChip::new(Arc::new(info)).unwrap();
        for direction in [Direction::In, Direction::Out] {
            let expected = on_dev_null(direction);
            assert_ne!(
                expected,
                libc::ENOENT,
                "GET_LINE on /dev/null answers ENOENT here: the check cannot tell an ioctl from a re-open"
            );
            let err = chip.configure(2, config(direction)).unwrap_err();
            match err {
                HostError::Line {
                    line: 2,
                    op: "request",
                    source: gpiocdev_uapi::Error::Os(v2::Errno(errno)),
                    ..
                } => assert_eq!(
                    errno, expected,
                    "the request must be GET_LINE on the open chip (errno {expected}), not a re-open of its path (ENOENT)"
                ),
                other => panic!("unexpected error: {other:?}"),
            }
        }
        assert!(matches!(chip.get_value(2), Err(HostError::NotRequested(2))));
    }
}
