//! One benchmark for any vhost-user GPIO or I2C daemon, ours or another project's, several
//! in one run so they meet the same machine state:
//!
//! ```text
//! cargo run --release -p vhost-user-test-frontend --bin bench -- --kind gpio \
//!     --daemon 'target/release/vhost-device-gpio -s {socket} -l s8' --label ours \
//!     --daemon '/path/to/peer/vhost-device-gpio --socket-path {socket} -c 1 -l s8' --label rust-vmm
//! ```
//!
//! `--daemon CMD` is a command line split at whitespace; `{socket}` becomes a path in a
//! fresh directory and the daemon's socket is that path or that path followed by `0`
//! (daemons given `-c N` append the index). `--label NAME` names the `--daemon` before it.
//! `--rounds R` (default 5, at least 5 for the medians reported), `--seconds S` per
//! throughput run (default 1), `--samples N` round trips per QD1 round (default 5000).
//!
//! For each daemon and each CPU placement (daemon pinned to the driver's CPU, then to the
//! other one), with the frontend's 256-entry split rings and EVENT_IDX:
//! - the floor: an eventfd kick/call round trip between two processes, p50/p99;
//! - QD1 round trip (post + kick + wait) of GET_VALUE (gpio) / a zero-length quick request
//!   (i2c), p50/p99 and as ratios to the floor;
//! - throughput with 1, 8, 64 chains per kick and a full ring (128 two-descriptor chains);
//! - the daemon's CPU time per request (utime+stime of `/proc/PID/stat` around each
//!   throughput run; schedstat's nanoseconds beside it);
//! - I2C only: write+read groups (offset write with FAIL_NEXT + 1-byte read), 32 per kick;
//!
//! and per daemon its RSS once connected (before any load) and the time from spawn to its
//! listening socket. Every figure is the median of the rounds. Every answer is checked: a
//! wrong one, or a daemon that dies, fails the run (exit 1).
//!
//! `bench drive --kind gpio|i2c --socket PATH --requests N [--batch B]` only sends N checked
//! requests (GET_VALUE; I2C: write+read groups, N chains) to a running daemon, B per kick
//! (default 64 GET_VALUE, 32 groups): the load `tests/bench/instructions.sh` counts
//! instructions under.
#![allow(clippy::print_stdout)] // stdout carries the report, as a command's result does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vhost_user_test_frontend::bench::{
    self, ChainSpec, CommandDaemon, ProcessCpu, RawChain, allowed_cpus, median_f64, micros,
    percentiles, pin_current_thread,
};
use vhost_user_test_frontend::load::{self, Kind};
use vhost_user_test_frontend::{Desc, FrontendOptions, TestFrontend, TestQueue};
use virtio_gpio_core::msg::encode_request;
use virtio_gpio_core::msg::msg_type::{GET_VALUE, SET_DIRECTION, SET_VALUE};
use virtio_i2c_core::request::encode_header;

const USAGE: &str = "usage: bench --kind i2c|gpio --daemon CMD [--label NAME] [--daemon CMD [--label NAME]]... \
[--rounds R] [--seconds S] [--samples N]\n       bench drive --kind i2c|gpio --socket PATH --requests N [--batch B]";

const QUEUE_SIZE: u16 = 256;
const ANSWER_TIMEOUT: Duration = load::ANSWER_TIMEOUT;
const GPIO_LINE: u16 = 0;
const GPIO_DIRECTION_OUT: u32 = 1;
const EEPROM: u8 = 0x50;
const OFFSET: u8 = 0x10;
const VALUE: u8 = 0x5a;
const I2C_OK: u8 = virtio_i2c_core::VIRTIO_I2C_MSG_OK;
/// Write+read groups per kick in the I2C group measurement.
const GROUPS_PER_KICK: usize = 32;
/// Unmeasured round trips before each QD1 and floor block.
const WARMUP: usize = 200;

/// A failure, with the context it happened in.
type Fail = String;

fn fail(what: &str) -> impl Fn(&dyn std::error::Error) -> Fail + '_ {
    move |e| format!("{what}: {}", load::error_chain(e))
}

/// One request of the QD1 and batch measurements.
fn request_spec(kind: Kind) -> ChainSpec {
    match kind {
        Kind::Gpio => ChainSpec {
            out: vec![encode_request(GET_VALUE, GPIO_LINE, 0).to_vec()],
            writable: vec![2],
            want: vec![0, 1],
        },
        // A zero-length write ("quick" request): header and status only.
        Kind::I2c => ChainSpec {
            out: vec![encode_header(EEPROM, false, false).to_vec()],
            writable: vec![1],
            want: vec![I2C_OK],
        },
    }
}

/// One write+read group: the EEPROM offset written with FAIL_NEXT, then one byte read.
fn group_specs() -> [ChainSpec; 2] {
    [
        ChainSpec {
            out: vec![encode_header(EEPROM, false, true).to_vec(), vec![OFFSET]],
            writable: vec![1],
            want: vec![I2C_OK],
        },
        ChainSpec {
            out: vec![encode_header(EEPROM, true, false).to_vec()],
            writable: vec![1, 1],
            want: vec![VALUE, I2C_OK],
        },
    ]
}

/// `count` copies of each spec of `unit`, laid out in `q`.
fn lay_out(q: &mut TestQueue, unit: &[ChainSpec], count: usize) -> Result<Vec<RawChain>, Fail> {
    let mut chains = Vec::new();
    for _ in 0..count {
        for spec in unit {
            chains.push(RawChain::lay_out(q, spec).map_err(|e| fail("lay out a chain")(&e))?);
        }
    }
    Ok(chains)
}

/// Prepares the device: GPIO line 0 an output driving 1 (value first, then direction, as
/// Linux's driver does; rust-vmm's daemon refuses an output with no value); the EEPROM byte
/// at OFFSET = VALUE.
fn setup(q: &mut TestQueue, kind: Kind) -> Result<(), Fail> {
    let steps: Vec<(Vec<Desc>, Vec<u8>)> = match kind {
        Kind::Gpio => vec![
            (
                vec![
                    Desc::Out(encode_request(SET_VALUE, GPIO_LINE, 1).to_vec()),
                    Desc::In(2),
                ],
                vec![0, 0],
            ),
            (
                vec![
                    Desc::Out(
                        encode_request(SET_DIRECTION, GPIO_LINE, GPIO_DIRECTION_OUT).to_vec(),
                    ),
                    Desc::In(2),
                ],
                vec![0, 0],
            ),
        ],
        Kind::I2c => vec![(
            vec![
                Desc::Out(encode_header(EEPROM, false, false).to_vec()),
                Desc::Out(vec![OFFSET, VALUE]),
                Desc::In(1),
            ],
            vec![I2C_OK],
        )],
    };
    for (descs, want) in steps {
        let c = q
            .transact(&descs, false, ANSWER_TIMEOUT)
            .map_err(|e| fail("setup request")(&e))?;
        let got = c.written.concat();
        if got != want {
            return Err(format!(
                "setup request: answer {got:02x?}, expected {want:02x?}"
            ));
        }
    }
    Ok(())
}

fn connect(socket: &Path, kind: Kind) -> Result<TestFrontend, Fail> {
    let opts = FrontendOptions {
        queue_size: QUEUE_SIZE,
        ..load::options(kind)
    };
    TestFrontend::connect(socket, opts).map_err(|e| fail("connect")(&e))
}

/// What a batch size measured, one entry per round.
#[derive(Debug, Default, Clone)]
struct BatchRuns {
    /// Requests (chains) per second.
    rate: Vec<f64>,
    /// Daemon CPU nanoseconds per request, from utime+stime.
    cpu_ns: Vec<f64>,
    /// The same from schedstat.
    sched_ns: Vec<f64>,
}

/// Runs `chains` batch after batch for `seconds`; records rate and daemon CPU per chain.
fn throughput(
    q: &mut TestQueue,
    pid: u32,
    chains: &[RawChain],
    seconds: Duration,
    runs: &mut BatchRuns,
) -> Result<(), Fail> {
    let mut buf = Vec::new();
    // One unmeasured batch so the daemon's worker is awake and its pages touched.
    bench::run_batch(q, chains, &mut buf).map_err(|e| fail("batch")(&e))?;
    let before = ProcessCpu::of(pid).map_err(|e| fail("read the daemon's CPU time")(&e))?;
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < seconds {
        bench::run_batch(q, chains, &mut buf).map_err(|e| fail("batch")(&e))?;
        batches = batches.saturating_add(1);
    }
    let elapsed = start.elapsed();
    let after = ProcessCpu::of(pid).map_err(|e| fail("read the daemon's CPU time")(&e))?;
    let requests = batches as f64 * chains.len() as f64;
    let (ticks, sched) = after.since(&before);
    runs.rate.push(requests / elapsed.as_secs_f64());
    runs.cpu_ns.push(ticks.as_secs_f64() * 1e9 / requests);
    runs.sched_ns.push(sched.as_secs_f64() * 1e9 / requests);
    Ok(())
}

/// Per round: p50 and p99 of the floor and of the QD1 round trip.
#[derive(Debug, Default, Clone)]
struct LatencyRounds {
    floor_p50: Vec<f64>,
    floor_p99: Vec<f64>,
    qd1_p50: Vec<f64>,
    qd1_p99: Vec<f64>,
}

fn qd1_block(
    q: &mut TestQueue,
    chain: &[RawChain],
    samples: usize,
    rounds: &mut LatencyRounds,
) -> Result<(), Fail> {
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(samples);
    for i in 0..WARMUP.saturating_add(samples) {
        bench::poison_batch(q, chain).map_err(|e| fail("poison")(&e))?;
        let start = Instant::now();
        bench::submit_batch(q, chain).map_err(|e| fail("QD1 request")(&e))?;
        let elapsed = start.elapsed();
        bench::check_batch(q, chain, &mut buf).map_err(|e| fail("QD1 request")(&e))?;
        if i >= WARMUP {
            times.push(elapsed);
        }
    }
    let p = percentiles(&mut times).ok_or("no QD1 sample")?;
    rounds.qd1_p50.push(micros(p.median));
    rounds.qd1_p99.push(micros(p.p99));
    Ok(())
}

fn floor_block(cpu: usize, samples: usize, rounds: &mut LatencyRounds) -> Result<(), Fail> {
    let exe = std::env::current_exe().map_err(|e| fail("find this program")(&e))?;
    let mut times = bench::eventfd_floor_process(&exe, WARMUP, samples, cpu)
        .map_err(|e| fail("eventfd floor")(&e))?;
    let p = percentiles(&mut times).ok_or("no floor sample")?;
    rounds.floor_p50.push(micros(p.median));
    rounds.floor_p99.push(micros(p.p99));
    Ok(())
}

/// Everything measured with the daemon on one CPU.
#[derive(Debug, Clone)]
struct Placement {
    name: String,
    latency: LatencyRounds,
    /// (chains per kick, label, runs).
    batches: Vec<(usize, String, BatchRuns)>,
    /// I2C write+read groups, 32 per kick (rates and CPU per chain; a group is two).
    groups: Option<BatchRuns>,
    event_idx: bool,
}

/// One daemon's results.
#[derive(Debug, Clone)]
struct DaemonResult {
    label: String,
    placements: Vec<Placement>,
    rss_kib: Vec<f64>,
    listen_ms: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Options {
    kind: Kind,
    daemons: Vec<(String, Vec<String>)>,
    rounds: usize,
    seconds: Duration,
    samples: usize,
    /// The CPUs allowed at start (the driver pins itself to the first).
    cpus: Vec<usize>,
}

fn measure_placement(
    opts: &Options,
    words: &[String],
    name: String,
    cpu: usize,
    home: usize,
    result: &mut DaemonResult,
) -> Result<Placement, Fail> {
    // Start-up is measured on every start; the last daemon started is the one measured.
    let mut daemon = None;
    for _ in 0..opts.rounds {
        drop(daemon.take());
        let d = CommandDaemon::start(words, cpu, home).map_err(|e| fail("start the daemon")(&e))?;
        result
            .listen_ms
            .push(d.listening_after().as_secs_f64() * 1e3);
        daemon = Some(d);
    }
    let mut daemon = daemon.ok_or("no daemon started")?;
    let pid = daemon.pid();
    let run = (|| -> Result<Placement, Fail> {
        let mut fe = connect(daemon.socket(), opts.kind)?;
        let event_idx = fe.event_idx();
        let q = fe.queue(0);
        setup(q, opts.kind)?;
        let usage = load::usage(pid).map_err(|e| fail("read the daemon's /proc status")(&e))?;
        result.rss_kib.push(usage.rss_kib as f64);

        let unit = [request_spec(opts.kind)];
        let one = lay_out(q, &unit, 1)?;
        let descs_per_chain = one.first().map_or(1, RawChain::len).max(1);
        let full = usize::from(q.size())
            .checked_div(descs_per_chain)
            .unwrap_or(1);
        let mut batches: Vec<(usize, String, BatchRuns)> = [1usize, 8, 64]
            .into_iter()
            .map(|n| (n, n.to_string(), BatchRuns::default()))
            .collect();
        batches.push((full, format!("{full} (full ring)"), BatchRuns::default()));
        let mut chain_sets = Vec::new();
        for (n, _, _) in &batches {
            chain_sets.push(lay_out(q, &unit, *n)?);
        }
        let groups = match opts.kind {
            Kind::I2c => Some(lay_out(q, &group_specs(), GROUPS_PER_KICK)?),
            Kind::Gpio => None,
        };
        let mut group_runs = BatchRuns::default();
        let mut latency = LatencyRounds::default();
        for round in 0..opts.rounds {
            eprintln!(
                "bench: {name}: round {}/{}",
                round.saturating_add(1),
                opts.rounds
            );
            floor_block(cpu, opts.samples, &mut latency)?;
            qd1_block(q, &one, opts.samples, &mut latency)?;
            for ((_, _, runs), chains) in batches.iter_mut().zip(&chain_sets) {
                throughput(q, pid, chains, opts.seconds, runs)?;
            }
            if let Some(chains) = &groups {
                throughput(q, pid, chains, opts.seconds, &mut group_runs)?;
            }
        }
        fe.disconnect();
        Ok(Placement {
            name,
            latency,
            batches,
            groups: groups.map(|_| group_runs),
            event_idx,
        })
    })();
    if !daemon.is_running() {
        return Err(format!(
            "the daemon died during the run ({}); its output:\n{}",
            run.as_ref().err().map_or("no error seen", String::as_str),
            daemon.log()
        ));
    }
    run.map_err(|e| format!("{e}; the daemon's output:\n{}", daemon.log()))
}

fn measure_daemon(opts: &Options, label: &str, words: &[String]) -> Result<DaemonResult, Fail> {
    let cpus = &opts.cpus;
    let home = *cpus.first().ok_or("no CPU allowed")?;
    pin_current_thread(home).map_err(|e| fail("pin the driver")(&e))?;
    let mut result = DaemonResult {
        label: label.to_owned(),
        placements: Vec::new(),
        rss_kib: Vec::new(),
        listen_ms: Vec::new(),
    };
    let mut placements = vec![(format!("same CPU ({home})"), home)];
    if let Some(&other) = cpus.get(1) {
        placements.push((format!("other CPU ({other})"), other));
    }
    for (name, cpu) in placements {
        eprintln!("bench: {label}: daemon on CPU {cpu}, driver on CPU {home}");
        let p = measure_placement(opts, words, name, cpu, home, &mut result)
            .map_err(|e| format!("{label}: {e}"))?;
        result.placements.push(p);
    }
    Ok(result)
}

fn med(v: &[f64]) -> f64 {
    median_f64(v).unwrap_or(f64::NAN)
}

/// `rate` requests per second, as `1.23 M/s` or `456 k/s`.
fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

/// The table's rows for one daemon: (label, cell).
fn rows(kind: Kind, r: &DaemonResult) -> Vec<(String, String)> {
    let what = match kind {
        Kind::Gpio => "GET_VALUE",
        Kind::I2c => "quick request",
    };
    let mut out = Vec::new();
    for p in &r.placements {
        let l = &p.latency;
        let (f50, f99) = (med(&l.floor_p50), med(&l.floor_p99));
        let (q50, q99) = (med(&l.qd1_p50), med(&l.qd1_p99));
        let n = &p.name;
        out.push((
            format!("{n}: eventfd floor, two processes, p50 / p99"),
            format!("{f50:.2} / {f99:.2} µs"),
        ));
        out.push((
            format!("{n}: QD1 {what} round trip, p50 / p99"),
            format!("{q50:.2} / {q99:.2} µs"),
        ));
        out.push((
            format!("{n}: QD1 / floor, p50 / p99"),
            format!("{:.2}x / {:.2}x", q50 / f50, q99 / f99),
        ));
        for (_, label, runs) in &p.batches {
            out.push((
                format!("{n}: {what} throughput, batch {label}"),
                rate(med(&runs.rate)),
            ));
        }
        for (_, label, runs) in &p.batches {
            out.push((
                format!("{n}: daemon CPU per {what}, batch {label}, utime+stime (schedstat)"),
                format!(
                    "{:.0} ns ({:.0} ns)",
                    med(&runs.cpu_ns),
                    med(&runs.sched_ns)
                ),
            ));
        }
        if let Some(g) = &p.groups {
            out.push((
                format!("{n}: write+read groups, {GROUPS_PER_KICK} groups per kick"),
                format!("{} groups", rate(med(&g.rate) / 2.0)),
            ));
            out.push((
                format!("{n}: daemon CPU per group, utime+stime (schedstat)"),
                format!(
                    "{:.0} ns ({:.0} ns)",
                    med(&g.cpu_ns) * 2.0,
                    med(&g.sched_ns) * 2.0
                ),
            ));
        }
        out.push((
            format!("{n}: EVENT_IDX negotiated"),
            if p.event_idx { "yes" } else { "no" }.to_owned(),
        ));
    }
    out.push((
        "RSS, connected, before load".to_owned(),
        format!("{:.1} MiB", med(&r.rss_kib) / 1024.0),
    ));
    out.push((
        "spawn to listening socket".to_owned(),
        format!("{:.2} ms", med(&r.listen_ms)),
    ));
    out
}

fn report(opts: &Options, results: &[DaemonResult]) -> String {
    let cpus = opts.cpus.len();
    let mut out = format!(
        "{} daemons, {} rounds (medians shown), {} s per throughput run, {} samples per QD1 \
         round; split rings of {QUEUE_SIZE} entries (two descriptors per request: a full ring \
         is {} requests); driver pinned to the first of {cpus} allowed CPUs; batch = chains \
         per kick; every answer checked\n\n",
        match opts.kind {
            Kind::Gpio => "GPIO (line 0 an output driving 1)",
            Kind::I2c => "I2C (24c02 at 0x50)",
        },
        opts.rounds,
        opts.seconds.as_secs_f64(),
        opts.samples,
        QUEUE_SIZE / 2
    );
    for (label, words) in &opts.daemons {
        out.push_str(&format!("- {label}: `{}`\n", words.join(" ")));
    }
    let columns: Vec<Vec<(String, String)>> = results.iter().map(|r| rows(opts.kind, r)).collect();
    out.push_str("\n| measurement |");
    for r in results {
        out.push_str(&format!(" {} |", r.label));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(results.len()));
    out.push('\n');
    if let Some(first) = columns.first() {
        for (i, (label, _)) in first.iter().enumerate() {
            out.push_str(&format!("| {label} |"));
            for col in &columns {
                let cell = col.get(i).map_or("", |(_, c)| c.as_str());
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
    }
    out
}

fn parse_bench(mut args: impl Iterator<Item = String>) -> Result<Options, Fail> {
    let mut kind = None;
    let mut opts = Options {
        kind: Kind::Gpio,
        daemons: Vec::new(),
        rounds: 5,
        seconds: Duration::from_secs(1),
        samples: 5000,
        cpus: allowed_cpus().map_err(|e| fail("read the allowed CPUs")(&e))?,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--kind" => kind = Some(Kind::parse(&value).ok_or(format!("unknown kind {value}"))?),
            "--daemon" => {
                let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                if !words.iter().any(|w| w.contains(bench::SOCKET_PLACEHOLDER)) {
                    return Err(format!("--daemon {value}: no {{socket}} in it"));
                }
                let label = words.first().cloned().unwrap_or_default();
                opts.daemons.push((label, words));
            }
            "--label" => {
                let last = opts
                    .daemons
                    .last_mut()
                    .ok_or("--label names the --daemon before it")?;
                last.0 = value;
            }
            "--rounds" => opts.rounds = number()?,
            "--samples" => opts.samples = number()?.max(1),
            "--seconds" => {
                let s: f64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
                opts.seconds = Duration::try_from_secs_f64(s).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    opts.kind = kind.ok_or("--kind is required")?;
    if opts.daemons.is_empty() {
        return Err("at least one --daemon is required".into());
    }
    if opts.rounds < 5 {
        return Err("--rounds must be at least 5 (the medians need them)".into());
    }
    Ok(opts)
}

fn bench_main(args: impl Iterator<Item = String>) -> Result<(), (u8, Fail)> {
    let opts = parse_bench(args).map_err(|e| (2, format!("{e}\n{USAGE}")))?;
    let mut results = Vec::new();
    for (label, words) in &opts.daemons {
        results.push(measure_daemon(&opts, label, words).map_err(|e| (1, e))?);
    }
    println!("{}", report(&opts, &results));
    Ok(())
}

/// `drive`: N checked requests to a running daemon, B per kick.
fn drive_main(mut args: impl Iterator<Item = String>) -> Result<(), (u8, Fail)> {
    let usage = |e: String| (2, format!("{e}\n{USAGE}"));
    let (mut kind, mut socket, mut requests, mut batch) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|e| usage(format!("{flag} {value}: {e}")))
        };
        match flag.as_str() {
            "--kind" => kind = Kind::parse(&value),
            "--socket" => socket = Some(PathBuf::from(&value)),
            "--requests" => requests = Some(number()?),
            "--batch" => batch = Some(number()?.max(1)),
            other => return Err(usage(format!("unknown option {other}"))),
        }
    }
    let kind = kind.ok_or_else(|| usage("--kind i2c|gpio is required".into()))?;
    let socket = socket.ok_or_else(|| usage("--socket is required".into()))?;
    let requests = requests.ok_or_else(|| usage("--requests is required".into()))?;
    let mut fe = connect(&socket, kind).map_err(|e| (1, e))?;
    let q = fe.queue(0);
    setup(q, kind).map_err(|e| (1, e))?;
    let (unit, per_kick) = match kind {
        Kind::Gpio => (vec![request_spec(kind)], batch.unwrap_or(64)),
        Kind::I2c => (group_specs().to_vec(), batch.unwrap_or(GROUPS_PER_KICK)),
    };
    let chains = lay_out(q, &unit, per_kick).map_err(|e| (1, e))?;
    let mut buf = Vec::new();
    let mut sent = 0usize;
    while sent < requests {
        let left = requests.saturating_sub(sent);
        let n = chains.len().min(left);
        let part = chains.get(..n).unwrap_or_default();
        bench::run_batch(q, part, &mut buf).map_err(|e| (1, fail("batch")(&e)))?;
        sent = sent.saturating_add(n.max(1));
    }
    fe.disconnect();
    println!("{sent} requests");
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let outcome = match args.peek().map(String::as_str) {
        Some(bench::FLOOR_DEVICE_ARG) => {
            let rest: Vec<String> = args.skip(1).collect();
            bench::floor_device_process(&rest).map_err(|e| (1, fail("floor device")(&e)))
        }
        Some("drive") => drive_main(args.skip(1)),
        _ => bench_main(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("bench: {e}");
            ExitCode::from(code)
        }
    }
}
