//! `cargo bench --bench migrate`: wraith against the server's own ALTER, on real MariaDB servers.
//!
//! In: the `wraith` binary of this package (built by `cargo bench` with the release-like `bench`
//! profile, or `WRAITH_BIN`), MariaDB's `mariadbd` (through `wraith::sandbox`), optionally
//! Debian's `sysbench`, and the `WRAITH_BENCH_*` environment variables listed in
//! `benches/README.md` (`WRAITH_BENCH_ROWS` sets the table size, default 1,000,000).
//!
//! Out: a results table on standard output, every figure of it (and the machine's) as JSON in
//! `target/bench/migrate.json` (or `WRAITH_BENCH_JSON`), and exit code 0 when every run finished
//! and every check passed (1 otherwise). Three scenarios run on one throw-away primary/replica
//! pair:
//!
//! 1. idle: an `orders` table is altered with `ADD COLUMN` by `ALTER TABLE ... ALGORITHM=COPY`
//!    (on a copy of it, on the primary) and by `wraith --execute` (reading the replica); the
//!    results are compared (row counts of the new and old table, and `wraith::verify`'s
//!    comparison with the natively altered copy: every row both ways, byte for byte, and the
//!    definition);
//! 2. load: sysbench running `benches/oltp_write_mirror.lua` (oltp_write_only's transaction) or
//!    a built-in writer that does the same, on the primary, while wraith migrates
//!    `sbtest.sbtest1`. Every transaction makes the same change, with the same values, to
//!    `sbtest.sbtest1_mirror`, altered natively before the load starts. Once the load has stopped
//!    and the replica has caught up, the new `sbtest1` must equal the mirror (every column, byte
//!    for byte, both directions) and have its definition, on the primary and on the replica; the
//!    writers must have ended cleanly, with no error ignored (deadlocks, lock wait timeouts);
//! 3. applier: wraith reads the primary (`--allow-on-master`), copies `sbtest.sbtest1` and
//!    postpones its cut-over; then writers run unthrottled on `sbtest1` alone for a fixed window.
//!    The row events the server committed on the table (its `TABLE_STATISTICS`, `userstat=1`)
//!    are set against the row events wraith applied (its Prometheus endpoint), with the same
//!    writers' rate on the server with no wraith measured first; then how far behind wraith was
//!    when the writers stopped and how long it took to apply the rest. The new table must equal
//!    a natively altered copy made once the writers stopped, on both servers.
//!
//! With `GHOST_BIN`, the idle scenario also runs that gh-ost binary on a copy of the same table
//! with the same ALTER and command line. A fourth scenario, `scale`, runs only when
//! `WRAITH_BENCH_ONLY` names it or `WRAITH_BENCH_SCALE_ROWS` is set: the idle scenario's server
//! ALTER and default wraith run again on a larger table (10,000,000 rows unless that variable
//! says otherwise), and each copy's time as a multiple of the idle scenario's (the issue's "10x
//! the rows in at most 11x the time", and wraith's peak RSS at that size).
//!
//! Everything the bench starts (servers, sysbench, wraith) is stopped and removed when it ends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use wraith::sandbox::{self, Server, ServerSpec};
use wraith::verify;

const ADD_COLUMN: &str = "ADD COLUMN note VARCHAR(64) NOT NULL DEFAULT ''";

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(&settings).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("a run failed or a check did not pass; see above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the environment asked for.
#[derive(Debug, Clone)]
struct Settings {
    rows: u64,
    wraith: PathBuf,
    extra_args: Vec<String>,
    load: LoadKind,
    threads: u32,
    /// sysbench's `--rate`; `None`: half the ceiling measured first in the same run.
    rate: Option<u32>,
    warmup: Duration,
    timeout: Duration,
    buffer_pool: String,
    /// Both servers commit durably (`WRAITH_BENCH_DURABLE=1`: `sync_binlog=1`,
    /// `innodb_flush_log_at_trx_commit=1`, as most production primaries run) instead of the
    /// sandbox's cheaper settings.
    durable: bool,
    /// The replica and wraith (and gh-ost) run at nice 19 (`WRAITH_BENCH_APART=1`), so the
    /// primary and the writers get the CPU first, as when the replica and the tool run on
    /// machines of their own (production's layout) rather than on the primary's cores.
    apart: bool,
    /// More `mariadbd` flags for both servers (`WRAITH_BENCH_SERVER_ARGS`, space-separated),
    /// after the bench's own.
    server_args: Vec<String>,
    /// The scenarios to run (`WRAITH_BENCH_ONLY`, comma-separated); `None`: all of them but
    /// `scale`, which runs when named here or when `scale_rows` was given.
    only: Option<Vec<String>>,
    /// The scale scenario's table size (`WRAITH_BENCH_SCALE_ROWS`, default 10,000,000), and
    /// whether the variable was set (which adds the scenario to the default set).
    scale_rows: u64,
    scale_asked: bool,
    /// How long the applier scenario's unthrottled writers run.
    applier_window: Duration,
    /// How long the load scenario's wraith waits, its cut-over postponed, after its checksum
    /// (`WRAITH_BENCH_HOLD`): the writers' latency with wraith applying and not copying (the
    /// first half), and with wraith throttled, reading and applying nothing (the second).
    hold: Duration,
    /// Where the figures are written as JSON.
    json: PathBuf,
    /// A gh-ost binary to run on the idle scenario's work (`GHOST_BIN`), and its extra flags.
    ghost: Option<PathBuf>,
    ghost_args: Vec<String>,
}

/// The scenarios, in the order they run.
const SCENARIOS: &[&str] = &["idle", "scale", "load", "applier"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadKind {
    Sysbench,
    Builtin,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        }
        fn num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| anyhow!("{name}={v} is not a number")),
            }
        }
        let wraith = var("WRAITH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wraith")));
        if !wraith.is_file() {
            bail!(
                "the wraith binary {} does not exist; run `cargo build --release` or set WRAITH_BIN",
                wraith.display()
            );
        }
        let sysbench_found = sandbox::find_program("sysbench").is_some();
        let load = match var("WRAITH_BENCH_LOAD").as_deref() {
            None | Some("auto") if sysbench_found => LoadKind::Sysbench,
            None | Some("auto") | Some("builtin") => LoadKind::Builtin,
            Some("sysbench") if sysbench_found => LoadKind::Sysbench,
            Some("sysbench") => bail!("WRAITH_BENCH_LOAD=sysbench but `sysbench` is not installed (apt-get install -y sysbench)"),
            Some(other) => bail!("WRAITH_BENCH_LOAD={other}: expected auto, sysbench or builtin"),
        };
        let only = var("WRAITH_BENCH_ONLY").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
        if let Some(unknown) = only
            .iter()
            .flatten()
            .find(|s| !SCENARIOS.contains(&s.as_str()))
        {
            bail!(
                "WRAITH_BENCH_ONLY names {unknown}: expected some of {}, comma-separated",
                SCENARIOS.join(", ")
            );
        }
        let ghost = var("GHOST_BIN").map(PathBuf::from);
        if let Some(bin) = &ghost {
            if !bin.is_file() {
                bail!(
                    "GHOST_BIN={} is not a file; point it at a gh-ost binary, or unset it to run wraith alone",
                    bin.display()
                );
            }
        }
        let words = |name: &str| -> Vec<String> {
            var(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        Ok(Settings {
            rows: num("WRAITH_BENCH_ROWS", 1_000_000u64)?.max(1),
            wraith,
            extra_args: words("WRAITH_BENCH_ARGS"),
            load,
            threads: num("WRAITH_BENCH_THREADS", 4u32)?.max(1),
            rate: match var("WRAITH_BENCH_RATE").as_deref() {
                None | Some("auto") => None,
                Some(_) => Some(num("WRAITH_BENCH_RATE", 0u32)?),
            },
            warmup: Duration::from_secs(num("WRAITH_BENCH_WARMUP", 15u64)?),
            timeout: Duration::from_secs(num("WRAITH_BENCH_TIMEOUT", 900u64)?),
            buffer_pool: var("WRAITH_BENCH_BUFFER_POOL").unwrap_or_else(|| "1G".into()),
            durable: var("WRAITH_BENCH_DURABLE").is_some_and(|v| v == "1"),
            apart: var("WRAITH_BENCH_APART").is_some_and(|v| v == "1"),
            server_args: var("WRAITH_BENCH_SERVER_ARGS")
                .map(|a| a.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            only,
            scale_rows: num("WRAITH_BENCH_SCALE_ROWS", 10_000_000u64)?.max(1),
            scale_asked: var("WRAITH_BENCH_SCALE_ROWS").is_some(),
            applier_window: Duration::from_secs(num("WRAITH_BENCH_APPLIER_SECS", 25u64)?.max(1)),
            hold: Duration::from_secs(num("WRAITH_BENCH_HOLD", 20u64)?),
            json: var("WRAITH_BENCH_JSON")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/migrate.json")
                }),
            ghost,
            ghost_args: words("GHOST_ARGS"),
        })
    }

    fn runs(&self, scenario: &str) -> bool {
        match &self.only {
            Some(only) => only.iter().any(|s| s == scenario),
            None => scenario != "scale" || self.scale_asked,
        }
    }
}

/// A primary and its replica, sized for the bench.
struct Servers {
    primary: Server,
    replica: Server,
}

impl Servers {
    async fn start(settings: &Settings) -> Result<Servers> {
        let spec = |name: &str, id: u32| {
            let spec = ServerSpec::new(name, id)
                .arg(&format!(
                    "--innodb-buffer-pool-size={}",
                    settings.buffer_pool
                ))
                .arg("--innodb-log-file-size=512M");
            let spec = if settings.durable {
                spec.arg("--sync-binlog=1")
                    .arg("--innodb-flush-log-at-trx-commit=1")
            } else {
                spec
            };
            settings
                .server_args
                .iter()
                .fold(spec, |spec, arg| spec.arg(arg))
        };
        let (primary, replica) = tokio::try_join!(
            sandbox::start_server(spec("bench-primary", 1)),
            sandbox::start_server(spec("bench-replica", 2)),
        )?;
        sandbox::attach_replica(&replica, &primary).await?;
        let servers = Servers { primary, replica };
        servers.set_apart(settings)?;
        Ok(servers)
    }

    /// With `WRAITH_BENCH_APART`, every thread of the replica at nice 19 (a thread's nice value
    /// is its own on Linux, and a new one takes its creator's, so this is done again before each
    /// scenario for threads started since).
    fn set_apart(&self, settings: &Settings) -> Result<()> {
        if !settings.apart {
            return Ok(());
        }
        let pid = self.replica.pid();
        let n = wraith::priority::set_process(pid, 19)?;
        println!("(WRAITH_BENCH_APART) {n} threads of the replica (pid {pid}) at nice 19");
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        sandbox::sync_replica(&self.primary, &self.replica).await
    }

    /// As [`Servers::sync`], for a replica that may be minutes behind (after unthrottled
    /// writes): waits up to 10 minutes.
    async fn sync_long(&self) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.sync().await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 9 => {
                    tries += 1;
                    println!("    the replica is still catching up ({e:#}); waiting");
                }
                Err(e) => return Err(e),
            }
        }
    }
}

async fn run(settings: &Settings) -> Result<bool> {
    let clock = Instant::now();
    println!(
        "wraith migrate bench: {} rows, wraith {}, writers: {}",
        settings.rows,
        settings.wraith.display(),
        match settings.load {
            LoadKind::Sysbench => format!(
                "sysbench oltp_write_mirror.lua (oltp_write_only on sbtest1 and its mirror), {} threads, --rate={}",
                settings.threads,
                settings
                    .rate
                    .map_or("half the measured ceiling".to_string(), |r| r.to_string())
            ),
            LoadKind::Builtin => format!(
                "built-in oltp_write_only loop, {} threads",
                settings.threads
            ),
        }
    );
    let servers = Servers::start(settings)
        .await
        .context("starting the servers")?;
    let mut conn = servers.primary.conn().await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let mut machine = Machine::read(version.clone());
    println!("load average before (1/5/15 min): {}", machine.load_before);
    println!(
        "servers: {version}, primary 127.0.0.1:{}, replica 127.0.0.1:{}, {} CPUs, {:.1} GiB of memory, kernel {}, buffer pool {}, {}",
        servers.primary.port,
        servers.replica.port,
        machine.cpus,
        machine.memory_mib as f64 / 1024.0,
        machine.kernel,
        settings.buffer_pool,
        if settings.durable {
            "durable commits (sync_binlog=1, innodb_flush_log_at_trx_commit=1)"
        } else {
            "cheap commits (sync_binlog=0, innodb_flush_log_at_trx_commit=2)"
        }
    );

    let mut rows = Vec::new();
    let mut writers = None;
    let mut applier = None;
    if settings.runs("idle") {
        rows.extend(idle(settings, &servers, Size::Idle).await?);
    }
    if settings.runs("scale") {
        rows.extend(idle(settings, &servers, Size::Scale).await?);
    }
    if settings.runs("load") {
        servers.set_apart(settings)?;
        let (row, w) = under_load(settings, &servers, clock).await?;
        rows.push(row);
        writers = Some(w);
    }
    if settings.runs("applier") {
        servers.set_apart(settings)?;
        let (row, a) = applier_ceiling(settings, &servers).await?;
        rows.push(row);
        applier = Some(a);
    }
    let all_ok = rows.iter().all(|r| r.ok);
    print_results(settings, &rows, writers.as_ref(), applier.as_ref());
    machine.load_after = load_average();
    println!(
        "\nload average at the end (1/5/15 min): {}",
        machine.load_after
    );
    let json = results_json(
        settings,
        &machine,
        &rows,
        writers.as_ref(),
        applier.as_ref(),
        all_ok,
    );
    write_json(&settings.json, &json)?;
    println!("figures written to {}", settings.json.display());
    drop(servers);
    Ok(all_ok)
}

/// The machine the figures were measured on.
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_mib: u64,
    kernel: String,
    server_version: String,
    /// `/proc/loadavg`'s three figures when the bench started and when it ended.
    load_before: String,
    load_after: String,
    /// When the bench started (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    started: String,
}

impl Machine {
    fn read(server_version: String) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let meminfo = read("/proc/meminfo");
        let memory_kib: u64 = field(&meminfo, "MemTotal")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field(&read("/proc/cpuinfo"), "model name"),
            memory_mib: memory_kib / 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            server_version,
            load_before: load_average(),
            load_after: String::new(),
            started: utc_now(),
        }
    }
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let [year, month, day, hour, minute, second] =
        wraith::config::utc_parts(std::time::SystemTime::now());
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// One line of the results table.
struct ResultRow {
    name: String,
    wall: Duration,
    rows: u64,
    copy: Option<(u64, f64)>,
    /// Seconds the checksum before the swap took (`checksum passed: ... compared in Xs`).
    checksum: Option<f64>,
    blocked: Option<f64>,
    /// CPU seconds the primary, the replica and the migrating process used during the run.
    cpu: Option<Cpu>,
    /// The migrating process's peak resident memory, in MiB.
    peak_rss_mib: Option<f64>,
    check: String,
    ok: bool,
    /// Why the run did not happen (its figures are then empty).
    skipped: Option<String>,
    /// The wall time includes the bench's own waits (the applier's postponed window): it says
    /// nothing of rows/s.
    waits: bool,
}

impl ResultRow {
    /// A run that did not happen, and why.
    fn skipped(name: &str, why: &str) -> ResultRow {
        ResultRow {
            name: name.into(),
            wall: Duration::ZERO,
            rows: 0,
            copy: None,
            checksum: None,
            blocked: None,
            cpu: None,
            peak_rss_mib: None,
            check: String::new(),
            ok: true,
            skipped: Some(why.into()),
            waits: false,
        }
    }

    /// Rows over the wall time, when that means something.
    fn rows_per_s(&self) -> Option<f64> {
        (self.skipped.is_none() && !self.waits)
            .then(|| self.rows as f64 / self.wall.as_secs_f64().max(0.001))
    }
}

/// Writers' throughput and stalls around a wraith run under load.
struct WriterFigures {
    before_tps: f64,
    during_tps: f64,
    after_tps: f64,
    /// The transactions/s sysbench ran at (`--rate`; 0: as fast as it could).
    rate: u32,
    /// Median of the per-second p95 latencies before wraith, and during its copy and catch-up.
    p95_before_ms: f64,
    p95_during_ms: f64,
    /// The same median after the swap, once wraith has ended: how far the machine drifts
    /// without wraith.
    p95_after_ms: f64,
    /// The same median while wraith waited, its cut-over postponed (WRAITH_BENCH_HOLD): what
    /// its applier, the binlog it reads and its heartbeat cost the writers, without a copy.
    p95_hold_ms: Option<f64>,
    /// The same median while wraith was throttled in the hold, reading and applying nothing.
    p95_throttled_ms: Option<f64>,
    max_latency_copy_ms: f64,
    /// The p95 of each 1 s interval from wraith's start to its cut-over (the hold included), in
    /// order; the other series below cover the same seconds.
    p95_copy_series_ms: Vec<f64>,
    /// The pace of each of wraith's status lines (one a second) over the same time.
    pace_copy_series: Vec<f64>,
    /// The heartbeat write latency the pacer compared (ms; 0 while not paced) of each status
    /// line over the same time, and the limit it compared it with.
    writes_copy_series_ms: Vec<f64>,
    limit_copy_series_ms: Vec<f64>,
    /// The rows copied so far, from each status line over the same time.
    rows_copy_series: Vec<f64>,
    /// The replica's lag of each status line over the same time (seconds).
    lag_copy_series: Vec<f64>,
    /// The writers' p95 and the cores used in each phase of the run, before to after wraith.
    phases: Vec<Phase>,
    /// The primary's InnoDB, sampled each second over the same time.
    innodb_copy_series: Vec<InnodbSample>,
    max_latency_cutover_ms: f64,
    /// From wraith's "row copy complete" line to its checksum's start (or, without one, to its
    /// "cutting over" line): the binlog catch-up.
    catch_up: Option<Duration>,
    /// Retried transactions before wraith, during its copy and catch-up, from its cut-over to a
    /// second after the swap, and later.
    errors: [f64; 4],
}

/// The primary's InnoDB at one moment of the bench clock: what could make the application's
/// writes wait without wraith holding a lock (the redo log's checkpoint age against the point
/// where InnoDB flushes furiously, page flushing, waits for a free page, the purge backlog).
#[derive(Debug, Clone, Copy)]
struct InnodbSample {
    at: f64,
    checkpoint_age_mb: f64,
    /// Pages flushed and free-page waits since the previous sample.
    pages_flushed: f64,
    wait_free: f64,
    history_length: f64,
    /// The host's 1-minute load average.
    load1: f64,
    /// Cores the primary and the replica used since the previous sample, and the whole machine.
    cores_primary: f64,
    cores_replica: f64,
    cores_busy: f64,
}

/// CPU seconds the whole machine has spent busy (not idle nor waiting for I/O) so far.
fn machine_busy_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return f64::NAN;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if ticks.len() < 5 {
        return f64::NAN;
    }
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks.iter().sum::<f64>() - ticks[3] - ticks[4]) / tick
}

/// One phase of a run under load: the writers' p95 (median and worst of its seconds) and the
/// cores the primary, the replica and the whole machine used (mean of its samples).
#[derive(Debug, Clone)]
struct Phase {
    name: &'static str,
    seconds: f64,
    p95_median_ms: f64,
    p95_worst_ms: f64,
    cores: [f64; 3],
    /// The primary's InnoDB history list, most of the phase's samples (purge held back, by a
    /// snapshot such as the checksum's, and then caught up, costs the writers too).
    history_max: f64,
}

impl Phase {
    fn of(
        name: &'static str,
        from: f64,
        to: f64,
        samples: &[Sample],
        innodb: &[InnodbSample],
    ) -> Phase {
        let inside: Vec<&InnodbSample> = innodb
            .iter()
            .filter(|s| s.at - 1.0 >= from && s.at <= to && !s.cores_busy.is_nan())
            .collect();
        let mean = |f: fn(&InnodbSample) -> f64| {
            if inside.is_empty() {
                f64::NAN
            } else {
                inside.iter().map(|s| f(s)).sum::<f64>() / inside.len() as f64
            }
        };
        Phase {
            name,
            seconds: (to - from).max(0.0),
            p95_median_ms: median_latency(samples, from, to),
            p95_worst_ms: max_latency(samples, from, to),
            cores: [
                mean(|s| s.cores_primary),
                mean(|s| s.cores_replica),
                mean(|s| s.cores_busy),
            ],
            history_max: inside
                .iter()
                .map(|s| s.history_length)
                .fold(f64::NAN, f64::max),
        }
    }
}

/// Samples the primary's InnoDB status every second until stopped.
struct InnodbSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<InnodbSample>>,
}

impl InnodbSampler {
    fn start(mut c: Conn, clock: Instant, pids: [u32; 2]) -> InnodbSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut out = Vec::new();
            let mut last: Option<(f64, f64)> = None;
            let cpu = || {
                (
                    clock.elapsed().as_secs_f64(),
                    [cpu_of(pids[0]), cpu_of(pids[1]), machine_busy_cpu()],
                )
            };
            let mut last_cpu = cpu();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stopped.load(Ordering::Relaxed) {
                tick.tick().await;
                let Ok(rows) = c
                    .query::<(String, String), _>(
                        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_checkpoint_age', \
                         'Innodb_buffer_pool_pages_flushed', 'Innodb_buffer_pool_wait_free', \
                         'Innodb_history_list_length')",
                    )
                    .await
                else {
                    break;
                };
                let get = |name: &str| {
                    rows.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                };
                let flushed = get("Innodb_buffer_pool_pages_flushed");
                let wait_free = get("Innodb_buffer_pool_wait_free");
                let (d_flushed, d_wait) = match last {
                    Some((f, w)) => (flushed - f, wait_free - w),
                    None => (f64::NAN, f64::NAN),
                };
                last = Some((flushed, wait_free));
                let now_cpu = cpu();
                let span = (now_cpu.0 - last_cpu.0).max(0.001);
                let cores = |i: usize| (now_cpu.1[i] - last_cpu.1[i]) / span;
                let (cores_primary, cores_replica, cores_busy) = (cores(0), cores(1), cores(2));
                last_cpu = now_cpu;
                out.push(InnodbSample {
                    cores_primary,
                    cores_replica,
                    cores_busy,
                    at: clock.elapsed().as_secs_f64(),
                    checkpoint_age_mb: get("Innodb_checkpoint_age") / 1048576.0,
                    pages_flushed: d_flushed,
                    wait_free: d_wait,
                    history_length: get("Innodb_history_list_length"),
                    load1: load_average()
                        .split_whitespace()
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                });
            }
            out
        });
        InnodbSampler { stop, task }
    }

    async fn stop(self) -> Vec<InnodbSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf(3) reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the name.
    (ticks(11) + ticks(12)) / hz
}

/// The resource use of this process's children that have been waited for (wraith's runs).
fn children_usage() -> libc::rusage {
    // SAFETY: getrusage(2) fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    }
}

/// CPU seconds used by this process's children that have been waited for.
fn cpu_of_children() -> f64 {
    let usage = children_usage();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The largest peak resident memory of a waited-for child so far (or of one of its own waited-for
/// descendants), in MiB. Not wraith's figure: the servers' `mariadb-install-db` (and the
/// `mariadbd --bootstrap` it runs) are waited-for descendants too, and count before wraith has
/// run. Printed beside wraith's own `VmHWM` ([`peak_rss_mib_of`]) for that reason.
fn peak_rss_of_children_mib() -> f64 {
    children_usage().ru_maxrss as f64 / 1024.0
}

/// Where the CPU went during one step: the primary's, the replica's and wraith's.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    primary: f64,
    replica: f64,
    wraith: f64,
}

impl Cpu {
    fn now(servers: &Servers) -> Cpu {
        Cpu {
            primary: cpu_of(servers.primary.pid()),
            replica: cpu_of(servers.replica.pid()),
            wraith: cpu_of_children(),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            primary: self.primary - before.primary,
            replica: self.replica - before.replica,
            wraith: self.wraith - before.wraith,
        }
    }

    fn line(&self) -> String {
        self.line_of("wraith")
    }

    /// As [`Cpu::line`], naming the migrating process `who`.
    fn line_of(&self, who: &str) -> String {
        format!(
            "cpu: primary {:.1}s, replica {:.1}s, {who} {:.1}s",
            self.primary, self.replica, self.wraith
        )
    }
}

// ---- scenario 1: idle ----------------------------------------------------------------------------

/// The idle work's two sizes: the bench's table size, with every variant of the run, or the
/// scale scenario's larger table, with the server's ALTER and wraith's default run only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    Idle,
    Scale,
}

impl Size {
    fn rows(self, settings: &Settings) -> u64 {
        match self {
            Size::Idle => settings.rows,
            Size::Scale => settings.scale_rows,
        }
    }

    /// The scenario's name: the prefix of its lines and of its result rows.
    fn name(self) -> &'static str {
        match self {
            Size::Idle => "idle",
            Size::Scale => "scale",
        }
    }
}

async fn idle(settings: &Settings, servers: &Servers, size: Size) -> Result<Vec<ResultRow>> {
    let n = size.rows(settings);
    let tag = size.name();
    let mut c = servers.primary.conn().await?;
    println!("\n[{tag}] loading bench.orders with {n} rows ...");
    let t = Instant::now();
    c.query_drop("CREATE DATABASE bench").await?;
    c.query_drop("USE bench").await?; // the sequence engine's tables live in the current database
    c.query_drop(
        "CREATE TABLE bench.orders (
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
           customer_id INT NOT NULL,
           quantity INT NOT NULL,
           sku VARCHAR(32) NOT NULL,
           title VARCHAR(100) NOT NULL,
           amount DECIMAL(12,2) NOT NULL,
           created_at DATETIME NOT NULL,
           shipped_at DATETIME NULL,
           KEY customer_idx (customer_id, created_at)
         ) ENGINE=InnoDB",
    )
    .await?;
    // In 100,000-row transactions, so the replica applies them as it goes.
    let mut from = 1;
    while from <= n {
        let to = (from + 99_999).min(n);
        c.query_drop(format!(
            "INSERT INTO bench.orders (customer_id, quantity, sku, title, amount, created_at, shipped_at)
             SELECT seq * 7919 % 50021, 1 + seq % 17, CONCAT('SKU-', LPAD(seq % 99991, 6, '0')),
                    CONCAT('order ', seq, ' ', REPEAT('x', seq % 40)), (seq * 7907 % 10000000) / 100,
                    TIMESTAMP'2025-01-01 00:00:00' + INTERVAL seq SECOND,
                    IF(seq % 3 = 0, NULL, TIMESTAMP'2025-06-01 00:00:00' + INTERVAL seq MINUTE)
             FROM seq_{from}_to_{to}"
        ))
        .await?;
        from = to + 1;
    }
    // Copies of the same rows for wraith with deferred indexes and for gh-ost, on both servers
    // (both read the replica as wraith does); the scale scenario runs neither.
    let copies = std::iter::once(DEFERRED_TABLE)
        .chain(settings.ghost.as_ref().map(|_| GHOST_TABLE))
        .filter(|_| size == Size::Idle);
    for copy in copies {
        c.query_drop(format!("CREATE TABLE bench.{copy} LIKE bench.orders"))
            .await?;
        c.query_drop(format!(
            "INSERT INTO bench.{copy} SELECT * FROM bench.orders"
        ))
        .await?;
    }
    // The native ALTER's copy exists on the primary only (sql_log_bin=0): the replica has nothing
    // to do while wraith runs.
    c.query_drop("SET SESSION sql_log_bin = 0").await?;
    c.query_drop("CREATE TABLE bench.orders_native LIKE bench.orders")
        .await?;
    c.query_drop("INSERT INTO bench.orders_native SELECT * FROM bench.orders")
        .await?;
    servers.sync().await?;
    println!("[{tag}] loaded in {:.1}s", t.elapsed().as_secs_f64());

    println!("[{tag}] ALTER TABLE bench.orders_native {ADD_COLUMN}, ALGORITHM=COPY ...");
    let t = Instant::now();
    let cpu = Cpu::now(servers);
    c.query_drop(format!(
        "ALTER TABLE bench.orders_native {ADD_COLUMN}, ALGORITHM=COPY"
    ))
    .await?;
    let native_wall = t.elapsed();
    let native_cpu = Cpu::now(servers).since(cpu);
    println!(
        "[{tag}] native ALTER: {:.1}s; {}",
        native_wall.as_secs_f64(),
        native_cpu.line()
    );
    c.query_drop("SET SESSION sql_log_bin = 1").await?;

    let mut runs = vec![wraith_idle(settings, servers, &mut c, size, "orders", &[]).await?];
    if size == Size::Idle {
        runs.push(
            wraith_idle(
                settings,
                servers,
                &mut c,
                size,
                DEFERRED_TABLE,
                &["--defer-secondary-indexes".to_string()],
            )
            .await?,
        );
        runs.push(match &settings.ghost {
            Some(bin) => ghost_idle(settings, servers, &mut c, bin).await?,
            None => ResultRow::skipped("idle: gh-ost --execute", "not run: GHOST_BIN is not set"),
        });
    }
    c.query_drop("DROP DATABASE bench").await?;
    servers.sync().await?;
    let native = ResultRow {
        name: format!("{tag}: ALTER ... ALGORITHM=COPY"),
        wall: native_wall,
        rows: n,
        copy: None,
        checksum: None,
        blocked: None,
        cpu: Some(native_cpu),
        peak_rss_mib: None,
        check: "(reference)".into(),
        ok: true,
        skipped: None,
        waits: false,
    };
    Ok(std::iter::once(native).chain(runs).collect())
}

/// How long the load scenario lets wraith catch up after its hold's throttle before letting its
/// cut-over go: a backlog of 10 s of writes took 1.6 to 2.5 s to drain in earlier runs.
const CATCH_UP: Duration = Duration::from_secs(5);

/// The table wraith migrates with `--defer-secondary-indexes` in the idle scenario: a copy of
/// `bench.orders` made before the first run.
const DEFERRED_TABLE: &str = "orders_deferred";

/// wraith on `bench.table` (reading the replica) with `extra` flags: the run, its servers' CPU
/// and its checks (row counts, and the new table against the natively altered copy).
async fn wraith_idle(
    settings: &Settings,
    servers: &Servers,
    c: &mut Conn,
    size: Size,
    table: &str,
    extra: &[String],
) -> Result<ResultRow> {
    let n = size.rows(settings);
    let tag = size.name();
    let name = format!("wraith --execute {}", extra.join(" "))
        .trim_end()
        .to_string();
    println!("[{tag}] {name} on bench.{table} (reading the replica) ...");
    let args = wraith_args(settings, servers.replica.port, "bench", table, extra);
    let cpu = Cpu::now(servers);
    let children_rss_before = peak_rss_of_children_mib();
    let run = Wraith::spawn(&settings.wraith, &args, settings.apart)?
        .finish(settings.timeout)
        .await;
    let wraith_cpu = Cpu::now(servers).since(cpu);
    run.print_summary(tag);
    println!(
        "[{tag}] wraith: {:.1}s; {}; wraith's peak RSS {} MiB (its VmHWM; getrusage's largest \
         waited-for child: {children_rss_before:.0} MiB before wraith ran, {:.0} MiB after)",
        run.wall.as_secs_f64(),
        wraith_cpu.line(),
        run.peak_rss_mib.map_or("?".into(), |m| format!("{m:.0}")),
        peak_rss_of_children_mib()
    );
    let mut check = Vec::new();
    let mut ok = run.ok && run.swapped_at.is_some();
    if ok {
        let new_rows = count(c, "bench", table).await?;
        let old_rows = count(c, "bench", &format!("_{table}_del")).await?;
        let counts_ok = new_rows == n && old_rows == n;
        check.push(format!(
            "rows {new_rows}/{old_rows} {}",
            if counts_ok { "ok" } else { "DIFFER" }
        ));
        // The native copy exists on the primary only (it was made with sql_log_bin=0).
        let (line, same) = against_mirror(c, "bench", table, "orders_native").await?;
        check.push(format!("native: {line}"));
        ok = counts_ok && same;
    } else {
        check.push(run.failure());
    }
    Ok(ResultRow {
        name: format!("{tag}: {name}"),
        wall: run.wall,
        rows: n,
        copy: run.copy,
        checksum: run.checksum,
        blocked: run.blocked,
        cpu: Some(wraith_cpu),
        peak_rss_mib: run.peak_rss_mib,
        check: check.join(", "),
        ok,
        skipped: None,
        waits: false,
    })
}

/// The table gh-ost migrates in the idle scenario: a copy of `bench.orders` made before wraith
/// runs, so both tools get the same rows.
const GHOST_TABLE: &str = "orders_ghost";

/// gh-ost (`GHOST_BIN`) on the idle scenario's work: the same rows, the same ALTER, the same
/// command line as wraith's (reading the replica), plus `GHOST_ARGS`. Checked as wraith's run is:
/// row counts, and the new table against the natively altered copy.
async fn ghost_idle(
    settings: &Settings,
    servers: &Servers,
    c: &mut Conn,
    bin: &std::path::Path,
) -> Result<ResultRow> {
    let n = settings.rows;
    println!(
        "[idle] gh-ost --execute on bench.{GHOST_TABLE} (a copy of bench.orders, reading the replica) ..."
    );
    let mut args = vec![
        "--host=127.0.0.1".to_string(),
        format!("--port={}", servers.replica.port),
        "--user=root".into(),
        "--database=bench".into(),
        format!("--table={GHOST_TABLE}"),
        format!("--alter={ADD_COLUMN}"),
        "--execute".into(),
    ];
    args.extend(settings.ghost_args.iter().cloned());
    let cpu = Cpu::now(servers);
    let run = Wraith::spawn(bin, &args, settings.apart)?
        .finish(settings.timeout)
        .await;
    let ghost_cpu = Cpu::now(servers).since(cpu);
    run.print_summary("idle/gh-ost");
    println!(
        "[idle] gh-ost: {:.1}s; {}; gh-ost's peak RSS {} MiB (sampled)",
        run.wall.as_secs_f64(),
        ghost_cpu.line_of("gh-ost"),
        run.peak_rss_mib.map_or("?".into(), |m| format!("{m:.0}"))
    );
    let mut check = Vec::new();
    let mut ok = run.ok && run.swapped_at.is_some();
    if ok {
        let new_rows = count(c, "bench", GHOST_TABLE).await?;
        let old_rows = count(c, "bench", &format!("_{GHOST_TABLE}_del")).await?;
        let counts_ok = new_rows == n && old_rows == n;
        check.push(format!(
            "rows {new_rows}/{old_rows} {}",
            if counts_ok { "ok" } else { "DIFFER" }
        ));
        let (line, same) = against_mirror(c, "bench", GHOST_TABLE, "orders_native").await?;
        check.push(format!("native: {line}"));
        ok = counts_ok && same;
    } else {
        check.push(run.failure());
    }
    Ok(ResultRow {
        name: "idle: gh-ost --execute".into(),
        wall: run.wall,
        rows: n,
        copy: run.copy,
        checksum: None,
        blocked: run.blocked,
        cpu: Some(ghost_cpu),
        peak_rss_mib: run.peak_rss_mib,
        check: check.join(", "),
        ok,
        skipped: None,
        waits: false,
    })
}

// ---- scenario 2: under write load -------------------------------------------------------------

/// `sbtest.sbtest1` with `settings.rows` rows (sysbench's or the built-in writers' table), and
/// an empty `sbtest.sbtest1_mirror` of the same shape with the ALTER applied natively. Leaves `c`
/// in `sbtest`.
async fn prepare_sbtest(settings: &Settings, servers: &Servers, c: &mut Conn) -> Result<()> {
    c.query_drop("CREATE DATABASE sbtest").await?;
    c.query_drop("USE sbtest").await?;
    match settings.load {
        LoadKind::Sysbench => sysbench_prepare(settings, &servers.primary).await?,
        LoadKind::Builtin => builtin_prepare(c, settings.rows).await?,
    }
    c.query_drop("CREATE TABLE sbtest.sbtest1_mirror LIKE sbtest.sbtest1")
        .await?;
    c.query_drop(format!("ALTER TABLE sbtest.sbtest1_mirror {ADD_COLUMN}"))
        .await?;
    Ok(())
}

async fn under_load(
    settings: &Settings,
    servers: &Servers,
    clock: Instant,
) -> Result<(ResultRow, WriterFigures)> {
    let n = settings.rows;
    let mut c = servers.primary.conn().await?;
    println!("\n[load] preparing sbtest.sbtest1 with {n} rows ...");
    let t = Instant::now();
    // The mirror: the same rows, altered natively; the writers change it as they change sbtest1.
    prepare_sbtest(settings, servers, &mut c).await?;
    let mut from = 1;
    while from <= n {
        let to = from + 99_999;
        c.query_drop(format!(
            "INSERT INTO sbtest.sbtest1_mirror (id, k, c, pad)
             SELECT id, k, c, pad FROM sbtest.sbtest1 WHERE id BETWEEN {from} AND {to}"
        ))
        .await?;
        from = to + 1;
    }
    servers.sync().await?;
    println!(
        "[load] prepared in {:.1}s; sbtest1_mirror holds the same rows, altered natively",
        t.elapsed().as_secs_f64()
    );

    let rate = match (settings.load, settings.rate) {
        (LoadKind::Sysbench, None) => {
            let ceiling = sysbench_ceiling(settings, &servers.primary).await?;
            let rate = (ceiling / 2.0).round().max(1.0) as u32;
            println!("[load] the pair's ceiling: {ceiling:.0} tps (sysbench --rate=0 for 10 s); the load runs at half: --rate={rate}");
            servers.sync().await?;
            rate
        }
        (_, rate) => rate.unwrap_or(0),
    };
    let load = Load::start(settings, &servers.primary, clock, rate).await?;
    // From the load's start: the machine before wraith too.
    let innodb = InnodbSampler::start(
        servers.primary.conn().await?,
        clock,
        [servers.primary.pid(), servers.replica.pid()],
    );
    println!(
        "[load] writers started; warming up for {}s",
        settings.warmup.as_secs()
    );
    tokio::time::sleep(settings.warmup).await;

    println!("[load] wraith --execute on sbtest.sbtest1 under load ...");
    // After its checksum wraith postpones its cut-over for `hold`: the writers' latency then is
    // what wraith costs them without a copy (its applier, the binlog it reads, its heartbeat).
    let dir = tempfile::Builder::new()
        .prefix("wraith-bench-load-")
        .tempdir()?;
    let postpone = dir.path().join("postpone");
    let throttle = dir.path().join("throttle");
    let mut extra = Vec::new();
    if !settings.hold.is_zero() {
        std::fs::write(&postpone, b"")?;
        extra.push(format!(
            "--postpone-cut-over-flag-file={}",
            postpone.display()
        ));
        extra.push(format!("--throttle-flag-file={}", throttle.display()));
    }
    let (mut throttled_at, mut unthrottled_at) = (None, None);
    let args = wraith_args(settings, servers.replica.port, "sbtest", "sbtest1", &extra);
    let cpu = Cpu::now(servers);
    let mut wraith = Wraith::spawn(&settings.wraith, &args, settings.apart)?;
    if !settings.hold.is_zero() {
        if wraith
            .wait_for_line("cut-over postponed while", settings.timeout)
            .await
        {
            println!(
                "[load] wraith has copied, caught up and checked; its cut-over postponed for {}s (WRAITH_BENCH_HOLD), throttled for the second half ...",
                settings.hold.as_secs()
            );
            tokio::time::sleep(settings.hold / 2).await;
            std::fs::write(&throttle, b"")?;
            throttled_at = Some(Instant::now());
            tokio::time::sleep(settings.hold / 2).await;
            std::fs::remove_file(&throttle)?;
            // The throttle's backlog is drained before the cut-over is let go, so the seconds
            // around the swap show the swap, not the applier catching up (a phase of its own).
            unthrottled_at = Some(Instant::now());
            tokio::time::sleep(CATCH_UP).await;
        }
        std::fs::remove_file(&postpone)?;
    }
    let run = wraith.finish(settings.timeout).await;
    // The servers' CPU includes the writers' work.
    let run_cpu = Cpu::now(servers).since(cpu);
    run.print_summary("load");
    println!(
        "[load] wraith's run: {} (the servers' include the writers' work)",
        run_cpu.line()
    );
    // Writes to the new table for as long as the warm-up (the p95 after wraith, a control for the
    // p95 before: the machine's own drift between the two), then stop.
    tokio::time::sleep(settings.warmup).await;
    let innodb = innodb.stop().await;
    let end = load.stop().await?;

    let mut check = Vec::new();
    let swapped = run.ok && run.swapped_at.is_some();
    let mut ok = swapped;
    if !swapped {
        check.push(run.failure());
    }
    match &end.failure {
        Some(f) => {
            ok = false;
            check.push(format!("writers FAILED: {f}"));
        }
        None => check.push("writers ended cleanly".into()),
    }
    match end.ignored_errors {
        Some(0) => {}
        Some(e) => {
            ok = false;
            check.push(format!(
                "writers hit {e} ERRORS they retried (deadlocks, lock waits)"
            ));
            for r in end.retried.iter().take(5) {
                println!("[load] a writer retried after error {r}");
            }
            print_latest_deadlock(&mut c).await?;
        }
        None => {
            ok = false;
            check.push("writers' error count UNKNOWN".into());
        }
    }
    if swapped {
        servers.sync().await?;
        for (name, server) in [("primary", &servers.primary), ("replica", &servers.replica)] {
            let mut conn = server.conn().await?;
            let (line, same) =
                against_mirror(&mut conn, "sbtest", "sbtest1", "sbtest1_mirror").await?;
            ok &= same;
            check.push(format!("{name}: {line}"));
        }
    }

    // Writer figures, on the bench clock.
    let secs = |i: Instant| i.duration_since(clock).as_secs_f64();
    let start = secs(run.started);
    // "During" runs from wraith's start to its cut-over (or its end, without one).
    let cutting_over = run.line_at("cutting over");
    let copy_end = secs(cutting_over.or(run.swapped_at).unwrap_or(run.ended_at));
    // With a hold (WRAITH_BENCH_HOLD), "during" ends where the cut-over was postponed: the hold
    // is a phase of its own.
    let postponed = run.line_at("cut-over postponed while").map(secs);
    let during_end = postponed.unwrap_or(copy_end);
    let throttled = throttled_at.map(secs);
    let unthrottled = unthrottled_at.map(secs);
    // Without a swap there is no cut-over to look at: the windows are empty (NaN, printed "-").
    let (cut_from, cut_to) = match (run.swapped_at, run.blocked) {
        (Some(at), Some(b)) => (secs(at) - b, secs(at)),
        _ => (f64::INFINITY, f64::INFINITY),
    };
    let samples = &end.samples;
    let figures = WriterFigures {
        before_tps: mean_tps(samples, start - settings.warmup.as_secs_f64() + 2.0, start),
        during_tps: mean_tps(samples, start + 1.0, during_end),
        after_tps: mean_tps(samples, cut_to + 1.0, cut_to + 5.0),
        rate,
        p95_before_ms: median_latency(samples, start - settings.warmup.as_secs_f64() + 2.0, start),
        p95_during_ms: median_latency(samples, start + 1.0, during_end),
        p95_after_ms: median_latency(
            samples,
            cut_to + 2.0,
            cut_to + settings.warmup.as_secs_f64(),
        ),
        max_latency_copy_ms: max_latency(samples, start, during_end),
        p95_hold_ms: postponed
            .map(|at| median_latency(samples, at + 1.0, throttled.unwrap_or(copy_end))),
        p95_throttled_ms: throttled
            .map(|at| median_latency(samples, at + 1.0, unthrottled.unwrap_or(copy_end))),
        p95_copy_series_ms: samples
            .iter()
            .filter(|s| s.end > start && s.end - 1.0 < copy_end)
            .map(|s| s.lat_ms)
            .collect(),
        pace_copy_series: status_series(&run.lines, clock, copy_end, "Paced: ", 'x'),
        writes_copy_series_ms: status_series(&run.lines, clock, copy_end, "(writes ", 'm'),
        limit_copy_series_ms: status_series(&run.lines, clock, copy_end, ", limit ", 'm'),
        rows_copy_series: status_series(&run.lines, clock, copy_end, "Copy: ", '/'),
        lag_copy_series: status_series(&run.lines, clock, copy_end, "Lag: ", 's'),
        phases: {
            let at = |pattern: &str| run.line_at(pattern).map(secs);
            let copied = at("row copy complete");
            let checked = at("checksum passed");
            let warmup = settings.warmup.as_secs_f64();
            let mut bounds: Vec<(&str, f64, f64)> =
                vec![("before wraith", start - warmup + 2.0, start)];
            let copy_to = copied.unwrap_or(copy_end);
            bounds.push(("copy", start + 1.0, copy_to));
            if let Some(checked) = checked {
                bounds.push(("catch-up and checksum", copy_to, checked));
                match throttled {
                    Some(at) => {
                        let until = unthrottled.unwrap_or(copy_end);
                        bounds.push(("held: wraith applying, not copying", checked, at));
                        bounds.push(("held: wraith throttled (idle)", at, until));
                        if let Some(from) = unthrottled {
                            bounds.push(("held: catching up after the throttle", from, copy_end));
                        }
                    }
                    None => bounds.push(("waiting to cut over (applier only)", checked, copy_end)),
                }
            } else {
                bounds.push(("catch-up", copy_to, copy_end));
            }
            bounds.push(("after wraith", cut_to + 2.0, cut_to + warmup));
            // A phase shorter than the writers' 1 s intervals has no figure of its own.
            bounds
                .into_iter()
                .filter(|(_, from, to)| to - from >= 1.0)
                .map(|(name, from, to)| Phase::of(name, from, to, samples, &innodb))
                .collect()
        },
        innodb_copy_series: innodb
            .into_iter()
            .filter(|s| s.at > start && s.at - 1.0 < copy_end)
            .collect(),
        max_latency_cutover_ms: max_latency(samples, cut_from - 1.0, cut_to + 2.0),
        catch_up: run
            .line_at("row copy complete")
            .zip(
                run.line_at("checksum: comparing the ghost table")
                    .or(cutting_over),
            )
            .map(|(copied, caught_up)| caught_up.saturating_duration_since(copied)),
        errors: [
            errors_between(samples, f64::NEG_INFINITY, start),
            errors_between(samples, start, copy_end),
            errors_between(samples, copy_end, cut_to + 1.0),
            errors_between(samples, cut_to + 1.0, f64::INFINITY),
        ],
    };
    c.query_drop("DROP DATABASE sbtest").await?;
    Ok((
        ResultRow {
            name: format!(
                "load: wraith --execute ({})",
                match settings.load {
                    LoadKind::Sysbench => "sysbench",
                    LoadKind::Builtin => "built-in writers",
                }
            ),
            wall: run.wall,
            rows: n,
            copy: run.copy,
            checksum: run.checksum,
            blocked: run.blocked,
            cpu: Some(run_cpu),
            peak_rss_mib: run.peak_rss_mib,
            check: check.join(", "),
            ok,
            skipped: None,
            waits: false,
        },
        figures,
    ))
}

// ---- scenario 3: the applier against the server's ceiling ----------------------------------------

/// What unthrottled writers on `sbtest1` alone made the server commit over one window.
#[derive(Debug, Clone, Copy)]
struct Committed {
    seconds: f64,
    /// Row events on `sbtest1` (`TABLE_STATISTICS.ROWS_CHANGED`: inserted, updated and deleted
    /// rows; a statement later rolled back counts too).
    rows: u64,
    /// Transactions the writers committed (sysbench's `transactions:`, or the built-in count).
    transactions: u64,
    /// Errors the writers retried (deadlocks, lock wait timeouts).
    retried: u64,
}

impl Committed {
    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.seconds.max(0.001)
    }

    fn tps(&self) -> f64 {
        self.transactions as f64 / self.seconds.max(0.001)
    }
}

/// One reading during the applier's window, `at` seconds into it.
#[derive(Debug, Clone, Copy)]
struct ApplierSample {
    at: f64,
    /// Row events committed on the table and applied by wraith since the window started.
    committed: u64,
    applied: u64,
    /// wraith's queue of binlog events read and not applied (`wraith_backlog`).
    queue: u64,
}

/// The applier's sustained rate against the server's, from the applier scenario.
struct ApplierFigures {
    threads: u32,
    /// The writers with no wraith running, and the CPU seconds used meanwhile.
    alone: Committed,
    cpu_alone: Cpu,
    /// The same writers for the same time with wraith applying; `None`: wraith never got there.
    window: Option<ApplierWindow>,
    /// The same writers for the same time with wraith throttled, then wraith applying the
    /// backlog alone; `None`: wraith never got there.
    backlog: Option<BacklogDrain>,
}

/// The window with wraith applying (its cut-over postponed).
struct ApplierWindow {
    committed: Committed,
    /// Row events wraith applied during the window (`wraith_events_applied_total`).
    applied: u64,
    /// Row events committed and not yet applied when the writers stopped (committed - applied
    /// since the window started), and wraith's own queue then (of its capacity).
    behind_at_end: i64,
    queue_at_end: u64,
    queue_capacity: u64,
    /// Seconds from the writers' end until wraith had applied every row event committed; `None`:
    /// not within WRAITH_BENCH_TIMEOUT.
    drain: Option<f64>,
    /// Row events the server counted that wraith never applied once it went quiet (statements
    /// rolled back are counted by the server and never binlogged).
    unmatched: i64,
    cpu: Cpu,
    samples: Vec<ApplierSample>,
}

impl ApplierWindow {
    fn applied_per_s(&self) -> f64 {
        self.applied as f64 / self.committed.seconds.max(0.001)
    }
}

/// The same writers with wraith throttled, then wraith applying what they left.
struct BacklogDrain {
    /// What the writers made the server commit while wraith was throttled (connected, idle).
    committed: Committed,
    /// Row events committed and not applied when the throttle was released.
    backlog: i64,
    /// Seconds from the release until wraith had applied them (`None`: not within
    /// WRAITH_BENCH_TIMEOUT), and what the server counted that never came (rolled back).
    drain: Option<f64>,
    unmatched: i64,
    /// CPU seconds from the release until then.
    cpu: Cpu,
}

impl BacklogDrain {
    /// Row events/s wraith applied the backlog at, with no writers running.
    fn rate(&self) -> f64 {
        match self.drain {
            Some(d) => (self.backlog - self.unmatched) as f64 / d.max(0.001),
            None => f64::NAN,
        }
    }
}

/// wraith reads the primary (`--allow-on-master`), copies `sbtest.sbtest1` idle, checks it and
/// postpones its cut-over; then writers run unthrottled on `sbtest1` alone for
/// `WRAITH_BENCH_APPLIER_SECS`, and the row events the server committed on the table are set
/// against those wraith applied. The same writers ran first for the same time with no wraith:
/// the server's own ceiling. Once they stop: how far behind wraith was and how long it took to
/// apply the rest; then a natively altered copy of the table is made, the cut-over released, and
/// the new table must equal that copy on both servers.
async fn applier_ceiling(
    settings: &Settings,
    servers: &Servers,
) -> Result<(ResultRow, ApplierFigures)> {
    let n = settings.rows;
    let window = settings.applier_window;
    let mut c = servers.primary.conn().await?;
    println!("\n[applier] preparing sbtest.sbtest1 with {n} rows ...");
    let t = Instant::now();
    // The natively altered copy the new table is checked against; filled once the writers stop.
    prepare_sbtest(settings, servers, &mut c).await?;
    servers.sync().await?;
    // Per-table row counts (information_schema.TABLE_STATISTICS), for this scenario only.
    c.query_drop("SET GLOBAL userstat = 1").await?;
    println!("[applier] prepared in {:.1}s", t.elapsed().as_secs_f64());

    println!(
        "[applier] the server alone: writers on sbtest1, unthrottled, {} threads, {}s ...",
        settings.threads,
        window.as_secs()
    );
    let cpu = Cpu::now(servers);
    let alone = committed_during(settings, &servers.primary, &mut c, window).await?;
    let cpu_alone = Cpu {
        // No wraith runs; the children's CPU is sysbench's.
        wraith: 0.0,
        ..Cpu::now(servers).since(cpu)
    };
    println!(
        "[applier] the server alone committed {:.0} row events/s on sbtest1 ({:.0} tps, {} retried); {}",
        alone.rows_per_s(),
        alone.tps(),
        alone.retried,
        cpu_alone.line()
    );
    servers.sync_long().await?;

    let dir = tempfile::Builder::new()
        .prefix("wraith-bench-applier-")
        .tempdir()?;
    let postpone = dir.path().join("postpone");
    let throttle = dir.path().join("throttle");
    std::fs::write(&postpone, b"")?;
    let metrics_port = sandbox::free_port()?;
    let extra = vec![
        "--allow-on-master".to_string(),
        format!("--postpone-cut-over-flag-file={}", postpone.display()),
        format!("--throttle-flag-file={}", throttle.display()),
        format!("--metrics-port={metrics_port}"),
    ];
    println!("[applier] wraith --execute on sbtest.sbtest1 reading the primary, the cut-over postponed ...");
    let args = wraith_args(settings, servers.primary.port, "sbtest", "sbtest1", &extra);
    let mut wraith = Wraith::spawn(&settings.wraith, &args, settings.apart)?;
    let postponed = wraith
        .wait_for_line("cut-over postponed while", settings.timeout)
        .await;
    let (mut measured, mut backlog) = (None, None);
    if let (true, Some(pid)) = (postponed, wraith.pid()) {
        println!(
            "[applier] wraith has copied, caught up and postponed its cut-over; writers on sbtest1, unthrottled, {}s ...",
            window.as_secs()
        );
        measured = Some(applier_window(settings, servers, &mut c, pid, metrics_port).await?);
        println!(
            "[applier] wraith throttled (--throttle-flag-file); writers on sbtest1, unthrottled, {}s; then wraith applies what they left ...",
            window.as_secs()
        );
        backlog =
            Some(applier_backlog(settings, servers, &mut c, pid, metrics_port, &throttle).await?);
        // The natively altered copy, from the table as the writers left it.
        let mut from = 1;
        while from <= n {
            let to = from + 99_999;
            c.query_drop(format!(
                "INSERT INTO sbtest.sbtest1_mirror (id, k, c, pad)
                 SELECT id, k, c, pad FROM sbtest.sbtest1 WHERE id BETWEEN {from} AND {to}"
            ))
            .await?;
            from = to + 1;
        }
    }
    std::fs::remove_file(&postpone)?;
    let run = wraith.finish(settings.timeout).await;
    run.print_summary("applier");
    c.query_drop("SET GLOBAL userstat = 0").await?;

    let mut check = Vec::new();
    let swapped = run.ok && run.swapped_at.is_some();
    let mut ok = swapped && measured.is_some();
    if !postponed {
        check.push("wraith never postponed its cut-over".into());
    }
    if !swapped {
        check.push(run.failure());
    }
    let behind = [
        measured.as_ref().map(|m| (m.drain, m.behind_at_end)),
        backlog.as_ref().map(|b| (b.drain, b.backlog)),
    ];
    for (_, left) in behind.into_iter().flatten().filter(|(d, _)| d.is_none()) {
        ok = false;
        check.push(format!(
            "wraith was still behind ({left} row events at the writers' end) after {}s (WRAITH_BENCH_TIMEOUT)",
            settings.timeout.as_secs()
        ));
    }
    if swapped {
        servers.sync_long().await?;
        for (name, server) in [("primary", &servers.primary), ("replica", &servers.replica)] {
            let mut conn = server.conn().await?;
            let (line, same) =
                against_mirror(&mut conn, "sbtest", "sbtest1", "sbtest1_mirror").await?;
            ok &= same;
            check.push(format!("{name}: {line}"));
        }
    }
    c.query_drop("DROP DATABASE sbtest").await?;
    servers.sync_long().await?;
    let figures = ApplierFigures {
        threads: settings.threads,
        alone,
        cpu_alone,
        window: measured,
        backlog,
    };
    Ok((
        ResultRow {
            name: "applier: wraith on the primary".into(),
            wall: run.wall,
            rows: n,
            copy: run.copy,
            checksum: run.checksum,
            blocked: run.blocked,
            cpu: None,
            peak_rss_mib: run.peak_rss_mib,
            check: check.join(", "),
            ok,
            skipped: None,
            waits: true,
        },
        figures,
    ))
}

/// The window itself, wraith postponing its cut-over: unthrottled writers for `window`, the row
/// events committed and applied read every second, then the time wraith takes to apply the rest.
async fn applier_window(
    settings: &Settings,
    servers: &Servers,
    c: &mut Conn,
    wraith_pid: u32,
    metrics_port: u16,
) -> Result<ApplierWindow> {
    let window = settings.applier_window;
    let cpu_now = || {
        let mut cpu = Cpu::now(servers);
        cpu.wraith = cpu_of(wraith_pid);
        cpu
    };
    let start_metrics = scrape_metrics(metrics_port).await?;
    let start_rows = rows_changed(c).await?;
    let cpu_start = cpu_now();
    let start = Instant::now();
    let done = AtomicBool::new(false);
    let mut sampler_conn = servers.primary.conn().await?;
    let writes = async {
        let committed = uncapped_writes(settings, &servers.primary, window).await;
        done.store(true, Ordering::SeqCst);
        committed
    };
    let sampler = async {
        let mut samples = Vec::new();
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let m = scrape_metrics(metrics_port).await?;
            let rows = rows_changed(&mut sampler_conn).await?;
            samples.push(ApplierSample {
                at: start.elapsed().as_secs_f64(),
                committed: rows.saturating_sub(start_rows),
                applied: m.applied.saturating_sub(start_metrics.applied),
                queue: m.backlog,
            });
        }
        anyhow::Ok(samples)
    };
    let (writes, samples) = tokio::join!(writes, sampler);
    let (transactions, retried) = writes?;
    let seconds = start.elapsed().as_secs_f64();
    let end = Instant::now();
    let end_metrics = scrape_metrics(metrics_port).await?;
    let end_rows = rows_changed(c).await?;
    let cpu = cpu_now().since(cpu_start);
    let mut samples = samples?;
    let committed_rows = end_rows.saturating_sub(start_rows);
    let applied = end_metrics.applied.saturating_sub(start_metrics.applied);
    samples.push(ApplierSample {
        at: seconds,
        committed: committed_rows,
        applied,
        queue: end_metrics.backlog,
    });
    let with_wraith = Committed {
        seconds,
        rows: committed_rows,
        transactions,
        retried,
    };
    let behind_at_end = committed_rows as i64 - applied as i64;
    println!(
        "[applier] the server committed {:.0} row events/s on sbtest1 ({:.0} tps, {retried} retried); wraith applied {:.0}/s; {behind_at_end} row events behind at the end (wraith's queue {}/{}); {}",
        with_wraith.rows_per_s(),
        with_wraith.tps(),
        applied as f64 / seconds.max(0.001),
        end_metrics.backlog,
        end_metrics.capacity,
        cpu.line()
    );

    let (drain, unmatched) = wait_applied(
        c,
        metrics_port,
        (start_rows, start_metrics.applied),
        end,
        settings.timeout,
    )
    .await?;
    match drain {
        Some(d) if unmatched == 0 => println!(
            "[applier] wraith applied the rest {d:.1}s after the writers stopped"
        ),
        Some(d) => println!(
            "[applier] wraith went quiet {d:.1}s after the writers stopped, {unmatched} row events short of the server's count (statements rolled back are counted and not binlogged)"
        ),
        None => println!("[applier] wraith had not applied the rest after {}s", settings.timeout.as_secs()),
    }
    Ok(ApplierWindow {
        committed: with_wraith,
        applied,
        behind_at_end,
        queue_at_end: end_metrics.backlog,
        queue_capacity: end_metrics.capacity,
        drain,
        unmatched,
        cpu,
        samples,
    })
}

/// Waits until wraith has applied every row event the server committed on the table since
/// `base` (its (`rows_changed`, `applied`) then), or has gone quiet: nothing applied for 5 s
/// with an empty queue (what is left was counted by the server and never binlogged: rolled
/// back). Returns the seconds from `since` to the last apply (`None`: not within `timeout`) and
/// the row events left unmatched.
async fn wait_applied(
    c: &mut Conn,
    metrics_port: u16,
    base: (u64, u64),
    since: Instant,
    timeout: Duration,
) -> Result<(Option<f64>, i64)> {
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let m = scrape_metrics(metrics_port).await?;
        let committed = rows_changed(c).await?.saturating_sub(base.0);
        let applied = m.applied.saturating_sub(base.1);
        let now = Instant::now();
        let left = committed as i64 - applied as i64;
        if left <= 0 {
            return Ok((Some(now.duration_since(since).as_secs_f64()), 0));
        }
        match last {
            Some((a, at)) if a == applied => {
                if m.backlog == 0 && at.elapsed() > Duration::from_secs(5) {
                    return Ok((Some(at.duration_since(since).as_secs_f64()), left));
                }
            }
            _ => last = Some((applied, now)),
        }
        if since.elapsed() > timeout {
            return Ok((None, left));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// wraith throttled (`--throttle-flag-file`: it reads and applies nothing) while the same
/// writers run for the window; then the flag is removed, and wraith applies the backlog with the
/// server otherwise idle: the applier's own ceiling, not shared with live writers.
async fn applier_backlog(
    settings: &Settings,
    servers: &Servers,
    c: &mut Conn,
    wraith_pid: u32,
    metrics_port: u16,
    throttle: &std::path::Path,
) -> Result<BacklogDrain> {
    std::fs::write(throttle, b"")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !scrape_metrics(metrics_port).await?.throttled {
        if Instant::now() > deadline {
            bail!("wraith did not throttle within 30s of its --throttle-flag-file");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = (
        rows_changed(c).await?,
        scrape_metrics(metrics_port).await?.applied,
    );
    let committed =
        committed_during(settings, &servers.primary, c, settings.applier_window).await?;
    let held = scrape_metrics(metrics_port).await?;
    let backlog = committed.rows as i64 - held.applied.saturating_sub(base.1) as i64;
    let cpu_now = || Cpu {
        wraith: cpu_of(wraith_pid),
        ..Cpu::now(servers)
    };
    let cpu_start = cpu_now();
    let released = Instant::now();
    std::fs::remove_file(throttle)?;
    let (drain, unmatched) =
        wait_applied(c, metrics_port, base, released, settings.timeout).await?;
    let cpu = cpu_now().since(cpu_start);
    let figures = BacklogDrain {
        committed,
        backlog,
        drain,
        unmatched,
        cpu,
    };
    println!(
        "[applier] throttled wraith: the server committed {:.0} row events/s ({:.0} tps); released with {backlog} row events behind, wraith applied them in {} ({} row events/s); {}",
        committed.rows_per_s(),
        committed.tps(),
        drain.map_or("-".into(), |d| format!("{d:.1}s")),
        fig(figures.rate()),
        cpu.line()
    );
    Ok(figures)
}

/// Unthrottled writers on `sbtest1` alone for `window`, with the row events the server committed
/// on it counted (`TABLE_STATISTICS`).
async fn committed_during(
    settings: &Settings,
    primary: &Server,
    c: &mut Conn,
    window: Duration,
) -> Result<Committed> {
    let before = rows_changed(c).await?;
    let start = Instant::now();
    let (transactions, retried) = uncapped_writes(settings, primary, window).await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Committed {
        seconds,
        rows: rows_changed(c).await?.saturating_sub(before),
        transactions,
        retried,
    })
}

/// Row events on `sbtest.sbtest1` since the server started counting (`userstat=1`).
async fn rows_changed(c: &mut Conn) -> Result<u64> {
    Ok(c.query_first(
        "SELECT ROWS_CHANGED FROM information_schema.TABLE_STATISTICS
             WHERE TABLE_SCHEMA = 'sbtest' AND TABLE_NAME = 'sbtest1'",
    )
    .await?
    .unwrap_or(0))
}

/// oltp_write_only on `sbtest1` alone (4 row events per transaction), as fast as it goes, for
/// `window`: sysbench's own script, or the built-in writers on that table. Returns the
/// transactions committed and the errors retried.
async fn uncapped_writes(
    settings: &Settings,
    primary: &Server,
    window: Duration,
) -> Result<(u64, u64)> {
    match settings.load {
        LoadKind::Sysbench => {
            let out = Command::new("sysbench")
                .args(sysbench_common(settings, primary, "oltp_write_only"))
                .arg(format!("--threads={}", settings.threads))
                .arg("--rate=0")
                .arg(format!("--time={}", window.as_secs()))
                .arg("run")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .context("running sysbench oltp_write_only")?;
            let text = String::from_utf8_lossy(&out.stdout);
            // "    transactions:                        12345  (411.23 per sec.)"
            let total = |marker: &str| -> Option<u64> {
                text.lines()
                    .find_map(|l| after(l, marker))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            match (
                out.status.success(),
                total("transactions:"),
                total("ignored errors:"),
            ) {
                (true, Some(t), Some(e)) => Ok((t, e)),
                _ => bail!(
                    "sysbench oltp_write_only failed: {}{}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        LoadKind::Builtin => {
            let (stop, buckets, tasks) =
                start_builtin_writers(settings, primary, 101, &["sbtest1"]).await?;
            tokio::time::sleep(window).await;
            stop.store(true, Ordering::SeqCst);
            let mut retried = 0;
            for t in tasks {
                retried += t.await??;
            }
            let transactions = buckets.lock().unwrap().values().map(|b| b.0).sum();
            Ok((transactions, retried))
        }
    }
}

/// What the applier scenario reads from wraith's `GET /metrics`.
struct MetricsReading {
    /// `wraith_events_applied_total`: row events applied.
    applied: u64,
    /// `wraith_backlog` and `wraith_backlog_capacity`: binlog events read and not applied yet.
    backlog: u64,
    capacity: u64,
    /// `wraith_throttled`: the copy and the applier are held.
    throttled: bool,
}

/// Reads wraith's Prometheus endpoint on 127.0.0.1:`port`.
async fn scrape_metrics(port: u16) -> Result<MetricsReading> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connecting to wraith's metrics on port {port}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .context("wraith's metrics did not answer within 5s")??;
    let value = |name: &str| -> Result<u64> {
        response
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .ok_or_else(|| anyhow!("wraith's metrics have no {name}: {response}"))
    };
    Ok(MetricsReading {
        applied: value("wraith_events_applied_total")?,
        backlog: value("wraith_backlog")?,
        capacity: value("wraith_backlog_capacity")?,
        throttled: value("wraith_throttled")? == 1,
    })
}

// ---- wraith as a child process ----------------------------------------------------------------

/// wraith's command line: migrate `db`.`table` with the bench's ALTER, connecting to the server
/// on `port` (whose binlog it reads), with `extra` flags and then `WRAITH_BENCH_ARGS`.
fn wraith_args(
    settings: &Settings,
    port: u16,
    db: &str,
    table: &str,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        "--host=127.0.0.1".to_string(),
        format!("--port={port}"),
        "--user=root".into(),
        format!("--database={db}"),
        format!("--table={table}"),
        format!("--alter={ADD_COLUMN}"),
        "--execute".into(),
    ];
    args.extend(extra.iter().cloned());
    args.extend(settings.extra_args.iter().cloned());
    args
}

/// A running wraith (or gh-ost, which takes the same command line): its output lines, each
/// stamped when it arrived.
struct Wraith {
    /// The program's file name, for messages.
    name: String,
    child: Child,
    started: Instant,
    lines_rx: mpsc::UnboundedReceiver<(Instant, String)>,
    lines: Vec<(Instant, String)>,
}

/// What a finished wraith run showed.
struct WraithRun {
    ok: bool,
    exit: String,
    started: Instant,
    wall: Duration,
    ended_at: Instant,
    /// Rows and seconds from "row copy complete: N rows in C chunks in Xs".
    copy: Option<(u64, f64)>,
    /// Seconds from "checksum passed: N rows in M chunks compared in Xs".
    checksum: Option<f64>,
    /// Seconds from "tables swapped; writers were blocked for Xs", and when that line came.
    blocked: Option<f64>,
    swapped_at: Option<Instant>,
    /// The process's peak resident memory (`VmHWM`), last read a fraction of a second before it
    /// exited, in MiB.
    peak_rss_mib: Option<f64>,
    lines: Vec<(Instant, String)>,
}

impl Wraith {
    /// Starts `bin` with `args`; `nice`: at nice 19 (`WRAITH_BENCH_APART`), through `nice`,
    /// which execs it (so the process id is the tool's).
    fn spawn(bin: &std::path::Path, args: &[String], nice: bool) -> Result<Wraith> {
        let mut command = if nice {
            let mut c = Command::new("nice");
            c.args(["-n", "19"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let mut child = command
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let started = Instant::now();
        let (tx, lines_rx) = mpsc::unbounded_channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        spawn_line_reader(out, tx.clone());
        spawn_line_reader(err, tx);
        Ok(Wraith {
            name: bin
                .file_name()
                .map_or("wraith".into(), |n| n.to_string_lossy().into_owned()),
            child,
            started,
            lines_rx,
            lines: Vec::new(),
        })
    }

    /// The process id, while it runs.
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Reads what it says until a line contains `pattern` (true), or until it closes its output or
    /// `timeout` passes (false).
    async fn wait_for_line(&mut self, pattern: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines_rx.recv()).await {
                Ok(Some(line)) => {
                    let found = line.1.contains(pattern);
                    self.lines.push(line);
                    if found {
                        return true;
                    }
                }
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// Waits for the process to exit, reading its peak RSS every 200 ms meanwhile.
    async fn wait_sampling(
        &mut self,
        peak_rss_mib: &mut Option<f64>,
    ) -> std::io::Result<std::process::ExitStatus> {
        loop {
            if let Some(mib) = self.child.id().and_then(peak_rss_mib_of) {
                *peak_rss_mib = Some(mib);
            }
            tokio::select! {
                status = self.child.wait() => return status,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Waits for wraith to exit (interrupting it after `timeout`) and reads what it said.
    async fn finish(mut self, timeout: Duration) -> WraithRun {
        let remaining = timeout.saturating_sub(self.started.elapsed());
        let mut peak_rss_mib = None;
        let waited = tokio::time::timeout(remaining, self.wait_sampling(&mut peak_rss_mib)).await;
        let exit = match waited {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{} exited with {status}", self.name)),
            Ok(Err(e)) => Err(format!("waiting for {}: {e}", self.name)),
            Err(_) => {
                // Ctrl-C first, so wraith cleans up its helper tables; then SIGKILL.
                if let Some(pid) = self.child.id() {
                    // SAFETY: kill(2) on the pid of the child this bench started.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
                if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
                    .await
                    .is_err()
                {
                    let _ = self.child.kill().await;
                }
                Err(format!(
                    "{} did not finish within {}s (WRAITH_BENCH_TIMEOUT) and was interrupted",
                    self.name,
                    timeout.as_secs()
                ))
            }
        };
        let ended_at = Instant::now();
        while let Some(line) = self.lines_rx.recv().await {
            self.lines.push(line);
        }
        let mut run = WraithRun {
            ok: exit.is_ok(),
            exit: exit.err().unwrap_or_else(|| "exit 0".into()),
            started: self.started,
            wall: ended_at - self.started,
            ended_at,
            copy: None,
            checksum: None,
            blocked: None,
            swapped_at: None,
            peak_rss_mib,
            lines: self.lines,
        };
        // gh-ost's copy phase: the status line after its "Row copy complete" ("Copy: N/M ...;
        // Time: 14s(total), 12s(copy); ..."), to the second.
        let mut ghost_copy_done = false;
        for (at, line) in &run.lines {
            if line.contains("Row copy complete") {
                ghost_copy_done = true;
            }
            if ghost_copy_done && run.copy.is_none() {
                run.copy = ghost_copy(line);
            }
            // gh-ost: "Lock & rename duration: 1.003875334s. During this time, queries on ..."
            if let Some(rest) = after(line, "Lock & rename duration: ") {
                run.blocked = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| go_duration(w.trim_end_matches('.')))
                    .map(|d| d.as_secs_f64());
                run.swapped_at = Some(*at);
            }
            if let Some(rest) = after(line, "row copy complete: ") {
                // "N rows in C chunks in Xs" ("N rows in Xs" before session 26)
                let rows = rest.split_whitespace().next().and_then(|w| w.parse().ok());
                let secs = after(rest, " chunks in ")
                    .or_else(|| after(rest, " rows in "))
                    .and_then(|w| w.split_whitespace().next())
                    .and_then(|w| w.trim_end_matches('s').parse().ok());
                if let (Some(r), Some(s)) = (rows, secs) {
                    run.copy = Some((r, s));
                }
            }
            if let Some(rest) =
                after(line, "checksum passed: ").and_then(|r| after(r, "compared in "))
            {
                // "4.50s (row copy ...)" or "4.50s, its workers resting ...".
                run.checksum = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.trim_end_matches([',', 's']).parse().ok());
            }
            if let Some(rest) = after(line, "writers were blocked for ") {
                run.blocked = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.trim_end_matches('s').parse().ok());
                run.swapped_at = Some(*at);
            }
        }
        run
    }
}

/// Rows and seconds of gh-ost's status line "Copy: 1000000/1000000 100.0%; ...; Time: 14s(total),
/// 12s(copy); ...".
fn ghost_copy(line: &str) -> Option<(u64, f64)> {
    let rows = after(line, "Copy: ")?
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let copy = after(line, "(total), ")?.split("(copy)").next()?;
    Some((rows, go_duration(copy.trim())?.as_secs_f64()))
}

/// A Go duration as gh-ost prints it: `1.003875334s`, `12.5ms`, `850µs`, `2m40s`, `1h2m3s`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut secs = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        secs += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(secs))
}

/// The peak resident memory (`VmHWM`) of process `pid`, in MiB.
fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = after(&status, "VmHWM:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn spawn_line_reader<R>(stream: R, tx: mpsc::UnboundedSender<(Instant, String)>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send((Instant::now(), strip_ansi(&line))).is_err() {
                break;
            }
        }
    });
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

impl WraithRun {
    fn print_summary(&self, scenario: &str) {
        println!(
            "[{scenario}] wraith: {} after {:.1}s",
            self.exit,
            self.wall.as_secs_f64()
        );
        let keys = [
            "plan:",
            "copying chunks",
            "pacing the copy",
            "no longer paced",
            "deleted while a chunk read",
            "left to the copy instead",
            "every change is applied",
            "row copy complete",
            "checksum",
            "tables swapped",
            "cut-over",
            "ended:",
            "Row copy complete",
            "Lock & rename duration",
            "Done migrating",
            "--cpu-nice",
            "WARN",
            "ERROR",
            "error",
        ];
        for (_, line) in self
            .lines
            .iter()
            .filter(|(_, l)| keys.iter().any(|k| l.contains(k)))
        {
            println!("    {line}");
        }
        if !self.ok {
            println!("    last lines:");
            for (_, line) in &self.lines[self.lines.len().saturating_sub(30)..] {
                println!("    | {line}");
            }
        }
    }

    /// When the first line containing `pattern` arrived.
    fn line_at(&self, pattern: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(pattern))
            .map(|(at, _)| *at)
    }

    fn failure(&self) -> String {
        if self.ok {
            "exited 0 but never logged the swap".into()
        } else {
            format!("FAILED: {}", self.exit)
        }
    }
}

// ---- the write load -----------------------------------------------------------------------------

/// One reporting interval of the writers: its end on the bench clock, throughput, worst latency.
#[derive(Debug, Clone, Copy)]
struct Sample {
    end: f64,
    tps: f64,
    /// The interval's 95th percentile latency (sysbench); the slowest transaction (built-in).
    lat_ms: f64,
    /// Transactions that failed and were retried (sysbench's err/s).
    errors: f64,
}

/// One figure of each of wraith's status lines before `until` (bench clock): the number after
/// `field`, up to `unit` (0 where the line has none).
fn status_series(
    lines: &[(Instant, String)],
    clock: Instant,
    until: f64,
    field: &str,
    unit: char,
) -> Vec<f64> {
    lines
        .iter()
        .filter(|(at, l)| at.duration_since(clock).as_secs_f64() < until && l.contains("Copy: "))
        .map(|(_, l)| {
            after(l, field)
                .and_then(|v| v.split(unit).next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        })
        .collect()
}

/// `values` with `decimals` decimals each, separated by spaces (a series printed on one line).
fn joined(values: impl Iterator<Item = f64>, decimals: usize) -> String {
    values
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Errors of the intervals that ended after `from` and by `to`.
fn errors_between(samples: &[Sample], from: f64, to: f64) -> f64 {
    samples
        .iter()
        .filter(|s| s.end > from && s.end <= to)
        .map(|s| s.errors)
        .fold(0.0, |a, b| a + b)
}

fn mean_tps(samples: &[Sample], from: f64, to: f64) -> f64 {
    let inside: Vec<f64> = samples
        .iter()
        .filter(|s| s.end - 1.0 >= from && s.end <= to)
        .map(|s| s.tps)
        .collect();
    if inside.is_empty() {
        f64::NAN
    } else {
        inside.iter().sum::<f64>() / inside.len() as f64
    }
}

fn max_latency(samples: &[Sample], from: f64, to: f64) -> f64 {
    samples
        .iter()
        .filter(|s| s.end > from && s.end - 1.0 < to)
        .map(|s| s.lat_ms)
        .fold(f64::NAN, f64::max)
}

/// The median over the 1 s intervals inside `from..to` of their latency figure (p95 with
/// sysbench): what the application typically felt then.
fn median_latency(samples: &[Sample], from: f64, to: f64) -> f64 {
    let mut inside: Vec<f64> = samples
        .iter()
        .filter(|s| s.end - 1.0 >= from && s.end <= to)
        .map(|s| s.lat_ms)
        .collect();
    if inside.is_empty() {
        return f64::NAN;
    }
    inside.sort_by(f64::total_cmp);
    inside[inside.len() / 2]
}

/// The tables the load scenario's writers change alike.
const MIRRORED: &[&str] = &["sbtest1", "sbtest1_mirror"];

/// The built-in writers' figures per second since they started: commits, worst latency (ms),
/// retried errors.
type Buckets = Arc<Mutex<BTreeMap<u64, (u64, f64, u64)>>>;

/// The writers: sysbench as a child process, or tasks of this process.
enum Load {
    Sysbench {
        child: Child,
        /// Reads sysbench's output; ends when sysbench has exited.
        reader: tokio::task::JoinHandle<SysbenchOutput>,
        /// Holds the stop file: the script ends each thread once it exists.
        stop_dir: tempfile::TempDir,
    },
    Builtin {
        stop: Arc<AtomicBool>,
        tasks: Vec<tokio::task::JoinHandle<Result<u64>>>,
        buckets: Buckets,
        t0: f64,
    },
}

/// How the writers ended.
struct LoadEnd {
    /// Per-second samples on the bench clock.
    samples: Vec<Sample>,
    /// Errors the writers retried (sysbench's `ignored errors:`); None if it never said.
    ignored_errors: Option<u64>,
    /// Why the writers did not end cleanly (a non-zero exit, a fatal error).
    failure: Option<String>,
    /// What the retried errors were, as far as known.
    retried: Vec<String>,
}

/// What sysbench printed.
#[derive(Default)]
struct SysbenchOutput {
    samples: Vec<Sample>,
    ignored_errors: Option<u64>,
    /// Lines that say something failed.
    errors: Vec<String>,
    /// The errors the script retried (deadlocks, lock waits), as it reported them.
    retried: Vec<String>,
}

/// The script the load runs: oltp_write_only's transaction on sbtest1 and its mirror.
const MIRROR_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/oltp_write_mirror.lua");
/// The stop file's name in `Load::Sysbench::stop_dir`, passed to the script in this variable.
const STOP_FILE_VAR: &str = "WRAITH_BENCH_STOP_FILE";

fn sysbench_common(settings: &Settings, primary: &Server, script: &str) -> Vec<String> {
    vec![
        script.into(),
        "--db-driver=mysql".into(),
        "--mysql-host=127.0.0.1".into(),
        format!("--mysql-port={}", primary.port),
        "--mysql-user=root".into(),
        "--mysql-password=".into(),
        "--mysql-db=sbtest".into(),
        "--tables=1".into(),
        format!("--table-size={}", settings.rows),
    ]
}

/// What the pair sustains: sysbench's transactions/s with no rate limit, over 10 s (the first 2 s
/// left out). The rows it changes are changed in the mirror the same way.
async fn sysbench_ceiling(settings: &Settings, primary: &Server) -> Result<f64> {
    let stop_dir = tempfile::Builder::new()
        .prefix("wraith-bench-stop-")
        .tempdir()?;
    let out = Command::new("sysbench")
        .args(sysbench_common(settings, primary, MIRROR_SCRIPT))
        .arg(format!("--threads={}", settings.threads))
        .arg("--rate=0")
        .arg("--time=10")
        .arg("--report-interval=1")
        .arg("run")
        .env(STOP_FILE_VAR, stop_dir.path().join("stop"))
        .stdin(Stdio::null())
        .output()
        .await
        .context("running sysbench to measure the ceiling")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let samples: Vec<Sample> = text.lines().filter_map(parse_sysbench).collect();
    let tps = mean_tps(&samples, 2.0, f64::INFINITY);
    if !out.status.success() || !tps.is_finite() {
        bail!(
            "sysbench could not measure the ceiling: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(tps)
}

async fn sysbench_prepare(settings: &Settings, primary: &Server) -> Result<()> {
    let out = Command::new("sysbench")
        .args(sysbench_common(settings, primary, "oltp_write_only"))
        .arg("prepare")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running sysbench prepare")?;
    if !out.status.success() {
        bail!(
            "sysbench prepare failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The table sysbench's `oltp_common.lua` creates, filled by the sequence engine.
async fn builtin_prepare(c: &mut Conn, n: u64) -> Result<()> {
    c.query_drop(
        "CREATE TABLE sbtest.sbtest1 (
           id INT NOT NULL AUTO_INCREMENT,
           k INT NOT NULL DEFAULT 0,
           c CHAR(120) NOT NULL DEFAULT '',
           pad CHAR(60) NOT NULL DEFAULT '',
           PRIMARY KEY (id),
           KEY k_1 (k)
         ) ENGINE=InnoDB",
    )
    .await?;
    let mut from = 1;
    while from <= n {
        let to = (from + 99_999).min(n);
        c.query_drop(format!(
            "INSERT INTO sbtest.sbtest1 (id, k, c, pad)
             SELECT seq, 1 + seq * 7919 % {n}, LEFT(CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2), MD5(seq + 3)), 119),
                    LEFT(CONCAT(MD5(-seq), MD5(-seq - 1)), 59)
             FROM seq_{from}_to_{to}"
        ))
        .await?;
        from = to + 1;
    }
    Ok(())
}

impl Load {
    async fn start(
        settings: &Settings,
        primary: &Server,
        clock: Instant,
        rate: u32,
    ) -> Result<Load> {
        match settings.load {
            LoadKind::Sysbench => {
                let stop_dir = tempfile::Builder::new()
                    .prefix("wraith-bench-stop-")
                    .tempdir()?;
                let mut child = Command::new("sysbench")
                    .args(sysbench_common(settings, primary, MIRROR_SCRIPT))
                    .arg(format!("--threads={}", settings.threads))
                    .arg(format!("--rate={rate}"))
                    .arg("--time=0")
                    .arg("--report-interval=1")
                    .arg("--percentile=95")
                    .arg("run")
                    .env(STOP_FILE_VAR, stop_dir.path().join("stop"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .context("starting sysbench run")?;
                // sysbench stamps its reports with seconds since it started.
                let t0 = clock.elapsed().as_secs_f64();
                let (tx, mut rx) = mpsc::unbounded_channel();
                spawn_line_reader(child.stdout.take().expect("piped"), tx.clone());
                spawn_line_reader(child.stderr.take().expect("piped"), tx);
                let reader = tokio::spawn(async move {
                    let mut out = SysbenchOutput::default();
                    while let Some((_, line)) = rx.recv().await {
                        if let Some(mut sample) = parse_sysbench(&line) {
                            sample.end += t0;
                            out.samples.push(sample);
                        } else if let Some(rest) = after(&line, "ignored errors:") {
                            out.ignored_errors =
                                rest.split_whitespace().next().and_then(|w| w.parse().ok());
                        } else if let Some(rest) = after(&line, "wraith-bench: retried error ") {
                            out.retried.push(rest.to_string());
                        } else if line.contains("FATAL") || line.contains("error") {
                            eprintln!("    sysbench: {line}");
                            out.errors.push(line);
                        }
                    }
                    out
                });
                Ok(Load::Sysbench {
                    child,
                    reader,
                    stop_dir,
                })
            }
            LoadKind::Builtin => {
                let t0 = clock.elapsed().as_secs_f64();
                let (stop, buckets, tasks) =
                    start_builtin_writers(settings, primary, 1, MIRRORED).await?;
                Ok(Load::Builtin {
                    stop,
                    tasks,
                    buckets,
                    t0,
                })
            }
        }
    }

    /// Stops the writers (each finishes its transaction) and says how they ended.
    async fn stop(self) -> Result<LoadEnd> {
        match self {
            Load::Sysbench {
                mut child,
                reader,
                stop_dir,
            } => {
                std::fs::write(stop_dir.path().join("stop"), b"stop\n")
                    .context("writing sysbench's stop file")?;
                let status = match tokio::time::timeout(Duration::from_secs(30), child.wait()).await
                {
                    Ok(status) => Some(status?),
                    Err(_) => {
                        let _ = child.kill().await;
                        None
                    }
                };
                let out = reader.await?;
                let failure = match status {
                    None => Some("sysbench did not stop within 30s of its stop file".to_string()),
                    Some(s) if !s.success() => Some(format!(
                        "sysbench exited with {s}{}",
                        out.errors
                            .first()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    )),
                    Some(_) if !out.errors.is_empty() => {
                        Some(format!("sysbench reported: {}", out.errors.join(" | ")))
                    }
                    Some(_) => None,
                };
                Ok(LoadEnd {
                    samples: out.samples,
                    ignored_errors: out.ignored_errors,
                    failure,
                    retried: out.retried,
                })
            }
            Load::Builtin {
                stop,
                tasks,
                buckets,
                t0,
            } => {
                stop.store(true, Ordering::SeqCst);
                let mut ignored = 0;
                let mut failures = Vec::new();
                for t in tasks {
                    match t.await? {
                        Ok(n) => ignored += n,
                        Err(e) => failures.push(format!("{e:#}")),
                    }
                }
                let buckets = buckets.lock().unwrap();
                Ok(LoadEnd {
                    samples: buckets
                        .iter()
                        .map(|(sec, &(n, lat_ms, errors))| Sample {
                            end: t0 + *sec as f64 + 1.0,
                            tps: n as f64,
                            lat_ms,
                            errors: errors as f64,
                        })
                        .collect(),
                    ignored_errors: Some(ignored),
                    failure: (!failures.is_empty()).then(|| failures.join(" | ")),
                    retried: Vec::new(),
                })
            }
        }
    }
}

/// "[ 12s ] thds: 4 tps: 812.95 ... lat (ms,100%): 45.79 err/s: 2.00 ..." → a sample ending at
/// 12 s on sysbench's clock (its intervals are 1 s).
fn parse_sysbench(line: &str) -> Option<Sample> {
    let secs = line
        .trim_start()
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .trim_end_matches('s')
        .parse()
        .ok()?;
    let number = |marker: &str| -> Option<f64> {
        after(line, marker)?.split_whitespace().next()?.parse().ok()
    };
    Some(Sample {
        end: secs,
        tps: number("tps: ")?,
        lat_ms: number("%): ")?,
        errors: number("err/s: ")?,
    })
}

/// `settings.threads` built-in writers on `tables`, seeded from `first_seed` up, started now:
/// the flag that stops them, the buckets they count commits in, and their tasks.
async fn start_builtin_writers(
    settings: &Settings,
    primary: &Server,
    first_seed: u64,
    tables: &'static [&'static str],
) -> Result<(
    Arc<AtomicBool>,
    Buckets,
    Vec<tokio::task::JoinHandle<Result<u64>>>,
)> {
    let stop = Arc::new(AtomicBool::new(false));
    let buckets: Buckets = Arc::new(Mutex::new(BTreeMap::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..settings.threads {
        let conn = primary.conn().await?;
        tasks.push(tokio::spawn(builtin_writer(
            conn,
            settings.rows,
            u64::from(i) + first_seed,
            start,
            stop.clone(),
            buckets.clone(),
            tables,
        )));
    }
    Ok((stop, buckets, tasks))
}

/// oltp_write_only's transaction, in a loop, made on each of `tables` with the same statements
/// and values (`MIRRORED`: on `sbtest1` and `sbtest1_mirror`, as `oltp_write_mirror.lua` does):
/// update an indexed column, update a non-indexed one, delete a row and insert it again.
/// Deadlocks and lock waits are rolled back and retried, as sysbench does, and counted. Returns
/// that count.
async fn builtin_writer(
    mut conn: Conn,
    rows: u64,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    buckets: Buckets,
    tables: &'static [&'static str],
) -> Result<u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut retried = 0;
    while !stop.load(Ordering::Relaxed) {
        let (a, b, d, k) = (
            1 + next() % rows,
            1 + next() % rows,
            1 + next() % rows,
            1 + next() % rows,
        );
        let (c, c2, pad) = (
            sysbench_string(&mut next, 10),
            sysbench_string(&mut next, 10),
            sysbench_string(&mut next, 5),
        );
        let both = |statement: String| {
            tables
                .iter()
                .map(|t| statement.replace("{t}", t))
                .collect::<Vec<_>>()
                .join(";\n")
        };
        let sql = format!(
            "START TRANSACTION;\n{};\n{};\n{};\n{};\nCOMMIT",
            both(format!("UPDATE sbtest.{{t}} SET k = k + 1 WHERE id = {a}")),
            both(format!("UPDATE sbtest.{{t}} SET c = '{c}' WHERE id = {b}")),
            both(format!("DELETE FROM sbtest.{{t}} WHERE id = {d}")),
            both(format!(
                "INSERT INTO sbtest.{{t}} (id, k, c, pad) VALUES ({d}, {k}, '{c2}', '{pad}')"
            )),
        );
        let t = Instant::now();
        match conn.query_drop(sql).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                conn.query_drop("ROLLBACK").await?;
                retried += 1;
                let sec = start.elapsed().as_secs();
                buckets.lock().unwrap().entry(sec).or_insert((0, 0.0, 0)).2 += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let sec = start.elapsed().as_secs();
        let mut b = buckets.lock().unwrap();
        let e = b.entry(sec).or_insert((0, 0.0, 0));
        e.0 += 1;
        e.1 = e.1.max(ms);
    }
    Ok(retried)
}

/// sysbench's c and pad values: `groups` groups of 11 random digits joined by '-'.
fn sysbench_string(next: &mut impl FnMut() -> u64, groups: usize) -> String {
    (0..groups)
        .map(|_| format!("{:011}", next() % 100_000_000_000))
        .collect::<Vec<_>>()
        .join("-")
}

// ---- checks ---------------------------------------------------------------------------------------

async fn count(c: &mut Conn, db: &str, table: &str) -> Result<u64> {
    Ok(
        c.query_first(format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
            .await?
            .unwrap_or(0),
    )
}

/// The statements of InnoDB's latest detected deadlock (wraith's own copy and apply can deadlock
/// each other too, so it is not necessarily the writers').
async fn print_latest_deadlock(c: &mut Conn) -> Result<()> {
    let deadlocks: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .await?;
    let status: Option<(String, String, String)> =
        c.query_first("SHOW ENGINE INNODB STATUS").await?;
    let text = status.map(|s| s.2).unwrap_or_default();
    println!(
        "[load] deadlocks on the primary (Innodb_deadlocks, wraith's own included): {}; the latest one's statements:",
        deadlocks.map_or("?".into(), |d| d.1.to_string())
    );
    if let Some(section) = after(&text, "LATEST DETECTED DEADLOCK") {
        let section = section.split("\nTRANSACTIONS\n").next().unwrap_or(section);
        for line in section.lines().filter(|l| {
            let l = l.trim_start().to_ascii_uppercase();
            [
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "REPLACE",
                "*** WE ROLL BACK",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        }) {
            println!("    {}", line.chars().take(200).collect::<String>());
        }
    }
    Ok(())
}

/// `table` against `mirror` on one server, on `id`: the rows of each missing from the other or
/// different in any column (compared with `<=>` and byte for byte), and the definitions
/// (`SHOW CREATE TABLE` with the name and the AUTO_INCREMENT counter left out). Returns a line
/// for the results table and whether they are equal.
async fn against_mirror(
    c: &mut Conn,
    db: &str,
    table: &str,
    mirror: &str,
) -> Result<(String, bool)> {
    let check = verify::against_mirror(c, db, table, mirror, &["id"]).await?;
    let same_definition = check.definitions.0 == check.definitions.1;
    let mut line = if check.differing == 0 {
        format!("{} rows = mirror", check.rows)
    } else {
        format!(
            "{} rows DIFFER from the mirror (missing from either, or different)",
            check.differing
        )
    };
    line.push_str(if same_definition {
        ", definition = mirror's"
    } else {
        ", definition DIFFERS from the mirror's"
    });
    Ok((line, check.equal()))
}

// ---- output ----
/// The machine's load average, as other work on it skews the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---- output -----------------------------------------------------------------------------------------

/// A figure, or "-" when there is none (NaN).
fn fig(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".into()
    }
}

fn print_results(
    settings: &Settings,
    rows: &[ResultRow],
    writers: Option<&WriterFigures>,
    applier: Option<&ApplierFigures>,
) {
    if settings.runs("scale") {
        println!(
            "\nresults ({} rows; the scale scenario {} rows):",
            settings.rows, settings.scale_rows
        );
    } else {
        println!("\nresults ({} rows):", settings.rows);
    }
    println!(
        "{:<48} {:>9} {:>10} {:>22} {:>20} {:>10} {:>8}  check",
        "run", "wall", "rows/s", "copy phase", "checksum", "cut-over", "RSS"
    );
    for r in rows {
        if let Some(why) = &r.skipped {
            println!("{:<48} {why}", r.name);
            continue;
        }
        let copy = r.copy.map_or("-".to_string(), |(n, s)| {
            format!("{s:.1}s ({:.0}/s)", n as f64 / s.max(0.001))
        });
        // The checksum's cost as a fraction of the same run's copy phase.
        let checksum = match (r.checksum, r.copy) {
            (Some(c), Some((_, s))) => {
                format!("{c:.1}s ({:.0}% of copy)", c * 100.0 / s.max(0.001))
            }
            (Some(c), None) => format!("{c:.1}s"),
            _ => "-".to_string(),
        };
        let blocked = r.blocked.map_or("-".to_string(), |b| format!("{b:.3}s"));
        let rss = r
            .peak_rss_mib
            .map_or("-".to_string(), |m| format!("{m:.0} MiB"));
        println!(
            "{:<48} {:>8.1}s {:>10} {:>22} {:>20} {:>10} {:>8}  {}",
            r.name,
            r.wall.as_secs_f64(),
            r.rows_per_s().map_or("-".into(), fig),
            copy,
            checksum,
            blocked,
            rss,
            r.check
        );
    }
    // The issue's measure: each online copy phase against the server's own ALTER.
    for size in [Size::Idle, Size::Scale] {
        let tag = size.name();
        let Some(native) = native_alter(rows, size) else {
            continue;
        };
        for r in rows
            .iter()
            .filter(|r| r.name.starts_with(&format!("{tag}: ")) && r.skipped.is_none())
        {
            if let Some((_, copy)) = r.copy {
                println!(
                    "  {}: copy phase {:.2}x the server's ALTER",
                    r.name,
                    copy / native.wall.as_secs_f64().max(0.001)
                );
            }
        }
    }
    if let Some(s) = Scaling::of(rows) {
        println!(
            "  scale: {:.1}x the rows took the server's ALTER {:.2}x the time and wraith's copy \
             phase {:.2}x (goal: at most {:.1}x); wraith's peak RSS {}",
            s.rows,
            s.native,
            s.wraith,
            s.rows * 1.1,
            s.peak_rss_mib
                .map_or("?".to_string(), |m| format!("{m:.0} MiB"))
        );
    }
    if let Some(a) = applier {
        print_applier(a, settings);
    }
    if let Some(w) = writers {
        let f = fig;
        println!(
            "\nwriters on the primary (transactions/s, each oltp_write_only's 4 statements on sbtest1 \
             and the same 4 on its mirror):"
        );
        println!(
            "  before wraith:                 {:>8} tps",
            f(w.before_tps)
        );
        println!(
            "  during copy and catch-up:      {:>8} tps ({}%)",
            f(w.during_tps),
            f((w.during_tps / w.before_tps - 1.0) * 100.0)
        );
        println!("  after the swap:                {:>8} tps", f(w.after_tps));
        match settings.load {
            LoadKind::Sysbench => println!(
                "  p95 latency before wraith:     {:>8} ms (median of the 1 s intervals; --rate={})",
                f(w.p95_before_ms),
                w.rate
            ),
            // The built-in loop is not paced and keeps each second's slowest transaction: its
            // "p95" lines below are medians of those maxima.
            LoadKind::Builtin => println!(
                "  p95 latency before wraith:     {:>8} ms (built-in writers, unpaced: the median of each second's SLOWEST transaction, not a p95; install sysbench for p95 figures)",
                f(w.p95_before_ms)
            ),
        }
        println!(
            "  p95 latency during the copy:   {:>8} ms ({:.2}x before)",
            f(w.p95_during_ms),
            w.p95_during_ms / w.p95_before_ms
        );
        if let Some(hold) = w.p95_hold_ms {
            println!(
                "  p95 latency, wraith not copying:{:>7} ms ({:.2}x before; cut-over postponed, the hold's first {}s: its applier, binlog reader and heartbeat only)",
                f(hold),
                hold / w.p95_before_ms,
                settings.hold.as_secs() / 2
            );
        }
        if let Some(idle) = w.p95_throttled_ms {
            println!(
                "  p95 latency, wraith throttled:{:>8} ms ({:.2}x before; the hold's second half: connected, reading and applying nothing)",
                f(idle),
                idle / w.p95_before_ms
            );
        }
        println!(
            "  p95 latency after wraith:      {:>8} ms ({:.2}x before; without wraith: the machine's own drift)",
            f(w.p95_after_ms),
            w.p95_after_ms / w.p95_before_ms
        );
        if let Some(c) = w.catch_up {
            println!(
                "  wraith's catch-up after copy:  {:>8.1} s (row copy complete -> checksum starts)",
                c.as_secs_f64()
            );
        }
        println!(
            "  worst 1 s p95 during copy:     {:>8} ms",
            f(w.max_latency_copy_ms)
        );
        let series: Vec<String> = w.p95_copy_series_ms.iter().map(|ms| f(*ms)).collect();
        println!(
            "  p95 of each second from wraith's start to its cut-over (ms): {}",
            series.join(" ")
        );
        let figures = |f: fn(&InnodbSample) -> f64, decimals: usize| {
            joined(w.innodb_copy_series.iter().map(f), decimals)
        };
        let column = |f: fn(&InnodbSample) -> f64| figures(f, 0);
        let tenths = |f: fn(&InnodbSample) -> f64| figures(f, 1);
        println!(
            "  the primary each second over the same time: checkpoint age (MB): {}",
            column(|s| s.checkpoint_age_mb)
        );
        println!("    pages flushed: {}", column(|s| s.pages_flushed));
        println!("    free-page waits: {}", column(|s| s.wait_free));
        println!("    history length: {}", column(|s| s.history_length));
        println!("    load average (1 min): {}", column(|s| s.load1));
        println!(
            "    cores used by the primary: {}",
            tenths(|s| s.cores_primary)
        );
        println!(
            "    cores used by the replica: {}",
            tenths(|s| s.cores_replica)
        );
        println!(
            "    cores busy on the machine: {}",
            tenths(|s| s.cores_busy)
        );
        println!(
            "  wraith's pace (status lines): {}",
            joined(w.pace_copy_series.iter().copied(), 1)
        );
        println!(
            "  the primary's writes while paced (heartbeat, third quartile, ms): {}",
            joined(w.writes_copy_series_ms.iter().copied(), 2)
        );
        println!(
            "  the pacer's limit for them (ms): {}",
            joined(w.limit_copy_series_ms.iter().copied(), 2)
        );
        println!(
            "  replica lag (status lines, s): {}",
            joined(w.lag_copy_series.iter().copied(), 1)
        );
        println!("  by phase (writers' p95: median and worst of its seconds; cores: mean; the primary's history list: most):");
        println!(
            "    {:<38} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "phase", "s", "p95 ms", "worst ms", "primary", "replica", "machine", "history"
        );
        for p in &w.phases {
            println!(
                "    {:<38} {:>7.1} {:>9} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                p.name,
                p.seconds,
                f(p.p95_median_ms),
                f(p.p95_worst_ms),
                p.cores[0],
                p.cores[1],
                p.cores[2],
                f(p.history_max)
            );
        }
        println!(
            "  worst 1 s p95 at cut-over:     {:>8} ms (writers' view, 1 s intervals around the swap)",
            f(w.max_latency_cutover_ms)
        );
        println!(
            "  retried errors (deadlocks, lock waits): {} before wraith, {} during copy and catch-up, \
             {} at cut-over (to 1 s after the swap), {} after",
            f(w.errors[0]),
            f(w.errors[1]),
            f(w.errors[2]),
            f(w.errors[3])
        );
        println!(
            "  (the cut-over is not postponed: it happens under load as soon as wraith has caught up)"
        );
    }
}

fn print_applier(a: &ApplierFigures, settings: &Settings) {
    println!(
        "\napplier (row events/s on sbtest1, counted by the server's TABLE_STATISTICS; writers: oltp_write_only on sbtest1 alone, \
         4 row events per transaction, {} threads, unthrottled, {}s; wraith reads the primary, its cut-over postponed):",
        a.threads,
        settings.applier_window.as_secs()
    );
    println!(
        "  the server alone (no wraith):  {:>8} row events/s ({} tps)",
        fig(a.alone.rows_per_s()),
        fig(a.alone.tps())
    );
    let Some(w) = &a.window else {
        println!("  with wraith applying:          - (wraith never postponed its cut-over)");
        return;
    };
    println!(
        "  committed with wraith running: {:>8} row events/s ({} tps)",
        fig(w.committed.rows_per_s()),
        fig(w.committed.tps())
    );
    println!(
        "  wraith applied:                {:>8} row events/s ({:.0}% of committed, {:.0}% of the server alone)",
        fig(w.applied_per_s()),
        w.applied_per_s() * 100.0 / w.committed.rows_per_s().max(0.001),
        w.applied_per_s() * 100.0 / a.alone.rows_per_s().max(0.001)
    );
    println!(
        "  behind when the writers stopped: {} row events (wraith's own queue: {} of {} binlog events; what does not fit waits unread in the binlog)",
        w.behind_at_end, w.queue_at_end, w.queue_capacity
    );
    match w.drain {
        Some(d) if w.unmatched == 0 => println!(
            "  back to zero after the writers stopped: {d:.1} s"
        ),
        Some(d) => println!(
            "  back to zero after the writers stopped: {d:.1} s (wraith then quiet; {} row events counted by the server were never binlogged: rolled back)",
            w.unmatched
        ),
        None => println!(
            "  back to zero after the writers stopped: not within {} s",
            settings.timeout.as_secs()
        ),
    }
    if let Some(b) = &a.backlog {
        println!(
            "  committed with wraith throttled: {:>6} row events/s ({} tps; wraith connected, applying nothing)",
            fig(b.committed.rows_per_s()),
            fig(b.committed.tps())
        );
        println!(
            "  wraith applying that backlog:  {:>8} row events/s ({} row events in {}, no writers running; {:.0}% of the server alone)",
            fig(b.rate()),
            b.backlog,
            b.drain.map_or("-".into(), |d| format!("{d:.1} s")),
            b.rate() * 100.0 / a.alone.rows_per_s().max(0.001)
        );
    }
    println!(
        "  CPU over the window: alone {}; with wraith {}",
        a.cpu_alone.line(),
        w.cpu.line()
    );
    println!(
        "  writers' retried errors (deadlocks, lock waits): {} alone, {} with wraith",
        a.alone.retried, w.committed.retried
    );
}

// ---- JSON -------------------------------------------------------------------------------------------

/// Every figure of the run, and the machine's, as one JSON document.
/// The server's ALTER row of the idle work at `size`.
fn native_alter(rows: &[ResultRow], size: Size) -> Option<&ResultRow> {
    rows.iter()
        .find(|r| r.name.starts_with(&format!("{}: ALTER", size.name())))
}

/// The default wraith run of the idle work at `size`.
fn default_wraith(rows: &[ResultRow], size: Size) -> Option<&ResultRow> {
    let name = format!("{}: wraith --execute", size.name());
    rows.iter().find(|r| r.name == name && r.skipped.is_none())
}

/// How the idle work's times grew from the bench's table size to the scale scenario's.
struct Scaling {
    /// The larger table's rows over the smaller's.
    rows: f64,
    /// The server's ALTER's time, and wraith's copy phase, at the larger size over the smaller.
    native: f64,
    wraith: f64,
    /// wraith's peak RSS on the larger table.
    peak_rss_mib: Option<f64>,
}

impl Scaling {
    fn of(rows: &[ResultRow]) -> Option<Scaling> {
        let ratio = |size: Size| -> Option<(f64, f64, f64, Option<f64>)> {
            let native = native_alter(rows, size)?;
            let wraith = default_wraith(rows, size)?;
            let (_, copy) = wraith.copy?;
            Some((
                wraith.rows as f64,
                native.wall.as_secs_f64(),
                copy,
                wraith.peak_rss_mib,
            ))
        };
        let (small_rows, small_native, small_copy, _) = ratio(Size::Idle)?;
        let (large_rows, large_native, large_copy, rss) = ratio(Size::Scale)?;
        Some(Scaling {
            rows: large_rows / small_rows.max(1.0),
            native: large_native / small_native.max(0.001),
            wraith: large_copy / small_copy.max(0.001),
            peak_rss_mib: rss,
        })
    }
}

fn results_json(
    settings: &Settings,
    machine: &Machine,
    rows: &[ResultRow],
    writers: Option<&WriterFigures>,
    applier: Option<&ApplierFigures>,
    all_ok: bool,
) -> serde_json::Value {
    use serde_json::json;
    let cpu =
        |c: &Cpu| json!({ "primary_s": c.primary, "replica_s": c.replica, "migrator_s": c.wraith });
    let committed = |c: &Committed| {
        json!({
            "seconds": c.seconds,
            "row_events": c.rows,
            "row_events_per_s": c.rows_per_s(),
            "transactions": c.transactions,
            "tps": c.tps(),
            "retried_errors": c.retried,
        })
    };
    json!({
        "bench": "wraith migrate",
        "started_utc": machine.started,
        "ok": all_ok,
        "machine": {
            "nproc": machine.cpus,
            "cpu_model": machine.cpu_model,
            "memory_mib": machine.memory_mib,
            "kernel": machine.kernel,
            "server_version": machine.server_version,
            "load_average_before": machine.load_before,
            "load_average_after": machine.load_after,
        },
        "settings": {
            "rows": settings.rows,
            "scale_rows": settings.runs("scale").then_some(settings.scale_rows),
            "wraith": settings.wraith.display().to_string(),
            "wraith_extra_args": settings.extra_args,
            "writers": match settings.load {
                LoadKind::Sysbench => "sysbench",
                LoadKind::Builtin => "builtin",
            },
            "threads": settings.threads,
            "rate": settings.rate,
            "warmup_s": settings.warmup.as_secs(),
            "applier_window_s": settings.applier_window.as_secs(),
            "buffer_pool": settings.buffer_pool,
            "durable": settings.durable,
            "apart": settings.apart,
            "server_args": settings.server_args,
            "gh_ost": settings.ghost.as_ref().map(|g| g.display().to_string()),
            "gh_ost_extra_args": settings.ghost_args,
        },
        "runs": rows.iter().map(|r| json!({
            "name": r.name,
            "skipped": r.skipped,
            "ok": r.ok,
            "check": r.check,
            "wall_s": r.skipped.is_none().then_some(r.wall.as_secs_f64()),
            "rows": r.rows,
            "rows_per_s": r.rows_per_s(),
            "copy_rows": r.copy.map(|c| c.0),
            "copy_s": r.copy.map(|c| c.1),
            "copy_rows_per_s": r.copy.map(|(n, s)| n as f64 / s.max(0.001)),
            "checksum_s": r.checksum,
            "writers_blocked_at_swap_s": r.blocked,
            "cpu": r.cpu.as_ref().map(cpu),
            "peak_rss_mib": r.peak_rss_mib,
        })).collect::<Vec<_>>(),
        "scale": Scaling::of(rows).map(|s| json!({
            "rows_factor": s.rows,
            "server_alter_time_factor": s.native,
            "wraith_copy_time_factor": s.wraith,
            "goal_time_factor": s.rows * 1.1,
            "wraith_peak_rss_mib": s.peak_rss_mib,
        })),
        "load": writers.map(|w| json!({
            "rate_tps": w.rate,
            "before_tps": w.before_tps,
            "during_tps": w.during_tps,
            "after_tps": w.after_tps,
            "p95_before_ms": w.p95_before_ms,
            "p95_during_ms": w.p95_during_ms,
            "p95_ratio": w.p95_during_ms / w.p95_before_ms,
            "p95_after_ms": w.p95_after_ms,
            "p95_hold_ms": w.p95_hold_ms,
            "p95_throttled_ms": w.p95_throttled_ms,
            "hold_s": settings.hold.as_secs(),
            "worst_p95_copy_ms": w.max_latency_copy_ms,
            "p95_copy_series_ms": w.p95_copy_series_ms,
            "pace_copy_series": w.pace_copy_series,
            "writes_copy_series_ms": w.writes_copy_series_ms,
            "limit_copy_series_ms": w.limit_copy_series_ms,
            "rows_copy_series": w.rows_copy_series,
            "lag_copy_series": w.lag_copy_series,
            "phases": w.phases.iter().map(|p| serde_json::json!({
                "phase": p.name,
                "seconds": p.seconds,
                "p95_median_ms": p.p95_median_ms,
                "p95_worst_ms": p.p95_worst_ms,
                "cores_primary": p.cores[0],
                "cores_replica": p.cores[1],
                "cores_machine": p.cores[2],
                "history_max": p.history_max,
            })).collect::<Vec<_>>(),
            "innodb_copy_series": w.innodb_copy_series.iter().map(|s| serde_json::json!({
                "at_s": s.at,
                "checkpoint_age_mb": s.checkpoint_age_mb,
                "pages_flushed": s.pages_flushed,
                "wait_free": s.wait_free,
                "history_length": s.history_length,
                "load1": s.load1,
                "cores_primary": s.cores_primary,
                "cores_replica": s.cores_replica,
                "cores_busy": s.cores_busy,
            })).collect::<Vec<_>>(),
            "worst_p95_cutover_ms": w.max_latency_cutover_ms,
            "catch_up_s": w.catch_up.map(|c| c.as_secs_f64()),
            "retried_errors": {
                "before": w.errors[0],
                "copy_and_catch_up": w.errors[1],
                "cut_over": w.errors[2],
                "after": w.errors[3],
            },
        })),
        "applier": applier.map(|a| json!({
            "threads": a.threads,
            "server_alone": committed(&a.alone),
            "cpu_alone": cpu(&a.cpu_alone),
            "with_wraith": a.window.as_ref().map(|w| json!({
                "committed": committed(&w.committed),
                "applied_row_events": w.applied,
                "applied_row_events_per_s": w.applied_per_s(),
                "applied_over_committed": w.applied_per_s() / w.committed.rows_per_s().max(0.001),
                "applied_over_server_alone": w.applied_per_s() / a.alone.rows_per_s().max(0.001),
                "behind_at_end_row_events": w.behind_at_end,
                "queue_at_end": w.queue_at_end,
                "queue_capacity": w.queue_capacity,
                "back_to_zero_s": w.drain,
                "unmatched_row_events": w.unmatched,
                "cpu": cpu(&w.cpu),
                "samples": w.samples.iter().map(|s| json!({
                    "at_s": s.at,
                    "committed": s.committed,
                    "applied": s.applied,
                    "queue": s.queue,
                })).collect::<Vec<_>>(),
            })),
            "throttled_then_backlog": a.backlog.as_ref().map(|b| json!({
                "committed_while_throttled": committed(&b.committed),
                "backlog_row_events": b.backlog,
                "applied_in_s": b.drain,
                "unmatched_row_events": b.unmatched,
                "applied_row_events_per_s": b.rate(),
                "applied_over_server_alone": b.rate() / a.alone.rows_per_s().max(0.001),
                "cpu_while_applying": cpu(&b.cpu),
            })),
        })),
    })
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
