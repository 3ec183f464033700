//! `cargo bench --bench migrate`: wraith against the server's own ALTER, on real MariaDB servers.
//!
//! In: the `wraith` binary of this package (built by `cargo bench` with the release-like `bench`
//! profile, or `WRAITH_BIN`), MariaDB's `mariadbd` (through `wraith::sandbox`), optionally
//! Debian's `sysbench`, and the `WRAITH_BENCH_*` environment variables listed in
//! `benches/README.md` (`WRAITH_BENCH_ROWS` sets the table size, default 1,000,000).
//!
//! Out: a results table on standard output, and exit code 0 when every run finished and every
//! check passed (1 otherwise). Two scenarios run on one throw-away primary/replica pair:
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
//!    writers must have ended cleanly, with no error ignored (deadlocks, lock wait timeouts).
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
    only: Option<String>,
}

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
        Ok(Settings {
            rows: num("WRAITH_BENCH_ROWS", 1_000_000u64)?.max(1),
            wraith,
            extra_args: var("WRAITH_BENCH_ARGS")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            load,
            threads: num("WRAITH_BENCH_THREADS", 4u32)?.max(1),
            rate: match var("WRAITH_BENCH_RATE").as_deref() {
                None | Some("auto") => None,
                Some(_) => Some(num("WRAITH_BENCH_RATE", 0u32)?),
            },
            warmup: Duration::from_secs(num("WRAITH_BENCH_WARMUP", 15u64)?),
            timeout: Duration::from_secs(num("WRAITH_BENCH_TIMEOUT", 900u64)?),
            buffer_pool: var("WRAITH_BENCH_BUFFER_POOL").unwrap_or_else(|| "1G".into()),
            only: var("WRAITH_BENCH_ONLY"),
        })
    }

    fn runs(&self, scenario: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == scenario)
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
            ServerSpec::new(name, id)
                .arg(&format!(
                    "--innodb-buffer-pool-size={}",
                    settings.buffer_pool
                ))
                .arg("--innodb-log-file-size=512M")
        };
        let (primary, replica) = tokio::try_join!(
            sandbox::start_server(spec("bench-primary", 1)),
            sandbox::start_server(spec("bench-replica", 2)),
        )?;
        sandbox::attach_replica(&replica, &primary).await?;
        Ok(Servers { primary, replica })
    }

    async fn sync(&self) -> Result<()> {
        sandbox::sync_replica(&self.primary, &self.replica).await
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
    println!("load average before (1/5/15 min): {}", load_average());
    println!(
        "servers: {version}, primary 127.0.0.1:{}, replica 127.0.0.1:{}, {} CPUs, buffer pool {}",
        servers.primary.port,
        servers.replica.port,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        settings.buffer_pool
    );

    let mut rows = Vec::new();
    let mut writers = None;
    let mut all_ok = true;
    if settings.runs("idle") {
        let idle = idle(settings, &servers).await?;
        all_ok &= idle.iter().all(|r| r.ok);
        rows.extend(idle);
    }
    if settings.runs("load") {
        let (row, w) = under_load(settings, &servers, clock).await?;
        all_ok &= row.ok;
        rows.push(row);
        writers = Some(w);
    }
    print_results(settings, &rows, writers.as_ref());
    println!("\nload average at the end (1/5/15 min): {}", load_average());
    drop(servers);
    Ok(all_ok)
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
    check: String,
    ok: bool,
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
    max_latency_copy_ms: f64,
    max_latency_cutover_ms: f64,
    /// From wraith's "row copy complete" line to its checksum's start (or, without one, to its
    /// "cutting over" line): the binlog catch-up.
    catch_up: Option<Duration>,
    /// Retried transactions before wraith, during its copy and catch-up, from its cut-over to a
    /// second after the swap, and later.
    errors: [f64; 4],
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

/// The largest peak resident memory of a waited-for child so far, in MiB (wraith's, as the
/// bench starts no other child before it in the idle run).
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
        format!(
            "cpu: primary {:.1}s, replica {:.1}s, wraith {:.1}s",
            self.primary, self.replica, self.wraith
        )
    }
}

// ---- scenario 1: idle ----------------------------------------------------------------------------

async fn idle(settings: &Settings, servers: &Servers) -> Result<Vec<ResultRow>> {
    let n = settings.rows;
    let mut c = servers.primary.conn().await?;
    println!("\n[idle] loading bench.orders with {n} rows ...");
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
    // The native ALTER's copy exists on the primary only (sql_log_bin=0): the replica has nothing
    // to do while wraith runs.
    c.query_drop("SET SESSION sql_log_bin = 0").await?;
    c.query_drop("CREATE TABLE bench.orders_native LIKE bench.orders")
        .await?;
    c.query_drop("INSERT INTO bench.orders_native SELECT * FROM bench.orders")
        .await?;
    servers.sync().await?;
    println!("[idle] loaded in {:.1}s", t.elapsed().as_secs_f64());

    println!("[idle] ALTER TABLE bench.orders_native {ADD_COLUMN}, ALGORITHM=COPY ...");
    let t = Instant::now();
    let cpu = Cpu::now(servers);
    c.query_drop(format!(
        "ALTER TABLE bench.orders_native {ADD_COLUMN}, ALGORITHM=COPY"
    ))
    .await?;
    let native_wall = t.elapsed();
    let native_cpu = Cpu::now(servers).since(cpu);
    println!(
        "[idle] native ALTER: {:.1}s; {}",
        native_wall.as_secs_f64(),
        native_cpu.line()
    );
    c.query_drop("SET SESSION sql_log_bin = 1").await?;

    println!("[idle] wraith --execute on bench.orders (reading the replica) ...");
    let args = wraith_args(settings, servers, "bench", "orders", &[]);
    let cpu = Cpu::now(servers);
    let run = Wraith::spawn(&settings.wraith, &args)?
        .finish(settings.timeout)
        .await;
    let wraith_cpu = Cpu::now(servers).since(cpu);
    run.print_summary("idle");
    println!(
        "[idle] wraith: {:.1}s; {}; wraith's peak RSS {:.0} MiB",
        run.wall.as_secs_f64(),
        wraith_cpu.line(),
        peak_rss_of_children_mib()
    );

    // Checks: the new table against the old one (counts) and against the natively altered copy.
    let mut check = Vec::new();
    let mut ok = run.ok && run.swapped_at.is_some();
    if ok {
        let new_rows = count(&mut c, "bench", "orders").await?;
        let old_rows = count(&mut c, "bench", "_orders_del").await?;
        let counts_ok = new_rows == n && old_rows == n;
        check.push(format!(
            "rows {new_rows}/{old_rows} {}",
            if counts_ok { "ok" } else { "DIFFER" }
        ));
        // The native copy exists on the primary only (it was made with sql_log_bin=0).
        let (line, same) = against_mirror(&mut c, "bench", "orders", "orders_native").await?;
        check.push(format!("native: {line}"));
        ok = counts_ok && same;
    } else {
        check.push(run.failure());
    }
    c.query_drop("DROP DATABASE bench").await?;
    servers.sync().await?;
    Ok(vec![
        ResultRow {
            name: "idle: ALTER ... ALGORITHM=COPY".into(),
            wall: native_wall,
            rows: n,
            copy: None,
            checksum: None,
            blocked: None,
            check: "(reference)".into(),
            ok: true,
        },
        ResultRow {
            name: "idle: wraith --execute".into(),
            wall: run.wall,
            rows: n,
            copy: run.copy,
            checksum: run.checksum,
            blocked: run.blocked,
            check: check.join(", "),
            ok,
        },
    ])
}

// ---- scenario 2: under write load -------------------------------------------------------------

async fn under_load(
    settings: &Settings,
    servers: &Servers,
    clock: Instant,
) -> Result<(ResultRow, WriterFigures)> {
    let n = settings.rows;
    let mut c = servers.primary.conn().await?;
    println!("\n[load] preparing sbtest.sbtest1 with {n} rows ...");
    let t = Instant::now();
    c.query_drop("CREATE DATABASE sbtest").await?;
    c.query_drop("USE sbtest").await?;
    match settings.load {
        LoadKind::Sysbench => sysbench_prepare(settings, &servers.primary).await?,
        LoadKind::Builtin => builtin_prepare(&mut c, n).await?,
    }
    // The mirror: the same rows, altered natively; the writers change it as they change sbtest1.
    c.query_drop("CREATE TABLE sbtest.sbtest1_mirror LIKE sbtest.sbtest1")
        .await?;
    c.query_drop(format!("ALTER TABLE sbtest.sbtest1_mirror {ADD_COLUMN}"))
        .await?;
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
    println!(
        "[load] writers started; warming up for {}s",
        settings.warmup.as_secs()
    );
    tokio::time::sleep(settings.warmup).await;

    println!("[load] wraith --execute on sbtest.sbtest1 under load ...");
    let args = wraith_args(settings, servers, "sbtest", "sbtest1", &[]);
    let run = Wraith::spawn(&settings.wraith, &args)?
        .finish(settings.timeout)
        .await;
    run.print_summary("load");
    // A few seconds of writes to the new table, then stop.
    tokio::time::sleep(Duration::from_secs(5)).await;
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
    // Without a swap there is no cut-over to look at: the windows are empty (NaN, printed "-").
    let (cut_from, cut_to) = match (run.swapped_at, run.blocked) {
        (Some(at), Some(b)) => (secs(at) - b, secs(at)),
        _ => (f64::INFINITY, f64::INFINITY),
    };
    let samples = &end.samples;
    let figures = WriterFigures {
        before_tps: mean_tps(samples, start - settings.warmup.as_secs_f64() + 2.0, start),
        during_tps: mean_tps(samples, start + 1.0, copy_end),
        after_tps: mean_tps(samples, cut_to + 1.0, cut_to + 5.0),
        rate,
        p95_before_ms: median_latency(samples, start - settings.warmup.as_secs_f64() + 2.0, start),
        p95_during_ms: median_latency(samples, start + 1.0, copy_end),
        max_latency_copy_ms: max_latency(samples, start, copy_end),
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
            check: check.join(", "),
            ok,
        },
        figures,
    ))
}

// ---- wraith as a child process ----------------------------------------------------------------

fn wraith_args(
    settings: &Settings,
    servers: &Servers,
    db: &str,
    table: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args = vec![
        "--host=127.0.0.1".to_string(),
        format!("--port={}", servers.replica.port),
        "--user=root".into(),
        format!("--database={db}"),
        format!("--table={table}"),
        format!("--alter={ADD_COLUMN}"),
        "--execute".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(settings.extra_args.iter().cloned());
    args
}

/// A running wraith: its output lines, each stamped when it arrived.
struct Wraith {
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
    /// Rows and seconds from "row copy complete: N rows in Xs".
    copy: Option<(u64, f64)>,
    /// Seconds from "checksum passed: N rows in M chunks compared in Xs".
    checksum: Option<f64>,
    /// Seconds from "tables swapped; writers were blocked for Xs", and when that line came.
    blocked: Option<f64>,
    swapped_at: Option<Instant>,
    lines: Vec<(Instant, String)>,
}

impl Wraith {
    fn spawn(bin: &std::path::Path, args: &[String]) -> Result<Wraith> {
        let mut child = Command::new(bin)
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
            child,
            started,
            lines_rx,
            lines: Vec::new(),
        })
    }

    /// Waits for wraith to exit (interrupting it after `timeout`) and reads what it said.
    async fn finish(mut self, timeout: Duration) -> WraithRun {
        let remaining = timeout.saturating_sub(self.started.elapsed());
        let exit = match tokio::time::timeout(remaining, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("wraith exited with {status}")),
            Ok(Err(e)) => Err(format!("waiting for wraith: {e}")),
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
                    "wraith did not finish within {}s (WRAITH_BENCH_TIMEOUT) and was interrupted",
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
            lines: self.lines,
        };
        for (at, line) in &run.lines {
            if let Some(rest) = after(line, "row copy complete: ") {
                // "N rows in Xs"
                let mut words = rest.split_whitespace();
                let rows = words.next().and_then(|w| w.parse().ok());
                let secs = words
                    .nth(2)
                    .and_then(|w| w.trim_end_matches('s').parse().ok());
                if let (Some(r), Some(s)) = (rows, secs) {
                    run.copy = Some((r, s));
                }
            }
            if let Some(rest) =
                after(line, "checksum passed: ").and_then(|r| after(r, "compared in "))
            {
                run.checksum = rest
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.trim_end_matches('s').parse().ok());
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
            "row copy complete",
            "checksum",
            "tables swapped",
            "cut-over",
            "ended:",
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
            "wraith exited 0 but never logged the swap".into()
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
                let stop = Arc::new(AtomicBool::new(false));
                let buckets = Arc::new(Mutex::new(BTreeMap::new()));
                let t0 = clock.elapsed().as_secs_f64();
                let start = Instant::now();
                let mut tasks = Vec::new();
                for i in 0..settings.threads {
                    let conn = primary.conn().await?;
                    tasks.push(tokio::spawn(builtin_writer(
                        conn,
                        settings.rows,
                        u64::from(i) + 1,
                        start,
                        stop.clone(),
                        buckets.clone(),
                    )));
                }
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

/// oltp_write_only's transaction, in a loop, made on `sbtest1` and with the same statements and
/// values on `sbtest1_mirror` (as `oltp_write_mirror.lua` does): update an indexed column, update
/// a non-indexed one, delete a row and insert it again. Deadlocks and lock waits are rolled back
/// and retried, as sysbench does, and counted. Returns that count.
async fn builtin_writer(
    mut conn: Conn,
    rows: u64,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    buckets: Buckets,
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
            ["sbtest1", "sbtest1_mirror"]
                .map(|t| statement.replace("{t}", t))
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

fn print_results(settings: &Settings, rows: &[ResultRow], writers: Option<&WriterFigures>) {
    println!("\nresults ({} rows):", settings.rows);
    println!(
        "{:<38} {:>9} {:>10} {:>22} {:>20} {:>10}  check",
        "run", "wall", "rows/s", "copy phase", "checksum", "cut-over"
    );
    for r in rows {
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
        println!(
            "{:<38} {:>8.1}s {:>10.0} {:>22} {:>20} {:>10}  {}",
            r.name,
            r.wall.as_secs_f64(),
            r.rows as f64 / r.wall.as_secs_f64().max(0.001),
            copy,
            checksum,
            blocked,
            r.check
        );
    }
    if let Some(w) = writers {
        let f = |v: f64| {
            if v.is_finite() {
                format!("{v:.0}")
            } else {
                "-".into()
            }
        };
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
        println!(
            "  p95 latency before wraith:     {:>8} ms (median of the 1 s intervals; --rate={})",
            f(w.p95_before_ms),
            w.rate
        );
        println!(
            "  p95 latency during the copy:   {:>8} ms ({:.2}x before)",
            f(w.p95_during_ms),
            w.p95_during_ms / w.p95_before_ms
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
