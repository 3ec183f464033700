//! Throttling: while a source says so, wraith neither copies rows nor applies binlog events to
//! the ghost table (gh-ost's throttle.md), says why, and finishes once the source lets go; the
//! critical load stops the run and leaves the original as it was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wraith::mysql::sql::qualified;
use wraith::throttle::pace;

use crate::compare::assert_migrated;
use crate::faults::postponed_with_env;
use crate::harness::{
    self, eventually, fresh_schema, migrate_args, primary_sql, servers, stderr, tables, Endpoint,
    Running, WRAITH_RUN_LIMIT,
};
use crate::memory::run_sql;
use crate::migrate::{by_id, setup as setup_migrated, small_values, SMALL, SMALL_COLUMNS};
use crate::writers::{Writers, PACE};

pub(crate) const ALTER: &str = "ADD COLUMN d INT";

/// A table of 3000 rows in a fresh schema, and a one-row table `gate` for throttle queries.
pub(crate) async fn setup(name: &str) -> String {
    let schema = fresh_schema(&format!("throttle_{name}")).await;
    primary_sql(
        &schema,
        &[
            SMALL,
            &small_rows(3000),
            "CREATE TABLE gate (id INT PRIMARY KEY)",
            "INSERT INTO gate VALUES (1)",
        ],
    )
    .await;
    schema
}

/// The statement that puts `rows` rows in `t` ([`setup`]'s 3000).
fn small_rows(rows: u64) -> String {
    format!(
        "INSERT INTO t (a, b) SELECT seq, CONCAT('r', seq) FROM {}",
        harness::seq(1, rows)
    )
}

/// [`setup`]'s table `t` of `rows` rows (without `gate`) in a fresh `schema` on a pair of the
/// test's own: created on `primary`, replicated to `replica`.
pub(crate) async fn setup_on_pair(primary: &Endpoint, replica: &Endpoint, schema: &str, rows: u64) {
    harness::fresh_schema_on(primary, schema).await;
    run_sql(primary, schema, &[SMALL.into(), small_rows(rows)]).await;
    harness::sync_replica_of(primary, replica).await;
}

/// [`harness::migrate_args_on`] for `schema`.`t` with [`ALTER`], reading `replica`, and `extra`.
pub(crate) fn args_on_pair(replica: &Endpoint, schema: &str, extra: &[String]) -> Vec<String> {
    let mut args = harness::migrate_args_on(replica, schema, "t", ALTER);
    args.extend_from_slice(extra);
    args
}

/// Asserts that every one of [`setup`]'s 3000 rows of `schema`.`t` on `primary` is there, in the
/// migrated table (the one with `d`).
pub(crate) async fn assert_all_rows_migrated(primary: &Endpoint, schema: &str) {
    let rows: Option<u64> = primary
        .conn()
        .await
        .query_first(format!(
            "SELECT COUNT(d IS NULL) FROM {}",
            qualified(schema, "t")
        ))
        .await
        .unwrap();
    assert_eq!(rows, Some(3000));
}

/// Starts wraith on `schema`.`t` with `flags`, waits until its data path runs (its heartbeat is
/// written), writes to `t`, and checks that after three seconds neither a copied row nor an
/// applied event is in the ghost table.
pub(crate) async fn start_held(schema: &str, flags: &[&str]) -> Running {
    let args = migrate_args(schema, "t", ALTER, flags);
    let mut wraith = Running::start(&args);
    let mut c = servers().primary.conn().await;
    let heartbeat = format!(
        "SELECT COUNT(*) FROM {} WHERE hint = 'heartbeat'",
        qualified(schema, "_t_ghc")
    );
    eventually(
        "wraith's heartbeat (its data path runs), or its end",
        Duration::from_secs(60),
        async || {
            wraith.exited() || c.query_first::<u64, _>(&heartbeat).await.ok().flatten() > Some(0)
        },
    )
    .await;
    if wraith.exited() {
        let out = wraith.finish(Duration::from_secs(5)).await;
        panic!("wraith ended before it was throttled:\n{}", stderr(&out));
    }
    c.query_drop(format!(
        "UPDATE {} SET a = a + 1 WHERE id <= 10",
        qualified(schema, "t")
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO {} (a, b) VALUES (-1, 'while throttled')",
        qualified(schema, "t")
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ghost: u64 = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {}",
            qualified(schema, "_t_gho")
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ghost, 0,
        "rows reached the ghost table while throttled (copied or applied)"
    );
    assert!(!wraith.exited(), "wraith ended while throttled");
    wraith
}

/// Waits for the released run, checks it said why it was throttled, and that `t` is the
/// natively altered mirror.
pub(crate) async fn finish_released(schema: &str, wraith: Running, reason: &str) {
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("throttled: {reason}")), "{err}");
    assert_altered_natively(schema).await;
}

/// `schema`.`t` (after the swap) equals the old table `_t_del` altered natively.
async fn assert_altered_natively(schema: &str) {
    primary_sql(
        schema,
        &[
            "CREATE TABLE mirror LIKE _t_del",
            "INSERT INTO mirror SELECT * FROM _t_del",
            &format!("ALTER TABLE mirror {ALTER}"),
        ],
    )
    .await;
    assert_migrated(schema, &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_flag_file_holds_the_copy_and_the_applier_until_it_is_removed() {
    let schema = setup("flag_file").await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("throttle");
    std::fs::write(&flag, "").unwrap();
    let wraith = start_held(
        &schema,
        &[&format!("--throttle-flag-file={}", flag.display())],
    )
    .await;
    std::fs::remove_file(&flag).unwrap();
    finish_released(&schema, wraith, "flag-file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_query_returning_non_zero_holds_the_migration() {
    let schema = setup("query").await;
    let query = format!(
        "--throttle-query=SELECT COUNT(*) FROM {}",
        qualified(&schema, "gate")
    );
    let wraith = start_held(&schema, &[&query]).await;
    primary_sql(&schema, &["DELETE FROM gate"]).await;
    finish_released(&schema, wraith, "throttle-query").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_http_endpoint_holds_the_migration_until_it_answers_200() {
    let schema = setup("http").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = Arc::new(AtomicBool::new(true));
    let server_hold = hold.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let answer: &[u8] = if server_hold.load(Ordering::Relaxed) {
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            let _ = s.write_all(answer).await;
        }
    });
    let url = format!("--throttle-http=http://127.0.0.1:{port}/throttle");
    let wraith = start_held(&schema, &[&url, "--throttle-http-interval-millis=100"]).await;
    hold.store(false, Ordering::Relaxed);
    finish_released(&schema, wraith, "throttle-http").await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_load_throttles_while_a_status_variable_reaches_its_threshold() {
    // Threads_running counts the query that reads it: at least 1, always.
    let schema = setup("max_load").await;
    let wraith = start_held(&schema, &["--max-load=Threads_running=1"]).await;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(wraith.pid() as i32, libc::SIGTERM) };
    let out = wraith.finish(Duration::from_secs(60)).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("throttled: max-load Threads_running="),
        "{err}"
    );
    assert_eq!(tables(&servers().primary, &schema).await, vec!["gate", "t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn critical_load_met_twice_stops_the_migration_and_leaves_the_table_untouched() {
    let schema = setup("critical").await;
    let before = harness::table_checksum(&servers().primary, &schema, "t").await;
    // Held by a flag file (never removed), so the run is surely mid-way when the load is checked.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("throttle");
    std::fs::write(&flag, "").unwrap();
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--critical-load=Threads_running=1",
            "--critical-load-interval-millis=200",
            &format!("--throttle-flag-file={}", flag.display()),
        ],
    );
    let out = Running::start(&args).finish(Duration::from_secs(120)).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("critical-load met (Threads_running="),
        "the error names the critical load: {err}"
    );
    assert!(err.contains("met again after 200 ms"), "{err}");
    assert!(err.contains("no helper tables were left behind"), "{err}");
    assert_eq!(tables(&servers().primary, &schema).await, vec!["gate", "t"]);
    assert_eq!(
        harness::table_checksum(&servers().primary, &schema, "t").await,
        before
    );
}

/// Migrates a table of 50,000 rows, copied in chunks of 10 so the copy is still going after
/// whatever the pacer does, while the primary's writes are slowed (see [`slow_the_heartbeat`])
/// from the copy's start until the status line has shown each pace of `paces` in turn; wraith
/// starts held by a flag file, so the pacer's baseline is taken before the writes are slowed.
/// Asserts that the run succeeds with the natively altered table, and returns its log.
async fn migrate_under_slowed_writes(name: &str, paces: &[f64]) -> String {
    let schema = setup(name).await;
    primary_sql(
        &schema,
        &[&format!(
            "INSERT INTO t (a, b) SELECT seq, CONCAT('p', seq) FROM {}",
            harness::seq(1, 50_000)
        )],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("throttle");
    std::fs::write(&flag, "").unwrap();
    let wraith = start_held(
        &schema,
        &[
            &format!("--throttle-flag-file={}", flag.display()),
            "--chunk-size=10",
        ],
    )
    .await;
    let slowing = Arc::new(AtomicBool::new(true));
    let slow = slow_the_heartbeat(&schema, slowing.clone());
    std::fs::remove_file(&flag).unwrap();
    let socket = crate::control::socket(&schema);
    for pace in paces {
        crate::control::until_sup_says(&socket, &format!("; Paced: {pace:.1}x")).await;
    }
    slowing.store(false, Ordering::Relaxed);
    slow.await.unwrap();
    let out = wraith.finish(harness::WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_altered_natively(&schema).await;
    err
}

/// Makes the primary's writes slow for a reason that is not the copy: holds the heartbeat row's
/// lock 50 ms at a time, and writes the table between (the application writes it, so the pacer
/// protects somebody), until `slowing` is false or the run has ended (the changelog is gone).
fn slow_the_heartbeat(schema: &str, slowing: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let lock = format!(
        "SELECT id FROM {} WHERE id = 1 FOR UPDATE",
        qualified(schema, "_t_ghc")
    );
    let write = format!(
        "UPDATE {} SET a = a + 1 WHERE id = 7",
        qualified(schema, "t")
    );
    tokio::spawn(async move {
        let mut c = servers().primary.conn().await;
        while slowing.load(Ordering::Relaxed) {
            c.query_drop("BEGIN").await.unwrap();
            if c.query_drop(&lock).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.query_drop("COMMIT").await.unwrap();
            if c.query_drop(&write).await.is_err() {
                return;
            }
        }
    })
}

/// Pacing (`--pace-latency-ratio`, on by default): when the primary's writes take much longer
/// than before the copy began while the application writes the table, the copy rests between
/// chunks and says so, and stops resting once they are fast again; every row still arrives.
/// The writes are slowed until the status line shows the copy resting the most it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_writes_on_the_primary_pace_the_copy_until_they_are_fast_again() {
    let err = migrate_under_slowed_writes("paced", &[pace::MAX_PACE]).await;
    assert!(
        err.contains("before the copy (median of"),
        "the baseline is said: {err}"
    );
    assert!(
        err.contains("pacing the copy: the primary's writes take"),
        "{err}"
    );
    assert!(err.contains("the copy is no longer paced"), "{err}");
}

/// Writes that stay slow while the copy rests the most it does are not the copy's doing (on a
/// busy server, another job's): after a while they are the pacer's baseline, the copy works
/// again while they last (the status line shows the slow start from the new baseline) instead
/// of at a twentieth of its speed to the end, and once they are fast again the baseline falls
/// with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_slowed_by_something_else_than_the_copy_do_not_hold_it_at_its_slowest() {
    let err = migrate_under_slowed_writes("ambient", &[pace::MAX_PACE, pace::START_PACE]).await;
    assert!(
        err.contains("that is the server's latency, not the copy's; it is the baseline now"),
        "{err}"
    );
    assert!(
        err.contains("the primary's writes are faster again"),
        "the baseline falls back once the writes are fast: {err}"
    );
}

/// wraith runs every thread at its `--cpu-nice`, so that the servers on its host get the cores
/// before its binlog reader, applier and copy (all but the heartbeat's, whose timing paces the
/// copy as the application feels the primary); while it holds the lock on the original table
/// (here the atomic cut-over's, where wraith stops itself) the writers wait for it, and it runs
/// at the priority it was started with. Where the system would not let it raise its priority
/// again (not root, no CAP_SYS_NICE or RLIMIT_NICE), it keeps its priority throughout and says
/// so. The table is migrated whole either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wraith_runs_at_its_cpu_nice_and_at_its_own_priority_while_it_holds_the_lock() {
    let Niced {
        schema,
        writers,
        ours,
        may_raise,
        lowered,
    } = niced("cpu_nice").await;
    let args = migrate_args(&schema, "t", ALTER, &["--cpu-nice=7"]);
    let (running, flag) = postponed_with_env(
        &schema,
        args,
        &[("WRAITH_FAILPOINT", "atomic:locked:sigstop")],
    )
    .await;
    let pid = running.pid();
    // Postponed, past the checksum's lock: every thread at the nice value asked for, but the
    // heartbeat's, which times the primary's writes for the pacer as the application feels them.
    assert_eq!(
        threads_at(pid, false),
        vec![lowered],
        "wraith's threads' nice values while postponed: {:?}",
        threads(pid)
    );
    assert_eq!(
        threads_at(pid, true),
        vec![ours],
        "the heartbeat's thread's nice value"
    );
    drop(flag);
    eventually(
        "wraith to stop itself holding the cut-over's lock",
        Duration::from_secs(60),
        async || crate::revert::stopped(pid),
    )
    .await;
    assert_eq!(
        threads_at(pid, false),
        vec![ours],
        "wraith's threads' nice values under the lock: {:?}",
        threads(pid)
    );
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let err = finished_niced(running, writers, &schema).await;
    let said = if may_raise {
        format!("wraith runs at nice {lowered} (--cpu-nice)")
    } else {
        format!("wraith keeps its priority (nice {ours})")
    };
    assert!(err.contains(&said), "{err}");
}

/// A wraith at its `--cpu-nice` that falls behind the binlog (here throttled while the writers
/// write) runs at the priority it was started with until it has caught up, then at its
/// `--cpu-nice` again: on a host the writers saturate, at nice 19 it would get too few of the
/// cores to ever catch up. The table is migrated whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wraith_behind_the_binlog_runs_at_its_own_priority_until_it_has_caught_up() {
    let Niced {
        schema,
        writers,
        ours,
        may_raise,
        lowered,
    } = niced("cpu_nice_lag").await;
    let dir = tempfile::tempdir().unwrap();
    let throttle = dir.path().join("throttle");
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--cpu-nice=7",
            &format!("--throttle-flag-file={}", throttle.display()),
        ],
    );
    let (running, flag) = postponed_with_env(&schema, args, &[]).await;
    let pid = running.pid();
    assert_eq!(threads_at(pid, false), vec![lowered], "{:?}", threads(pid));
    // Throttled, wraith applies nothing while the writers write: its lag grows past a second.
    std::fs::write(&throttle, b"").unwrap();
    eventually(
        "wraith, behind the binlog, at the priority it was started with",
        Duration::from_secs(30),
        async || threads_at(pid, false) == vec![ours],
    )
    .await;
    std::fs::remove_file(&throttle).unwrap();
    eventually(
        "wraith, caught up, at its --cpu-nice again",
        Duration::from_secs(30),
        async || threads_at(pid, false) == vec![lowered],
    )
    .await;
    drop(flag);
    let err = finished_niced(running, writers, &schema).await;
    if may_raise {
        assert!(err.contains("behind the binlog it reads: at nice"), "{err}");
        assert!(err.contains("caught up with the binlog"), "{err}");
    }
}

/// A replica behind the primary delivers the binlog late, and wraith, reading it, is as late;
/// a higher priority cannot shorten that lag, only take cores from the replica catching up. So a
/// lag that is the inspected replica's own leaves wraith at its `--cpu-nice` (here replication
/// stopped on the replica wraith reads while its cut-over is postponed); the run finishes once
/// replication is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lag_that_is_the_replica_s_own_leaves_wraith_at_its_cpu_nice() {
    let Some((primary, replica)) = harness::own_pair("cpu-nice-replica-lag", &[]) else {
        return;
    };
    let schema = "cpu_nice_replica_lag".to_string();
    setup_on_pair(&primary, &replica, &schema, 3000).await;
    let lowered = if may_raise_priority() {
        7.max(nice_of(std::process::id()).expect("the test's own nice value"))
    } else {
        return;
    };
    let postpone = tempfile::NamedTempFile::new().unwrap();
    let sock = crate::control::socket(&schema);
    let args = args_on_pair(
        &replica,
        &schema,
        &[
            "--cpu-nice=7".into(),
            format!(
                "--postpone-cut-over-flag-file={}",
                postpone.path().display()
            ),
        ],
    );
    let wraith = Running::start(&args);
    let pid = wraith.pid();
    crate::control::until_sup_says(&sock, "State: postponing cut-over").await;
    assert_eq!(threads_at(pid, false), vec![lowered], "{:?}", threads(pid));
    let flavor = replica.flavor().await;
    let mut r = replica.conn().await;
    r.query_drop(flavor.stop_replication_sql()).await.unwrap();
    let stale = format!(
        "SELECT UNIX_TIMESTAMP(NOW(6)) - value > 3 FROM {} WHERE hint = 'heartbeat'",
        qualified(&schema, "_t_ghc")
    );
    // Over three seconds of the replica's lag, wraith never leaves its --cpu-nice.
    let (mut seen, since) = (Vec::new(), std::time::Instant::now());
    while r.query_first::<bool, _>(&stale).await.unwrap() != Some(true) {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the replica's heartbeat did not fall 3 s behind in a minute"
        );
        seen.push(threads_at(pid, false));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.push(threads_at(pid, false));
    assert!(
        seen.iter().all(|nices| *nices == vec![lowered]),
        "wraith's threads' nice values while the replica fell behind: {seen:?}"
    );
    r.query_drop(flavor.start_replication_sql()).await.unwrap();
    drop(postpone);
    let out = wraith.finish(WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("behind the binlog it reads"), "{err}");
    assert_all_rows_migrated(&primary, &schema).await;
}

/// A table migrated at `--cpu-nice=7` while writers write it, and the nice values to expect.
struct Niced {
    schema: String,
    writers: Writers,
    /// The test's own nice value: wraith's when it started.
    ours: i32,
    /// Whether wraith may raise its priority again, so lowers it.
    may_raise: bool,
    /// The nice value wraith's threads run at: 7, where it may lower it.
    lowered: i32,
}

async fn niced(name: &str) -> Niced {
    let schema = fresh_schema(name).await;
    setup_migrated(&schema, SMALL, ALTER, 1_000, &SMALL_COLUMNS, small_values).await;
    let workload = by_id(&schema, small_values).await;
    let writers = Writers::start(&servers().primary, &schema, workload, 2, PACE * 2).await;
    let ours = nice_of(std::process::id()).expect("the test's own nice value");
    let may_raise = may_raise_priority();
    let lowered = if may_raise { 7.max(ours) } else { ours };
    Niced {
        schema,
        writers,
        ours,
        may_raise,
        lowered,
    }
}

/// Waits for a [`niced`] run to end, and asserts that it succeeded while the writers wrote and
/// that `t` equals its mirror; returns wraith's log.
async fn finished_niced(running: Running, writers: Writers, schema: &str) -> String {
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let err = stderr(&out);
    assert!(out.status.success(), "wraith failed: {err}");
    let stats = writers.stop().await;
    assert!(
        !stats.commits.is_empty(),
        "the writers wrote during the run"
    );
    assert_migrated(schema, &["id"]).await;
    err
}

/// The distinct nice values of `pid`'s threads: the heartbeat's (`heartbeat`), or the
/// others.
fn threads_at(pid: u32, heartbeat: bool) -> Vec<i32> {
    let mut nices: Vec<i32> = threads(pid)
        .into_iter()
        .filter(|(name, _)| (name == "heartbeat") == heartbeat)
        .filter_map(|(_, nice)| nice)
        .collect();
    nices.sort();
    nices.dedup();
    nices
}

/// `pid`'s threads: each one's name and nice value.
fn threads(pid: u32) -> Vec<(String, Option<i32>)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("wraith's threads")
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<u32>().ok())
        .map(|tid| {
            let name =
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
            (name.trim().to_string(), nice_of_task(pid, tid))
        })
        .collect()
}

/// A process's (its main thread's) nice value.
fn nice_of(pid: u32) -> Option<i32> {
    nice_of_task(pid, pid)
}

/// Field 19 of `/proc/<pid>/task/<tid>/stat`.
fn nice_of_task(pid: u32, tid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(16)?.parse().ok()
}

/// Whether a process of this user may lower a thread's nice value (root, CAP_SYS_NICE or
/// RLIMIT_NICE): tried on a thread of its own.
fn may_raise_priority() -> bool {
    std::thread::spawn(|| {
        // SAFETY: setpriority on this (new) thread only; plain integers.
        unsafe {
            let own = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, own + 1) == 0
                && libc::setpriority(libc::PRIO_PROCESS, 0, own) == 0
        }
    })
    .join()
    .unwrap()
}
