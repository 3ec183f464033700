//! Honest verification and bounded memory.
//!
//! - The demo's verdict (`wraith::demo::verify_against_mirror`, through `wraith::verify`) sees a
//!   row deleted from the migrated table behind its back, a row missing from the mirror, and a
//!   changed value.
//! - Rows of 32 MB (LONGBLOB) updated while wraith copies and applies them: the migration
//!   finishes, the table equals its natively altered mirror, and wraith's peak RSS is printed.
//! - On servers whose `max_allowed_packet` is 4 MB (MySQL 5.7's default), bulk writes replayed
//!   with `--dml-batch-size=100`: every statement and round trip fits the packet; a row whose
//!   statement cannot fit stops the migration with a message that names the setting to raise.
//!
//! Run with `--nocapture` to see the peak RSS figures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use wraith::mysql::sql::quote_ident;

use crate::compare::{definition, differences};
use crate::harness::{
    self, eventually, servers, stderr, tables, Endpoint, Running, WRAITH_RUN_LIMIT,
};

const ALTER: &str = "ADD COLUMN d INT NOT NULL DEFAULT 0";

// ---- the demo's verdict ---------------------------------------------------------------------

#[tokio::test]
async fn the_demos_check_reports_a_row_deleted_from_the_migrated_table_behind_its_back() {
    let schema = harness::fresh_schema("memory_demo_check").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
            &format!(
                "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM {}",
                harness::seq(1, 100)
            ),
            "CREATE TABLE mirror LIKE t",
            "INSERT INTO mirror SELECT * FROM t",
        ],
    )
    .await;
    let mut c = servers().primary.conn().await;
    let same = verdict(&mut c, &schema).await;
    assert!(same.is_ok(), "equal tables reported as different: {same:?}");

    // A row lost by the migrated table: only the mirror has it.
    c.query_drop(format!(
        "DELETE FROM {}.t WHERE id = 50",
        quote_ident(&schema)
    ))
    .await
    .unwrap();
    let lost = verdict(&mut c, &schema).await;
    let lines = lost.expect_err("a row deleted from the migrated table was not reported");
    assert!(
        lines.iter().any(|l| l.contains("1 ROWS DIFFER")),
        "{lines:?}"
    );

    // A row only the migrated table has, and a changed value: each is a differing row too.
    c.query_drop(format!(
        "DELETE FROM {s}.mirror WHERE id = 7; UPDATE {s}.t SET v = 'changed' WHERE id = 9",
        s = quote_ident(&schema)
    ))
    .await
    .unwrap();
    let lines = verdict(&mut c, &schema)
        .await
        .expect_err("differences were not reported");
    assert!(
        lines.iter().any(|l| l.contains("3 ROWS DIFFER")),
        "{lines:?}"
    );
}

/// The demo's verdict on `schema`.`t` against `schema`.`mirror`.
async fn verdict(c: &mut mysql_async::Conn, schema: &str) -> Result<String, Vec<String>> {
    wraith::demo::verify_against_mirror(c, "primary", schema, "t", "mirror", &["id"])
        .await
        .unwrap()
}

// ---- helpers --------------------------------------------------------------------------------

/// wraith's peak resident set (VmHWM, in KiB), sampled from /proc every 20 ms until it exits.
pub(crate) fn sample_peak_rss(pid: u32) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0u64;
        loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
            let hwm = status.as_deref().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            });
            match hwm {
                Some(kib) => peak = peak.max(kib),
                None => return peak,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// wraith's arguments to migrate `schema`.`t` with [`ALTER`], reading `replica`; cut-over
/// postponed while `postpone` exists.
fn args(
    replica: &Endpoint,
    schema: &str,
    postpone: &std::path::Path,
    extra: &[&str],
) -> Vec<String> {
    let mut a = harness::migrate_args_on(replica, schema, "t", ALTER);
    a.push(format!(
        "--postpone-cut-over-flag-file={}",
        postpone.display()
    ));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A flag file that exists until [`Postpone::release`].
struct Postpone(Option<tempfile::TempPath>);

impl Postpone {
    fn new() -> Postpone {
        Postpone(Some(
            tempfile::Builder::new()
                .prefix("wraith-memory-postpone-")
                .tempfile()
                .unwrap()
                .into_temp_path(),
        ))
    }
    fn path(&self) -> PathBuf {
        self.0.as_ref().map(|p| p.to_path_buf()).unwrap_or_default()
    }
    fn release(&mut self) {
        if let Some(p) = self.0.take() {
            p.close().unwrap();
        }
    }
}

/// `t` is defined as the mirror on `endpoint` and holds its rows byte for byte.
async fn assert_same_as_mirror(endpoint: &Endpoint, schema: &str) {
    assert_eq!(
        definition(endpoint, schema, "t").await,
        definition(endpoint, schema, "mirror").await,
        "t is not defined as the mirror on port {}",
        endpoint.port
    );
    let (count, samples) = differences(endpoint, schema, "t", "mirror", &["id"]).await;
    let short: Vec<String> = samples
        .iter()
        .map(|s| s.chars().take(200).collect())
        .collect();
    assert_eq!(
        count, 0,
        "t differs from the mirror on port {}: {short:?}",
        endpoint.port
    );
}

/// Runs `statements` on `endpoint` in `schema`.
pub(crate) async fn run_sql(endpoint: &Endpoint, schema: &str, statements: &[String]) {
    let mut c = endpoint.conn().await;
    c.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .unwrap();
    for s in statements {
        c.query_drop(s)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", &s[..s.len().min(200)]));
    }
}

/// How a [`Writer`] keeps the mirror.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MirrorWrites {
    /// In the same transaction as `t`, replicated: the mirror is on both servers.
    SameTransaction,
    /// Right after `t`'s transaction, not binlogged (`sql_log_bin = 0`): the mirror is on the
    /// primary only, and the changes must set absolute values (so order between the two tables
    /// does not matter). Halves what the servers replicate for rows of 32 MB.
    PrimaryOnly,
}

/// A writer making the same change to `t` and `mirror` over and over, until stopped:
/// `change(round)` gives the statements (with `{t}` for the table's name).
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    async fn start(
        endpoint: &Endpoint,
        schema: &str,
        mirror: MirrorWrites,
        pause: Duration,
        change: impl Fn(u64) -> Vec<String> + Send + 'static,
    ) -> Writer {
        let mut c = endpoint.conn().await;
        c.query_drop(format!(
            "USE {}; SET SESSION lock_wait_timeout = 30",
            quote_ident(schema)
        ))
        .await
        .unwrap();
        let (stop, commits) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let failures = Arc::new(AtomicU64::new(0));
        let (s, n, f) = (stop.clone(), commits.clone(), failures.clone());
        let transaction = move |tables: &[&str], statements: &[String]| {
            let mut text = String::from("START TRANSACTION");
            for table in tables {
                for statement in statements {
                    text.push_str(";\n");
                    text.push_str(&statement.replace("{t}", table));
                }
            }
            text + ";\nCOMMIT"
        };
        let task = tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut round = 0;
            while !s.load(Ordering::Relaxed) {
                let statements = change(round);
                let texts = match mirror {
                    MirrorWrites::SameTransaction => {
                        vec![transaction(&["t", "mirror"], &statements)]
                    }
                    MirrorWrites::PrimaryOnly => vec![
                        transaction(&["t"], &statements),
                        format!(
                            "SET SESSION sql_log_bin = 0; {}; SET SESSION sql_log_bin = 1",
                            transaction(&["mirror"], &statements)
                        ),
                    ],
                };
                for text in texts {
                    if let Err(e) = c.query_drop(&text).await {
                        let _ = c.query_drop("ROLLBACK; SET SESSION sql_log_bin = 1").await;
                        f.fetch_add(1, Ordering::Relaxed);
                        errors.push(e.to_string());
                    }
                }
                n.fetch_add(1, Ordering::Relaxed);
                round += 1;
                tokio::time::sleep(pause).await;
            }
            errors
        });
        Writer {
            stop,
            commits,
            failures,
            task,
        }
    }

    /// Rounds made.
    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The writer failed (its errors come with [`Writer::stop`]).
    fn failed(&self) -> bool {
        self.failures.load(Ordering::Relaxed) > 0
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Waits until wraith's ghost table exists in `schema` on `primary` (or wraith has ended).
async fn ghost_exists(primary: &Endpoint, schema: &str, wraith: &mut Running) {
    eventually("the ghost table", Duration::from_secs(120), async || {
        wraith.exited()
            || tables(primary, schema)
                .await
                .contains(&"_t_gho".to_string())
    })
    .await;
}

// ---- 32 MB rows -----------------------------------------------------------------------------

const MIB: u64 = 1 << 20;
/// Rows of 32 MB among small ones, spread over the key range so the copy meets them one by one.
const BIG_IDS: [u64; 3] = [500, 1500, 2500];
const BIG_ROW: u64 = 32 * MIB;
/// Updates of big rows made while the ghost table exists (each carries two images of 32 MB
/// through the binlog); small rows are updated with them and after them.
const BIG_UPDATES: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn longblob_rows_of_32_mb_updated_while_copied_migrate_and_wraiths_peak_rss_is_reported() {
    let started = Instant::now();
    let schema = harness::fresh_schema("memory_big_rows").await;
    let s = servers();
    let (primary, replica) = (&s.primary, &s.replica);
    let mut setup = vec![
        "CREATE TABLE t (id INT UNSIGNED NOT NULL PRIMARY KEY, n INT NOT NULL, b LONGBLOB NULL) ENGINE=InnoDB".to_string(),
        format!(
            "INSERT INTO t SELECT seq, 0, REPEAT('s', 200) FROM {}",
            harness::seq(1, 3000)
        ),
    ];
    for (i, id) in BIG_IDS.iter().enumerate() {
        setup.push(format!(
            "UPDATE t SET b = REPEAT(CHAR({}), {BIG_ROW}) WHERE id = {id}",
            97 + i
        ));
    }
    // The mirror lives on the primary only (see [`MirrorWrites::PrimaryOnly`]).
    setup.extend([
        "SET SESSION sql_log_bin = 0".to_string(),
        "CREATE TABLE mirror LIKE t".to_string(),
        format!("ALTER TABLE mirror {ALTER}"),
        "INSERT INTO mirror (id, n, b) SELECT id, n, b FROM t".into(),
    ]);
    run_sql(primary, &schema, &setup).await;
    harness::sync_replica_of(primary, replica).await;
    println!(
        "32 MB rows: set up in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let mut postpone = Postpone::new();
    let mut wraith = Running::start(&args(
        replica,
        &schema,
        &postpone.path(),
        &["--chunk-size=100"],
    ));
    let peak = sample_peak_rss(wraith.pid());
    ghost_exists(primary, &schema, &mut wraith).await;
    println!(
        "32 MB rows: ghost table at {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // While the rows are copied: each of the first rounds rewrites one big row, every round a
    // few small ones, with absolute values.
    let writer = Writer::start(
        primary,
        &schema,
        MirrorWrites::PrimaryOnly,
        Duration::from_millis(200),
        |round| {
            let small = 1 + (round * 37) % 2900;
            let mut statements = vec![format!(
                "UPDATE {{t}} SET n = {round}, b = REPEAT('{}', 300) WHERE id BETWEEN {small} AND {}",
                (b'a' + (round % 26) as u8) as char,
                small + 20
            )];
            if round < BIG_UPDATES {
                let id = BIG_IDS[(round % BIG_IDS.len() as u64) as usize];
                statements.push(format!(
                    "UPDATE {{t}} SET n = {round}, b = REPEAT(CHAR({}), {BIG_ROW}) WHERE id = {id}",
                    65 + round % 26
                ));
            }
            statements
        },
    )
    .await;
    eventually(
        "the big-row updates",
        Duration::from_secs(240),
        async || wraith.exited() || writer.failed() || writer.commits() >= BIG_UPDATES + 5,
    )
    .await;
    postpone.release();
    println!(
        "32 MB rows: cut-over allowed at {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let out = wraith.finish(WRAITH_RUN_LIMIT).await;
    let errors = writer.stop().await;
    let peak_kib = peak.await.unwrap();
    println!(
        "32 MB rows: wraith ended at {:.1}s; its peak RSS (VmHWM) {:.0} MiB, for rows of {} MiB",
        started.elapsed().as_secs_f64(),
        peak_kib as f64 / 1024.0,
        BIG_ROW / MIB,
    );
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert!(errors.is_empty(), "the writer failed: {errors:?}");
    assert_same_as_mirror(primary, &schema).await;
    // Bounded: a handful of copies of the largest event (two images of a 32 MB row: the
    // packet, its decoded images, the statement and the driver's buffers), not one per event
    // in flight. Measured here: 437 MiB; 946 MiB before the sizes were bounded.
    assert!(
        peak_kib < 768 * 1024,
        "wraith's peak RSS was {peak_kib} KiB for rows of 32 MB"
    );
}

// ---- 4 MB packets ---------------------------------------------------------------------------

/// A primary and replica whose `max_allowed_packet` is 4 MB; `None` against MySQL
/// ([`harness::own_pair`]).
fn four_mb_pair() -> Option<(Endpoint, Endpoint)> {
    harness::own_pair("memory-4m", &["--max-allowed-packet=4M"])
}

/// Transactions of 1,500 rows in the bulk test.
const BULK_ROUNDS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_writes_with_a_4_mb_packet_and_dml_batch_size_100_migrate() {
    let Some((primary, replica)) = four_mb_pair() else {
        return;
    };
    let schema = "memory_bulk".to_string();
    harness::fresh_schema_on(&primary, &schema).await;
    run_sql(
        &primary,
        &schema,
        &[
            "CREATE TABLE t (id INT UNSIGNED NOT NULL PRIMARY KEY, n INT NOT NULL, pad VARCHAR(2000) NOT NULL) ENGINE=InnoDB".into(),
            format!(
                "INSERT INTO t SELECT seq, 0, REPEAT('p', 1500) FROM {}",
                harness::seq(1, 4000)
            ),
            "CREATE TABLE mirror LIKE t".into(),
            format!("ALTER TABLE mirror {ALTER}"),
            "INSERT INTO mirror (id, n, pad) SELECT id, n, pad FROM t".into(),
        ],
    )
    .await;
    harness::sync_replica_of(&primary, &replica).await;

    let mut postpone = Postpone::new();
    let mut wraith = Running::start(&args(
        &replica,
        &schema,
        &postpone.path(),
        &["--dml-batch-size=100", "--chunk-size=500"],
    ));
    let peak = sample_peak_rss(wraith.pid());
    ghost_exists(&primary, &schema, &mut wraith).await;
    // While the ghost table exists: each of the first rounds rewrites 1,500 rows of 1.5 KB
    // (4.5 MB of binlog, 4.5 MB of hex literals) and moves a few, far more than one packet per
    // transaction; later rounds change a few rows, so the applier catches up.
    let writer = Writer::start(
        &primary,
        &schema,
        MirrorWrites::SameTransaction,
        Duration::from_millis(50),
        |round| {
            let from = 1 + (round * 1500) % 4000;
            let rows = if round < BULK_ROUNDS { 1500 } else { 10 };
            let c = (b'a' + (round % 26) as u8) as char;
            vec![
                format!(
                    "UPDATE {{t}} SET n = n + 1, pad = REPEAT('{c}', 1500) WHERE id BETWEEN {from} AND {}",
                    from + rows - 1
                ),
                format!(
                    "DELETE FROM {{t}} WHERE id BETWEEN {} AND {}",
                    10_000 + round * 5,
                    10_004 + round * 5
                ),
                format!(
                    "INSERT INTO {{t}} (id, n, pad) SELECT 10000 + {} + seq, {round}, REPEAT('{c}', 1900) FROM {}",
                    (round + 1) * 5,
                    harness::seq(0, 4)
                ),
            ]
        },
    )
    .await;
    eventually(
        "bulk writes while the ghost table exists",
        Duration::from_secs(120),
        async || wraith.exited() || writer.failed() || writer.commits() >= BULK_ROUNDS + 5,
    )
    .await;
    postpone.release();
    let out = wraith.finish(WRAITH_RUN_LIMIT).await;
    let errors = writer.stop().await;
    let peak_kib = peak.await.unwrap();
    println!(
        "4 MB packets, bulk writes: wraith's peak RSS (VmHWM) {:.0} MiB",
        peak_kib as f64 / 1024.0
    );
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert!(errors.is_empty(), "the writer failed: {errors:?}");
    harness::sync_replica_of(&primary, &replica).await;
    assert_same_as_mirror(&primary, &schema).await;
    assert_same_as_mirror(&replica, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_whose_statement_exceeds_the_packet_stops_the_migration_naming_max_allowed_packet() {
    let Some((primary, replica)) = four_mb_pair() else {
        return;
    };
    let schema = "memory_huge_row".to_string();
    harness::fresh_schema_on(&primary, &schema).await;
    run_sql(
        &primary,
        &schema,
        &[
            "CREATE TABLE t (id INT UNSIGNED NOT NULL PRIMARY KEY, b LONGBLOB NULL) ENGINE=InnoDB"
                .into(),
            format!(
                "INSERT INTO t SELECT seq, 'small' FROM {}",
                harness::seq(1, 100)
            ),
        ],
    )
    .await;
    harness::sync_replica_of(&primary, &replica).await;
    let mut postpone = Postpone::new();
    let wraith = Running::start(&args(&replica, &schema, &postpone.path(), &[]));
    // Written once the copy is over, the row can reach the new table only through the
    // applier's statement: written while the copy runs, it may be left to the copy
    // (`copy::CopyFront`), which moves it inside the server, where no packet limits it.
    crate::control::until_sup_says(
        &crate::control::socket(&schema),
        "State: postponing cut-over",
    )
    .await;
    // 3 MB fits the server's 4 MB packet; its hex literal (6 MB) cannot.
    run_sql(
        &primary,
        &schema,
        &["INSERT INTO t VALUES (1000, REPEAT('x', 3 * 1024 * 1024))".into()],
    )
    .await;
    let started = Instant::now();
    let out = wraith.finish(WRAITH_RUN_LIMIT).await;
    postpone.release();
    let err = stderr(&out);
    assert!(!out.status.success(), "wraith succeeded:\n{err}");
    // It says which setting to raise, and how, and does not retry what cannot succeed.
    assert!(
        err.contains("SET GLOBAL max_allowed_packet"),
        "the failure does not say to raise max_allowed_packet:\n{err}"
    );
    assert!(
        !err.contains("applying the batch again"),
        "wraith retried a statement that cannot fit:\n{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "wraith took {:?} to give up",
        started.elapsed()
    );
    // The original table is untouched and still has the row.
    let mut c = primary.conn().await;
    let n: Option<u64> = c
        .query_first(format!("SELECT COUNT(*) FROM {schema}.t"))
        .await
        .unwrap();
    assert_eq!(n, Some(101));
}
