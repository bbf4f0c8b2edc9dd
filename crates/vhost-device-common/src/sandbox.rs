//! Confinement entered once setup is done: no new privileges, no capabilities, a Landlock
//! ruleset that allows no new file access, and a seccomp-BPF allowlist.
//!
//! A daemon calls [`enter`] after its devices and listening sockets are open and before
//! the first thread is started (the serve loop starts every thread), so every thread of
//! the process inherits the filter; it is also applied with TSYNC, so a thread that
//! existed earlier would be covered too. After [`enter`] the process can open no file,
//! create no socket and issue no ioctl but those of its device (see [`DeviceSyscalls`]).
//!
//! The allowlist was derived from what the daemons do (see docs/ARCHITECTURE.md,
//! "Sandbox"): the daemons' tests under `strace -f` and `--seccomp log`, and every test and
//! guest suite under the default `--seccomp kill`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use log::info;

use crate::listener::BoundSocket;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What the seccomp filter does with a system call that is not on the allowlist.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeccompMode {
    /// Kill the whole process (SIGSYS).
    #[default]
    Kill,
    /// Allow the call and log it through the kernel's audit log (for finding missing calls).
    Log,
    /// Send SIGSYS to the calling thread (which, unhandled, also ends the process, with a core
    /// dump that shows the call).
    Trap,
    /// No seccomp filter (the rest of the sandbox still applies).
    None,
}

/// Whether the daemon confines itself at all.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// No new privileges, no capabilities, Landlock, and the seccomp filter of --seccomp.
    #[default]
    Full,
    /// No confinement at all (--seccomp is then ignored): for debugging only.
    None,
}

/// The validated sandbox options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxConfig {
    /// The seccomp action for calls outside the allowlist.
    pub seccomp: SeccompMode,
    /// Whether to confine at all.
    pub sandbox: SandboxMode,
}

/// One ioctl request a daemon's device needs after setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ioctl {
    /// The request's name (for logs and documentation).
    pub name: &'static str,
    /// The request number.
    pub request: u32,
}

impl Ioctl {
    /// The request number as `ioctl(2)` takes it.
    pub fn number(self) -> libc::c_ulong {
        libc::c_ulong::from(self.request)
    }
}

/// The device-specific part of a daemon's allowlist.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSyscalls {
    /// ioctl requests the device issues while serving; every other ioctl is refused.
    pub ioctls: &'static [Ioctl],
}

/// Why the sandbox could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] io::Error),
    /// The capability sets could not be cleared.
    #[error("cannot drop capabilities ({step})")]
    Capabilities {
        /// What failed.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A directory the daemon must still write in (to remove its socket) cannot be opened.
    #[error("cannot open {path} for the Landlock ruleset")]
    LandlockPath {
        /// The directory.
        path: PathBuf,
        /// The library's error.
        #[source]
        source: landlock::PathFdError,
    },
    /// The Landlock ruleset could not be built or applied.
    #[error("cannot apply the Landlock ruleset")]
    Landlock(#[source] landlock::RulesetError),
    /// The seccomp filter could not be built.
    #[error("cannot build the seccomp filter")]
    SeccompBuild(#[source] seccompiler::BackendError),
    /// The seccomp filter could not be installed.
    #[error("cannot install the seccomp filter")]
    SeccompApply(#[source] seccompiler::Error),
}

/// Confines the calling process (see the module documentation). The only file operation
/// Landlock still allows is removing files in the directories of `sockets` (the daemon
/// removes its socket files when it exits).
pub fn enter(
    config: &SandboxConfig,
    device: &DeviceSyscalls,
    sockets: &[BoundSocket],
) -> Result<(), SandboxError> {
    settle_libc();
    confine(config, device, sockets)?;
    #[cfg(feature = "sandbox-test-trigger")]
    test_trigger::run();
    Ok(())
}

/// Makes libc decide now, before the sandbox, what it would otherwise find out later from
/// the filesystem (see docs/ARCHITECTURE.md, "Sandbox", "libc after the sandbox").
///
/// glibc's malloc creates another arena when threads contend for one, and once it has more
/// than `M_ARENA_TEST` (8 on 64-bit) it computes its arena limit from the number of online
/// CPUs, read from `/sys/devices/system/cpu/online` (glibc 2.36). With a few busy guests
/// that first happens long after the sandbox is in place. Fixing the limit here with
/// `M_ARENA_MAX` means glibc never asks: one arena per CPU the daemon may run on (the
/// request path allocates nothing, so arenas only serve connection set-up and need not
/// scale further; glibc's default of 8 per CPU would only add memory). Done in every
/// sandbox mode, so the daemon's memory behaves the same confined or not. Other libcs do
/// not read the filesystem here; there is nothing to settle.
fn settle_libc() {
    #[cfg(target_env = "gnu")]
    {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let arenas = libc::c_int::try_from(cpus.clamp(1, MAX_ARENAS)).unwrap_or(1);
        // SAFETY: mallopt takes two integers and only changes the allocator's parameters;
        // no thread allocates concurrently (the serve loop has not started any).
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
        if ok == 1 {
            log::debug!("malloc: at most {arenas} arenas");
        } else {
            log::warn!("malloc: cannot fix the arena count (mallopt refused M_ARENA_MAX)");
        }
    }
}

/// The most malloc arenas [`settle_libc`] allows, however many CPUs there are.
#[cfg(target_env = "gnu")]
const MAX_ARENAS: usize = 8;

fn confine(
    config: &SandboxConfig,
    device: &DeviceSyscalls,
    sockets: &[BoundSocket],
) -> Result<(), SandboxError> {
    if config.sandbox == SandboxMode::None {
        info!("sandbox: none (--sandbox none): running unconfined");
        return Ok(());
    }
    set_no_new_privs()?;
    drop_capabilities()?;
    let remove_dirs: Vec<&Path> = sockets
        .iter()
        .filter_map(|s| s.path.as_deref())
        .map(|p| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        })
        .collect();
    landlock(&remove_dirs)?;
    let action = match config.seccomp {
        SeccompMode::Kill => Some(SeccompAction::KillProcess),
        SeccompMode::Log => Some(SeccompAction::Log),
        SeccompMode::Trap => Some(SeccompAction::Trap),
        SeccompMode::None => None,
    };
    match action {
        Some(action) => {
            let filter = build_filter(device, action)?;
            // One filter per refusal, then the allowlist: the kernel runs them all and takes
            // the strictest answer, so a refused call (which the allowlist lets pass) gets
            // its errno, and every call off the allowlist still gets `action`. The
            // refusals go first: once the allowlist is in place, seccomp(2) is refused.
            for refusal in REFUSALS {
                let program = build_refusal(refusal)?;
                seccompiler::apply_filter_all_threads(&program)
                    .map_err(SandboxError::SeccompApply)?;
            }
            seccompiler::apply_filter_all_threads(&filter).map_err(SandboxError::SeccompApply)?;
            info!(
                "sandbox: no_new_privs, no capabilities, seccomp ({:?} on other calls; {} syscalls, {} ioctls allowed; file opens refused with EACCES, clone3 with ENOSYS)",
                config.seccomp,
                allowed_syscalls().count().saturating_add(6),
                device.ioctls.len().saturating_add(COMMON_IOCTLS.len())
            );
            let names: Vec<&str> = COMMON_IOCTLS
                .iter()
                .chain(device.ioctls)
                .map(|i| i.name)
                .collect();
            log::debug!("sandbox: ioctls allowed: {}", names.join(", "));
        }
        None => info!("sandbox: no_new_privs, no capabilities; no seccomp filter (--seccomp none)"),
    }
    Ok(())
}

fn set_no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(SandboxError::NoNewPrivs(io::Error::last_os_error()));
    }
    Ok(())
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `CAP_SETPCAP` (linux/capability.h).
const CAP_SETPCAP: libc::c_int = 8;
/// `PR_SET_NAME` as a seccomp argument value.
const PR_SET_NAME: u64 = 15;

/// Empties the ambient, bounding (where permitted), effective, permitted and inheritable
/// capability sets.
fn drop_capabilities() -> Result<(), SandboxError> {
    let cap_err = |step| move |source| SandboxError::Capabilities { step, source };
    // SAFETY: integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(cap_err("ambient")(io::Error::last_os_error()));
    }
    // The bounding set can only shrink with CAP_SETPCAP (root): without it there is nothing
    // to gain from it, since no capability is left to use and no_new_privs blocks exec gains.
    // SAFETY: integer arguments only.
    let has_setpcap = unsafe { libc::prctl(libc::PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) };
    if has_setpcap == 1 && effective_has(CAP_SETPCAP)? {
        // Every capability the kernel knows: PR_CAPBSET_DROP answers EINVAL past the last.
        for cap in 0..64 {
            // SAFETY: integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            if rc != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                return Err(cap_err("bounding set")(err));
            }
        }
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and data are valid capset arguments for version 3 (two data structs).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(cap_err("capset")(io::Error::last_os_error()));
    }
    Ok(())
}

fn effective_has(cap: libc::c_int) -> Result<bool, SandboxError> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid capget arguments for version 3 (two data structs).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(SandboxError::Capabilities {
            step: "capget",
            source: io::Error::last_os_error(),
        });
    }
    let Ok(cap) = u32::try_from(cap) else {
        return Ok(false);
    };
    let word = data.get(usize::try_from(cap / 32).unwrap_or(usize::MAX));
    Ok(word.is_some_and(|d| d.effective & (1u32 << (cap % 32)) != 0))
}

/// Allows no file access except removing files beneath `remove_dirs`, no TCP, no abstract
/// socket connections or signals outside the process; degrades (one info line) where the
/// kernel lacks Landlock or part of it.
fn landlock(remove_dirs: &[&Path]) -> Result<(), SandboxError> {
    let abi = ABI::V6;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .map_err(SandboxError::Landlock)?;
    for dir in remove_dirs {
        let fd = PathFd::new(dir).map_err(|source| SandboxError::LandlockPath {
            path: dir.to_path_buf(),
            source,
        })?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, AccessFs::RemoveFile))
            .map_err(SandboxError::Landlock)?;
    }
    let status = ruleset
        .no_new_privs(true)
        .restrict_self()
        .map_err(SandboxError::Landlock)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => info!("sandbox: Landlock enforced"),
        RulesetStatus::PartiallyEnforced => {
            info!("sandbox: Landlock partly enforced (this kernel lacks some Landlock features)")
        }
        RulesetStatus::NotEnforced => {
            info!("sandbox: Landlock not available in this kernel; file access not restricted")
        }
    }
    Ok(())
}

/// The system calls every daemon makes while serving, by name (for logs and documentation)
/// and number. See docs/ARCHITECTURE.md ("Sandbox") for why each is needed.
pub fn allowed_syscalls() -> impl Iterator<Item = (&'static str, libc::c_long)> {
    ALLOWED.iter().chain(ALLOWED_ARCH).copied()
}

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), paste_sys!($name))),*]
    };
}

macro_rules! paste_sys {
    ($name:ident) => {
        sys::$name
    };
}

/// Syscall numbers under their plain names.
#[allow(non_upper_case_globals)]
mod sys {
    pub use libc::{
        SYS_accept4 as accept4, SYS_brk as brk, SYS_clock_gettime as clock_gettime,
        SYS_clock_nanosleep as clock_nanosleep, SYS_close as close,
        SYS_epoll_create1 as epoll_create1, SYS_epoll_ctl as epoll_ctl,
        SYS_epoll_pwait as epoll_pwait, SYS_eventfd2 as eventfd2, SYS_exit as exit,
        SYS_exit_group as exit_group, SYS_fstat as fstat, SYS_futex as futex, SYS_getpid as getpid,
        SYS_getrandom as getrandom, SYS_gettid as gettid, SYS_madvise as madvise,
        SYS_mremap as mremap, SYS_munmap as munmap, SYS_nanosleep as nanosleep,
        SYS_newfstatat as newfstatat, SYS_ppoll as ppoll, SYS_read as read,
        SYS_readlinkat as readlinkat, SYS_recvmsg as recvmsg, SYS_rseq as rseq,
        SYS_rt_sigaction as rt_sigaction, SYS_rt_sigprocmask as rt_sigprocmask,
        SYS_rt_sigreturn as rt_sigreturn, SYS_rt_sigtimedwait as rt_sigtimedwait,
        SYS_sched_getaffinity as sched_getaffinity, SYS_sched_yield as sched_yield,
        SYS_sendmsg as sendmsg, SYS_set_robust_list as set_robust_list, SYS_shutdown as shutdown,
        SYS_sigaltstack as sigaltstack, SYS_statx as statx, SYS_tgkill as tgkill,
        SYS_unlinkat as unlinkat, SYS_write as write, SYS_writev as writev,
    };
    #[cfg(target_arch = "x86_64")]
    pub use libc::{SYS_epoll_wait as epoll_wait, SYS_readlink as readlink, SYS_unlink as unlink};
}

/// Allowed with any arguments. Seen under strace in the daemons' test suites and under load
/// (`tests/sandbox/syscalls-under-load.sh`): accept4, brk (the main arena growing under
/// load), close, epoll_create1, epoll_ctl, epoll_wait, eventfd2, exit, exit_group, futex,
/// getrandom, gettid, madvise, munmap, read, readlink and statx (checks of frontend fds),
/// recvmsg, rseq, rt_sigaction, rt_sigprocmask, rt_sigtimedwait, sched_getaffinity,
/// sendmsg, set_robust_list, shutdown, sigaltstack, unlink, write (and ppoll on a host GPIO
/// chip). The others are rare paths or other libcs/architectures: mremap (allocator
/// growth), clock_gettime (no vDSO), clock_nanosleep/nanosleep (the accept retry pause),
/// epoll_pwait, readlinkat, unlinkat (aarch64), getpid/tgkill (abort), rt_sigreturn (signal
/// handlers), sched_yield (lock back-off), writev (vectored log writes), fstat/newfstatat
/// (other libcs' fstat). Threads are created with `clone` (CLONE_THREAD required, see
/// `build_filter`); `clone3` and the file opens are in [`REFUSALS`].
const ALLOWED: &[(&str, libc::c_long)] = syscalls!(
    accept4,
    brk,
    clock_gettime,
    clock_nanosleep,
    close,
    epoll_create1,
    epoll_ctl,
    epoll_pwait,
    eventfd2,
    exit,
    exit_group,
    fstat,
    futex,
    getpid,
    getrandom,
    gettid,
    madvise,
    mremap,
    munmap,
    nanosleep,
    newfstatat,
    ppoll,
    read,
    readlinkat,
    recvmsg,
    rseq,
    rt_sigaction,
    rt_sigprocmask,
    rt_sigreturn,
    rt_sigtimedwait,
    sched_getaffinity,
    sched_yield,
    sendmsg,
    set_robust_list,
    shutdown,
    sigaltstack,
    statx,
    tgkill,
    unlinkat,
    write,
    writev,
);

/// The x86_64-only calls of the allowlist: the legacy forms glibc still uses there
/// (aarch64 and riscv64 have only the `*at`/`epoll_pwait` forms, which are in [`ALLOWED`]).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[(&str, libc::c_long)] = syscalls!(epoll_wait, readlink, unlink);
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[(&str, libc::c_long)] = &[];

/// File opens: answered with EACCES, never run, never fatal. A daemon opens nothing once
/// it serves, but libc does on paths of its own, and handles a refusal: glibc's malloc reads
/// `/sys/devices/system/cpu/online` (arena limit, settled beforehand by [`settle_libc`])
/// and `/proc/sys/vm/overcommit_memory` (whether a shrinking heap may be unmapped: it then
/// keeps it mapped); `sysconf` and Rust's `available_parallelism` fall back to
/// `sched_getaffinity`. EACCES is also what Landlock answers, so a kernel without Landlock
/// behaves the same. A kill would turn a libc detail into the death of every guest's
/// device.
#[cfg(target_arch = "x86_64")]
const REFUSED_OPENS: &[libc::c_long] = &[libc::SYS_open, libc::SYS_openat, libc::SYS_openat2];
#[cfg(not(target_arch = "x86_64"))]
const REFUSED_OPENS: &[libc::c_long] = &[libc::SYS_openat, libc::SYS_openat2];

/// Calls answered with an errno instead of being run, each with its errno.
/// - File opens: EACCES (see [`REFUSED_OPENS`]).
/// - `clone3`: ENOSYS. Its flags sit in a structure in memory, which a seccomp filter
///   cannot read, so it cannot be limited to threads; glibc (>= 2.34) takes ENOSYS as "this
///   kernel has no clone3" and creates the thread with `clone`, whose flags the allowlist
///   does check (CLONE_THREAD required: threads only, no new process).
const REFUSALS: &[(&[libc::c_long], libc::c_int)] = &[
    (REFUSED_OPENS, libc::EACCES),
    (&[libc::SYS_clone3], libc::ENOSYS),
];

/// `CLONE_THREAD` as a seccomp argument value.
const CLONE_THREAD: u64 = 0x0001_0000;

/// fcntl commands: F_DUPFD_CLOEXEC, F_GETFD and F_GETFL (seen: fd clones, the frontend fd
/// checks), F_SETFD, F_SETFL (making a blocking frontend eventfd non-blocking), and
/// F_GET_SEALS (1034: reading a memory region's seals at SET_MEM_TABLE, `memory::check_update`).
const FCNTL_COMMANDS: &[u64] = &[
    libc::F_DUPFD_CLOEXEC as u64,
    libc::F_GETFD as u64,
    libc::F_SETFD as u64,
    libc::F_GETFL as u64,
    libc::F_SETFL as u64,
    libc::F_GET_SEALS as u64,
];

/// ioctls every daemon may make on its own sockets and eventfds (std's `set_nonblocking`;
/// not seen in the tests, allowed because it is harmless and std reaches for it).
const COMMON_IOCTLS: &[Ioctl] = &[Ioctl {
    name: "FIONBIO",
    request: 0x5421,
}];

fn target_arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
    #[cfg(target_arch = "riscv64")]
    return TargetArch::riscv64;
    #[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
    TargetArch::x86_64
}

fn arg_eq(index: u8, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(SandboxError::SeccompBuild)
}

/// The allowlist as a BPF program: `mismatch` for every call not on it.
fn build_filter(
    device: &DeviceSyscalls,
    mismatch: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    // The refused calls pass this filter; their refusal filters answer them (REFUSALS).
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = allowed_syscalls()
        .map(|(_, nr)| nr)
        .chain(REFUSALS.iter().flat_map(|(calls, _)| calls.iter().copied()))
        .map(|nr| (nr, Vec::new()))
        .collect();
    // Threads only: clone without CLONE_THREAD would make a new process.
    let thread_only = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(CLONE_THREAD),
        CLONE_THREAD,
    )
    .map_err(SandboxError::SeccompBuild)?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![thread_only]).map_err(SandboxError::SeccompBuild)?],
    );
    let ioctl_rules = COMMON_IOCTLS
        .iter()
        .chain(device.ioctls)
        .map(|ioctl| {
            SeccompRule::new(vec![arg_eq(1, u64::from(ioctl.request))?])
                .map_err(SandboxError::SeccompBuild)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let fcntl_rules = FCNTL_COMMANDS
        .iter()
        .map(|&cmd| SeccompRule::new(vec![arg_eq(1, cmd)?]).map_err(SandboxError::SeccompBuild))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_fcntl, fcntl_rules);
    // Memory (guest memory, thread stacks, the allocator) but never executable memory.
    let no_exec = || -> Result<Vec<SeccompRule>, SandboxError> {
        let cond = SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )
        .map_err(SandboxError::SeccompBuild)?;
        Ok(vec![
            SeccompRule::new(vec![cond]).map_err(SandboxError::SeccompBuild)?,
        ])
    };
    rules.insert(libc::SYS_mmap, no_exec()?);
    rules.insert(libc::SYS_mprotect, no_exec()?);
    // Threads name themselves (std's thread builder): PR_SET_NAME only.
    let prctl_name =
        SeccompRule::new(vec![arg_eq(0, PR_SET_NAME)?]).map_err(SandboxError::SeccompBuild)?;
    rules.insert(libc::SYS_prctl, vec![prctl_name]);
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, target_arch())
        .map_err(SandboxError::SeccompBuild)?;
    BpfProgram::try_from(filter).map_err(SandboxError::SeccompBuild)
}

/// A refusal filter: `calls` answered with `errno`, everything else passed on to the
/// allowlist's verdict.
fn build_refusal(
    &(calls, errno): &(&[libc::c_long], libc::c_int),
) -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = calls.iter().map(|&nr| (nr, Vec::new())).collect();
    let errno = u32::try_from(errno).unwrap_or(1);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        target_arch(),
    )
    .map_err(SandboxError::SeccompBuild)?;
    BpfProgram::try_from(filter).map_err(SandboxError::SeccompBuild)
}

/// Test-only: called by the serve loop once a frontend is connected (serving has begun); the
/// test trigger's forbidden calls wait for it. Compiled only with `sandbox-test-trigger`.
#[cfg(feature = "sandbox-test-trigger")]
pub fn serving_began() {
    test_trigger::SERVING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Test-only: makes a sandboxed daemon call something the sandbox forbids, so tests can
/// prove the filter bites. Compiled only with the `sandbox-test-trigger` feature (enabled
/// by the daemons' dev-dependencies: `cargo test` builds, never `cargo build --release`).
#[cfg(feature = "sandbox-test-trigger")]
mod test_trigger {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// The trigger's environment variable. Forbidden calls (one, or a comma-separated list
    /// made in turn), made by a thread once the
    /// first frontend is connected ([`super::serving_began`]), logged before ("NAME: calling
    /// after serving began") and after ("NAME: returned ..."):
    /// - `socket`: socket(AF_INET) (not on the allowlist);
    /// - `fork`: fork(), i.e. clone without CLONE_THREAD (clone's flag filter);
    /// - `mmap-exec`, `mprotect-exec`: executable memory (PROT_EXEC filter);
    /// - `ioctl`: TIOCGWINSZ on stderr (the ioctl request filter);
    /// - `fcntl`: F_GETOWN (the fcntl command filter);
    /// - `prctl`: PR_GET_DUMPABLE (the prctl option filter);
    /// - `kill`: kill(parent, 0) (`kill` is not on the allowlist; Landlock's signal scope
    ///   refuses it too);
    /// - `tcp-connect:PORT`: socket(AF_INET) + connect to 127.0.0.1:PORT (Landlock's
    ///   network rules, under `--seccomp none`).
    ///
    /// Opens, made at once by the main thread: `open:PATH` opens PATH for reading
    /// (Landlock, or the filter's EACCES); `open-path:PATH` opens it with O_PATH, which
    /// Landlock does not restrict: only the filter's refusal stops it.
    pub const ENV: &str = "VHOST_DEVICE_SANDBOX_TEST_TRIGGER";

    pub(super) static SERVING: AtomicBool = AtomicBool::new(false);

    pub fn run() {
        let Ok(what) = std::env::var(ENV) else {
            return;
        };
        if let Some(path) = what.strip_prefix("open-path:") {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(path)
            {
                Ok(_) => log::warn!("sandbox test trigger: open-path {path}: opened"),
                Err(e) => log::warn!("sandbox test trigger: open-path {path}: {e}"),
            }
        } else if let Some(path) = what.strip_prefix("open:") {
            match std::fs::File::open(path) {
                Ok(_) => log::warn!("sandbox test trigger: open {path}: opened"),
                Err(e) => log::warn!("sandbox test trigger: open {path}: {e}"),
            }
        } else {
            std::thread::spawn(move || after_serving_began(&what));
        }
    }

    fn after_serving_began(what: &str) {
        let deadline = Instant::now().checked_add(Duration::from_secs(30));
        while !SERVING.load(Ordering::SeqCst) {
            if deadline.is_none_or(|d| Instant::now() >= d) {
                log::warn!("sandbox test trigger: {what}: no frontend within 30 s, not calling");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // A comma-separated list: each in turn (under --seccomp log all go through).
        for one in what.split(',') {
            log::warn!("sandbox test trigger: {one}: calling after serving began");
            let (rc, err) = call(one);
            log::warn!("sandbox test trigger: {one}: returned {rc} ({err})");
        }
    }

    /// Makes the forbidden call `what`; returns its result and errno text.
    fn call(what: &str) -> (i64, std::io::Error) {
        let last = std::io::Error::last_os_error;
        match what {
            "socket" => {
                // SAFETY: socket(2) takes integers; the descriptor is closed below.
                let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
                let e = last();
                if fd >= 0 {
                    // SAFETY: fd was returned by socket() above and is used nowhere else.
                    unsafe { libc::close(fd) };
                }
                (i64::from(fd), e)
            }
            "fork" => {
                // SAFETY: the child only calls _exit (async-signal-safe); the parent reaps it below.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: _exit ends the forked child at once, touching no shared state.
                    unsafe { libc::_exit(0) };
                }
                let e = last();
                if pid > 0 {
                    let mut status = 0;
                    // SAFETY: pid is our child; status is a local the call writes.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                }
                (i64::from(pid), e)
            }
            "mmap-exec" | "mprotect-exec" => {
                let exec = what == "mmap-exec";
                let prot = if exec {
                    libc::PROT_READ | libc::PROT_EXEC
                } else {
                    libc::PROT_READ | libc::PROT_WRITE
                };
                // SAFETY: an anonymous private mapping of one page, unmapped below.
                let page = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        prot,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if page == libc::MAP_FAILED {
                    return (-1, last());
                }
                let (rc, e) = if exec {
                    (0, last())
                } else {
                    let rc =
                        // SAFETY: page is the one-page mapping made above.
                        unsafe { libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC) };
                    (i64::from(rc), last())
                };
                // SAFETY: page is the one-page mapping made above, no longer used.
                unsafe { libc::munmap(page, 4096) };
                (rc, e)
            }
            "ioctl" => {
                // SAFETY: winsize is plain integers: all zeros is a valid value.
                let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
                // SAFETY: TIOCGWINSZ writes one winsize into ws, which we own.
                let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
                (i64::from(rc), last())
            }
            "fcntl" => {
                // SAFETY: F_GETOWN takes no pointer.
                let rc = unsafe { libc::fcntl(2, libc::F_GETOWN) };
                (i64::from(rc), last())
            }
            "prctl" => {
                // SAFETY: PR_GET_DUMPABLE takes integers only.
                let rc = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
                (i64::from(rc), last())
            }
            "kill" => {
                // SAFETY: signal 0 only checks permission; getppid cannot fail.
                let rc = unsafe { libc::kill(libc::getppid(), 0) };
                (i64::from(rc), last())
            }
            other => match other.strip_prefix("tcp-connect:").map(str::parse::<u16>) {
                Some(Ok(port)) => {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    match std::net::TcpStream::connect(addr) {
                        Ok(_) => (0, std::io::Error::from_raw_os_error(0)),
                        Err(e) => (-1, e),
                    }
                }
                _ => (
                    -1,
                    std::io::Error::other(format!("unknown trigger {other}")),
                ),
            },
        }
    }
}
