//! Host adapters: Linux `/dev/i2c-N` through the i2c-dev ioctls.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use virtio_i2c_core::smbus::I2C_BLOCK_MAX;
use virtio_i2c_core::{Address, Functionality, I2cAdapter, MAX_GROUP_MESSAGES, Message, SmbusOp};

use vhost_device_common::sandbox::Ioctl;

use super::error::AdapterError;

/// The i2c-dev ioctls this module issues (linux/i2c-dev.h): the one source of their
/// numbers, for the calls below and for the sandbox's allowlist ([`crate::SYSCALLS`]).
pub const IOCTLS: &[Ioctl] = &[I2C_SLAVE, I2C_FUNCS, I2C_RDWR, I2C_SMBUS];
const I2C_SLAVE: Ioctl = Ioctl {
    name: "I2C_SLAVE",
    request: 0x0703,
};
const I2C_FUNCS: Ioctl = Ioctl {
    name: "I2C_FUNCS",
    request: 0x0705,
};
const I2C_RDWR: Ioctl = Ioctl {
    name: "I2C_RDWR",
    request: 0x0707,
};
const I2C_SMBUS: Ioctl = Ioctl {
    name: "I2C_SMBUS",
    request: 0x0720,
};
const I2C_M_RD: u16 = 0x0001;
const I2C_SMBUS_READ: u8 = 1;
const I2C_SMBUS_WRITE: u8 = 0;
const I2C_SMBUS_QUICK: u32 = 0;
const I2C_SMBUS_BYTE: u32 = 1;
const I2C_SMBUS_BYTE_DATA: u32 = 2;
const I2C_SMBUS_WORD_DATA: u32 = 3;
const I2C_SMBUS_PROC_CALL: u32 = 4;
const I2C_SMBUS_I2C_BLOCK_DATA: u32 = 8;
const SYSFS_I2C: &str = "/sys/bus/i2c/devices";

/// `struct i2c_msg`.
#[repr(C)]
#[derive(Clone, Copy)]
struct I2cMsg {
    addr: u16,
    flags: u16,
    len: u16,
    buf: *mut u8,
}

/// `struct i2c_rdwr_ioctl_data`.
#[repr(C)]
struct I2cRdwrData {
    msgs: *mut I2cMsg,
    nmsgs: u32,
}

/// `union i2c_smbus_data`: byte, word, or a length-prefixed block of up to 32 bytes.
#[repr(C)]
union I2cSmbusData {
    byte: u8,
    word: u16,
    block: [u8; I2C_BLOCK_MAX + 2],
}

/// `struct i2c_smbus_ioctl_data`.
#[repr(C)]
struct I2cSmbusIoctlData {
    read_write: u8,
    command: u8,
    size: u32,
    data: *mut I2cSmbusData,
}

/// Why an adapter or one of its devices cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No adapter has that name.
    #[error("no I2C adapter named \"{0}\" (see /sys/bus/i2c/devices/i2c-*/name)")]
    NoSuchName(String),
    /// Several adapters have that name.
    #[error("several I2C adapters are named \"{0}\"; use the bus number instead")]
    AmbiguousName(String),
    /// Listing adapters failed.
    #[error("cannot list I2C adapters in {SYSFS_I2C}")]
    ListAdapters(#[source] io::Error),
    /// The device node cannot be opened.
    #[error("cannot open {path} (is the i2c-dev module loaded?)")]
    Open {
        /// The node.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// I2C_FUNCS failed.
    #[error("{path}: cannot query adapter functionality")]
    Funcs {
        /// The node.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A kernel driver owns the address.
    #[error(
        "address {addr} on i2c-{bus} is bound to the host driver \"{driver}\"; unbind it first: echo {bus}-00{hex:02x} > /sys/bus/i2c/drivers/{driver}/unbind",
        hex = addr.get()
    )]
    DriverBound {
        /// Bus number.
        bus: u32,
        /// The address.
        addr: Address,
        /// The driver's name.
        driver: String,
    },
}

/// Which host adapter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BusRef {
    /// `/dev/i2c-N`.
    Number(u32),
    /// The adapter's name in sysfs.
    Name(String),
}

impl fmt::Display for BusRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusRef::Number(n) => write!(f, "i2c-{n}"),
            BusRef::Name(s) => write!(f, "adapter \"{s}\""),
        }
    }
}

/// Host devices on one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSpec {
    /// The adapter.
    pub bus: BusRef,
    /// Device addresses on it.
    pub addrs: Vec<Address>,
}

/// One `/dev/i2c-N`.
#[derive(Debug)]
pub struct LinuxAdapter {
    file: File,
    path: PathBuf,
    name: String,
    funcs: Functionality,
    /// The address last set with I2C_SLAVE, to skip redundant ioctls.
    slave: Option<Address>,
}

fn adapter_name(bus: u32) -> String {
    std::fs::read_to_string(format!("{SYSFS_I2C}/i2c-{bus}/name"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn resolve(bus: &BusRef) -> Result<u32, OpenError> {
    match bus {
        BusRef::Number(n) => Ok(*n),
        BusRef::Name(wanted) => {
            let mut found = None;
            let entries = match std::fs::read_dir(SYSFS_I2C) {
                Ok(entries) => entries,
                // No I2C subsystem in sysfs: there is no adapter at all, so none by that name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(OpenError::NoSuchName(wanted.clone()));
                }
                Err(e) => return Err(OpenError::ListAdapters(e)),
            };
            for entry in entries {
                let entry = entry.map_err(OpenError::ListAdapters)?;
                let file_name = entry.file_name();
                let Some(n) = file_name
                    .to_str()
                    .and_then(|s| s.strip_prefix("i2c-"))
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if adapter_name(n) == *wanted {
                    if found.is_some() {
                        return Err(OpenError::AmbiguousName(wanted.clone()));
                    }
                    found = Some(n);
                }
            }
            found.ok_or_else(|| OpenError::NoSuchName(wanted.clone()))
        }
    }
}

fn bound_driver(bus: u32, addr: Address) -> Option<String> {
    let link = Path::new(SYSFS_I2C)
        .join(format!("{bus}-00{:02x}", addr.get()))
        .join("driver");
    let target = std::fs::read_link(link).ok()?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
}

impl LinuxAdapter {
    /// Opens the adapter and checks that no host driver owns any of `addrs`.
    pub fn open(bus: &BusRef, addrs: &[Address]) -> Result<Self, OpenError> {
        let n = resolve(bus)?;
        for &addr in addrs {
            if let Some(driver) = bound_driver(n, addr) {
                return Err(OpenError::DriverBound {
                    bus: n,
                    addr,
                    driver,
                });
            }
        }
        let path = PathBuf::from(format!("/dev/i2c-{n}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| OpenError::Open {
                path: path.clone(),
                source,
            })?;
        let mut funcs: libc::c_ulong = 0;
        // SAFETY: I2C_FUNCS writes one unsigned long into `funcs`, which we own.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), I2C_FUNCS.number(), &mut funcs) };
        if rc < 0 {
            return Err(OpenError::Funcs {
                path,
                source: io::Error::last_os_error(),
            });
        }
        Ok(LinuxAdapter {
            file,
            path,
            name: adapter_name(n),
            funcs: Functionality(funcs),
            slave: None,
        })
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The adapter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn set_slave(&mut self, addr: Address) -> io::Result<()> {
        if self.slave == Some(addr) {
            return Ok(());
        }
        // SAFETY: I2C_SLAVE takes the address by value and touches no memory of ours.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                I2C_SLAVE.number(),
                libc::c_ulong::from(addr.get()),
            )
        };
        if rc < 0 {
            self.slave = None;
            return Err(io::Error::last_os_error());
        }
        self.slave = Some(addr);
        Ok(())
    }
}

impl I2cAdapter for LinuxAdapter {
    type Error = AdapterError;

    fn functionality(&self) -> Functionality {
        self.funcs
    }

    fn transfer(&mut self, msgs: &mut [Message<'_>]) -> Result<(), AdapterError> {
        let mut raw = [I2cMsg {
            addr: 0,
            flags: 0,
            len: 0,
            buf: std::ptr::null_mut(),
        }; MAX_GROUP_MESSAGES];
        if msgs.len() > raw.len() {
            return Err(AdapterError::Io(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        for (r, m) in raw.iter_mut().zip(msgs.iter_mut()) {
            *r = I2cMsg {
                addr: u16::from(m.addr.get()),
                flags: if m.read { I2C_M_RD } else { 0 },
                len: u16::try_from(m.buf.len()).map_err(io::Error::other)?,
                buf: m.buf.as_mut_ptr(),
            };
        }
        let mut data = I2cRdwrData {
            msgs: raw.as_mut_ptr(),
            nmsgs: u32::try_from(msgs.len()).map_err(io::Error::other)?,
        };
        // SAFETY: `data` points at `nmsgs` initialised i2c_msg entries whose buffers are the
        // messages' exclusive slices of exactly `len` bytes; all outlive the call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), I2C_RDWR.number(), &mut data) };
        if rc < 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(())
    }

    fn smbus(&mut self, addr: Address, op: &SmbusOp, read: &mut [u8]) -> Result<(), AdapterError> {
        self.set_slave(addr)?;
        let mut data = I2cSmbusData {
            block: [0; I2C_BLOCK_MAX + 2],
        };
        let (read_write, command, size) = match *op {
            SmbusOp::Quick { read } => (
                if read {
                    I2C_SMBUS_READ
                } else {
                    I2C_SMBUS_WRITE
                },
                0,
                I2C_SMBUS_QUICK,
            ),
            SmbusOp::ReceiveByte => (I2C_SMBUS_READ, 0, I2C_SMBUS_BYTE),
            SmbusOp::SendByte(b) => (I2C_SMBUS_WRITE, b, I2C_SMBUS_BYTE),
            SmbusOp::ReadByteData { cmd } => (I2C_SMBUS_READ, cmd, I2C_SMBUS_BYTE_DATA),
            SmbusOp::WriteByteData { cmd, value } => {
                data.byte = value;
                (I2C_SMBUS_WRITE, cmd, I2C_SMBUS_BYTE_DATA)
            }
            SmbusOp::ReadWordData { cmd } => (I2C_SMBUS_READ, cmd, I2C_SMBUS_WORD_DATA),
            SmbusOp::WriteWordData { cmd, value } => {
                data.word = value;
                (I2C_SMBUS_WRITE, cmd, I2C_SMBUS_WORD_DATA)
            }
            SmbusOp::ProcessCall { cmd, value } => {
                data.word = value;
                (I2C_SMBUS_WRITE, cmd, I2C_SMBUS_PROC_CALL)
            }
            SmbusOp::ReadI2cBlock { cmd, len } => {
                let mut block = [0u8; I2C_BLOCK_MAX + 2];
                block[0] = len;
                data.block = block;
                (I2C_SMBUS_READ, cmd, I2C_SMBUS_I2C_BLOCK_DATA)
            }
            SmbusOp::WriteI2cBlock {
                cmd,
                len,
                data: bytes,
            } => {
                let mut block = [0u8; I2C_BLOCK_MAX + 2];
                block[0] = len;
                if let Some(dst) = block.get_mut(1..=I2C_BLOCK_MAX) {
                    dst.copy_from_slice(&bytes);
                }
                data.block = block;
                (I2C_SMBUS_WRITE, cmd, I2C_SMBUS_I2C_BLOCK_DATA)
            }
        };
        let mut args = I2cSmbusIoctlData {
            read_write,
            command,
            size,
            data: &raw mut data,
        };
        // SAFETY: `args` and the union it points at live across the call; the kernel reads
        // and writes at most sizeof(union i2c_smbus_data) bytes there.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), I2C_SMBUS.number(), &mut args) };
        if rc < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: every variant of the union is plain bytes fully initialised above (the
        // block variant was written first), so any of them may be read.
        let (byte, word, block) = unsafe { (data.byte, data.word, data.block) };
        let result: &[u8] = match *op {
            SmbusOp::ReceiveByte | SmbusOp::ReadByteData { .. } => &[byte],
            SmbusOp::ReadWordData { .. } | SmbusOp::ProcessCall { .. } => &word.to_le_bytes(),
            // Invariant: the mapping builds block reads of at most 32 bytes, and the block
            // buffer holds 34; a longer one is refused rather than cut.
            SmbusOp::ReadI2cBlock { len, .. } => block
                .get(1..=usize::from(len))
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EOVERFLOW))?,
            _ => &[],
        };
        let dst = read
            .get_mut(..result.len())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))?;
        dst.copy_from_slice(result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `libc::ioctl` call of this module names a request of [`IOCTLS`], and every
    /// request of [`IOCTLS`] is issued somewhere: the sandbox's allowlist (built from
    /// [`IOCTLS`]) is exactly what the code calls.
    #[test]
    #[allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic
    )]
    fn every_ioctl_called_is_on_the_allowlist_and_back() {
        let src = include_str!("linux.rs");
        let code = src.split("#[cfg(test)]").next().unwrap_or_default();
        let mut used = Vec::new();
        for (at, _) in code.match_indices("libc::ioctl(") {
            let args: String = code[at + "libc::ioctl(".len()..]
                .chars()
                .take_while(|&c| c != ';')
                .filter(|c| !c.is_whitespace())
                .collect();
            let request = args.split(',').nth(1).unwrap_or_default();
            let name = request.strip_suffix(".number()").unwrap_or_else(|| {
                panic!("an ioctl call whose request is not an Ioctl constant: {args}")
            });
            assert!(
                IOCTLS.iter().any(|i| i.name == name),
                "{name} is called but not in IOCTLS"
            );
            used.push(name.to_owned());
        }
        for i in IOCTLS {
            assert!(
                used.iter().any(|u| u == i.name),
                "{} is listed but never called",
                i.name
            );
        }
        // The numbers themselves, from linux/i2c-dev.h.
        let numbers: Vec<(&str, u32)> = IOCTLS.iter().map(|i| (i.name, i.request)).collect();
        assert_eq!(
            numbers,
            [
                ("I2C_SLAVE", 0x0703),
                ("I2C_FUNCS", 0x0705),
                ("I2C_RDWR", 0x0707),
                ("I2C_SMBUS", 0x0720)
            ]
        );
    }
}
