//! A host GPIO chip through the Linux character device (uAPI v2, via `gpiocdev`).
//!
//! The chip is opened and its line names read once at startup ([`ChipInfo`]). Each
//! connection gets a [`LinuxChip`] with no line requested: a line is requested (consumer
//! `vhost-device-gpio`) when the guest gives it a direction or an interrupt type and
//! released on direction NONE; dropping the `LinuxChip` releases every line. Every request's
//! fd is added to one epoll instance, whose fd the vhost-user worker waits on.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpiocdev::line::{EdgeKind, Value};
use gpiocdev::{Chip, Request};
use virtio_gpio_core::{Direction, Edge, EdgeDetection, GpioHost, LineConfig};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::error::HostError;

/// Consumer label of every line request.
pub const CONSUMER: &str = "vhost-device-gpio";

/// Why a chip cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The chip does not exist or is not a GPIO character device.
    #[error("cannot open {path}")]
    Open {
        /// The chip's path.
        path: PathBuf,
        /// gpiocdev's error.
        #[source]
        source: gpiocdev::Error,
    },
    /// The chip's information could not be read.
    #[error("cannot read the lines of {path}")]
    Info {
        /// The chip's path.
        path: PathBuf,
        /// gpiocdev's error.
        #[source]
        source: gpiocdev::Error,
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

/// What was read from a chip at startup.
#[derive(Debug)]
pub struct ChipInfo {
    path: PathBuf,
    label: String,
    names: Vec<String>,
}

impl ChipInfo {
    /// Opens `/dev/gpiochip{index}` and reads its line count and names.
    pub fn open(index: u32) -> Result<Self, OpenError> {
        let path = PathBuf::from(format!("/dev/gpiochip{index}"));
        let chip = Chip::from_path(&path).map_err(|source| OpenError::Open {
            path: path.clone(),
            source,
        })?;
        let info = chip.info().map_err(|source| OpenError::Info {
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
            .map(|offset| chip.line_info(offset).map(|li| li.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| OpenError::Info {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            label: info.label,
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

/// One connection's view of a host chip.
#[derive(Debug)]
pub struct LinuxChip {
    info: Arc<ChipInfo>,
    requests: Vec<Option<Request>>,
    epoll: Epoll,
}

fn host_edges(edges: EdgeDetection) -> Option<gpiocdev::line::EdgeDetection> {
    use gpiocdev::line::EdgeDetection as E;
    match edges {
        EdgeDetection::None => None,
        EdgeDetection::Rising => Some(E::RisingEdge),
        EdgeDetection::Falling => Some(E::FallingEdge),
        EdgeDetection::Both => Some(E::BothEdges),
    }
}

/// The gpiocdev request configuration for one line.
fn request_config(chip: &Path, line: u16, config: LineConfig) -> gpiocdev::request::Config {
    let mut cfg = gpiocdev::request::Config::default();
    cfg.on_chip(chip).with_line(u32::from(line));
    match config.direction {
        Direction::Out => cfg.as_output(Value::from(config.output)),
        // A line with an interrupt type but no direction is watched as an input.
        // (gpiocdev's `with_edge_detection` makes a line an input: inputs only.)
        Direction::In | Direction::None => {
            cfg.as_input().with_edge_detection(host_edges(config.edges))
        }
    };
    cfg
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

    fn line_error(&self, line: u16, op: &'static str, source: gpiocdev::Error) -> HostError {
        HostError::Line {
            chip: self.info.path.clone(),
            line,
            op,
            source,
        }
    }

    fn request(&self, line: u16) -> Result<&Request, HostError> {
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
        let cfg = request_config(&self.info.path, line, config);
        if let Ok(request) = self.request(line) {
            return request
                .reconfigure(&cfg)
                .map_err(|e| self.line_error(line, "reconfigure", e));
        }
        let request = Request::from_config(cfg)
            .with_consumer(CONSUMER)
            .request()
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
            .value(u32::from(line))
            .map_err(|e| self.line_error(line, "read", e))?;
        Ok(value == Value::Active)
    }

    fn set_value(&mut self, line: u16, value: bool) -> Result<(), HostError> {
        self.request(line)?
            .set_value(u32::from(line), Value::from(value))
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
                while request
                    .has_edge_event()
                    .map_err(|e| self.line_error(line, "poll", e))?
                {
                    let event = request
                        .read_edge_event()
                        .map_err(|e| self.line_error(line, "read an edge of", e))?;
                    on_edge(
                        line,
                        match event.kind {
                            EdgeKind::Rising => Edge::Rising,
                            EdgeKind::Falling => Edge::Falling,
                        },
                    );
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
    use gpiocdev::line::{Direction as HostDirection, EdgeDetection as HostEdges};

    fn line_config(config: LineConfig) -> gpiocdev::line::Config {
        request_config(Path::new("/dev/gpiochip9"), 3, config)
            .line_config(3)
            .cloned()
            .unwrap()
    }

    #[test]
    fn output_keeps_its_value_and_has_no_edges() {
        let c = line_config(LineConfig {
            direction: Direction::Out,
            output: true,
            edges: EdgeDetection::None,
        });
        assert_eq!(c.direction, Some(HostDirection::Output));
        assert_eq!(c.value, Some(Value::Active));
        assert_eq!(c.edge_detection, None);
    }

    #[test]
    fn inputs_get_the_requested_edges() {
        for (edges, want) in [
            (EdgeDetection::None, None),
            (EdgeDetection::Rising, Some(HostEdges::RisingEdge)),
            (EdgeDetection::Falling, Some(HostEdges::FallingEdge)),
            (EdgeDetection::Both, Some(HostEdges::BothEdges)),
        ] {
            for direction in [Direction::In, Direction::None] {
                let c = line_config(LineConfig {
                    direction,
                    output: true,
                    edges,
                });
                assert_eq!(c.direction, Some(HostDirection::Input));
                assert_eq!(c.edge_detection, want);
            }
        }
    }
}
