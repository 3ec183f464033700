//! Faults at every step of both cut-overs, under writers: the connection holding the lock, the
//! one issuing the RENAME and the one proving the swap are killed, and wraith itself gets SIGKILL
//! or SIGTERM, at each point between two steps (wraith's debug-build failpoints,
//! `src/failpoint.rs`, fire once per run). After each fault:
//! - `t` exists and holds every committed write, the same rows byte for byte as the mirror the
//!   writers wrote in the same transactions (old or new schema: the ALTER only sets a comment);
//! - no lock remains: the writers commit again after wraith has ended;
//! - what wraith said is true: exit 0 means `t` is the migrated table; a failure says "WERE
//!   swapped" exactly when it is, and "untouched" exactly when it is not;
//! - a fresh run starts and migrates the table.
//!
//! The one exception is wraith killed (SIGKILL) between the two renames of the two-step swap:
//! `t` is then missing until the next run, which puts the original back first.
//!
//! Then the two-step swap meets a reader holding the ghost table past the lock timeout, and a
//! postponed cut-over meets connections the server closed while it waited.

use std::time::Duration;

use futures_util::future::join_all;
use mysql_async::prelude::Queryable;

use crate::compare::{assert_migrated, differences};
use crate::harness::{self, migrate_args, servers, stderr, tables, Running, WRAITH_RUN_LIMIT};
use crate::migrate::{by_id, changelog_state, setup, small_values, SMALL, SMALL_COLUMNS};
use crate::writers::{Writers, PACE};

/// The ALTER of every run here: visible in the table's comment, harmless to the rows.
const ALTER: &str = "COMMENT='migrated'";

const ATOMIC_POINTS: [&str; 6] = [
    "atomic:locked",
    "atomic:drained",
    "atomic:issued",
    "atomic:queued",
    "atomic:gated",
    "atomic:unlocked",
];

/// Points at which the RENAME connection exists.
const RENAME_POINTS: [&str; 4] = [
    "atomic:issued",
    "atomic:queued",
    "atomic:gated",
    "atomic:unlocked",
];

const TWO_STEP_POINTS: [&str; 4] = [
    "two-step:locked",
    "two-step:drained",
    "two-step:renamed-away",
    "two-step:unlocked",
];

const ACTIONS: [&str; 4] = ["kill-lock", "kill-proof", "sigkill", "sigterm"];

/// How many faulted runs go at once.
const AT_ONCE: usize = 4;

/// The pause between a faulted run's writers' transactions: the two matrices run side by side,
/// [`AT_ONCE`] runs each, and their sixteen writers together must stay within what the test
/// replica applies on a slow 2-core machine (at [`PACE`] times 2 they wrote 800 transactions a
/// second, the replica lagged past `--max-lag-millis` for minutes, and the runs waited throttled
/// until the test gave up on them). A writer still waits on every lock the cut-over holds.
const FAULTED_PACE: Duration = Duration::from_millis(80);

/// A fresh schema `t_<name>` holding `t` with `rows` rows and its mirror (altered with
/// [`ALTER`]), and two writers writing to both.
async fn table_with_writers(name: &str, rows: u64) -> (String, Writers) {
    table_with_writers_at(name, rows, PACE * 2).await
}

/// [`table_with_writers`] with the writers pausing `pace` between transactions.
async fn table_with_writers_at(name: &str, rows: u64, pace: Duration) -> (String, Writers) {
    let schema = harness::fresh_schema(name).await;
    setup(&schema, SMALL, ALTER, rows, &SMALL_COLUMNS, small_values).await;
    let workload = by_id(&schema, small_values).await;
    let writers = Writers::start(&servers().primary, &schema, workload, 2, pace).await;
    (schema, writers)
}

/// `t`'s table comment (None when `t` is missing).
async fn comment(schema: &str) -> Option<String> {
    let mut c = servers().primary.conn().await;
    c.exec_first(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
        (schema,),
    )
    .await
    .unwrap()
}

/// One faulted run and the checks after it. Returns a line for the log.
async fn faulted_run(n: usize, two_step: bool, point: &str, action: &str) -> String {
    let (schema, writers) = table_with_writers_at(&format!("fault_{n}"), 300, FAULTED_PACE).await;
    let primary = &servers().primary;
    assert!(
        writers.wait_for_commits(10, Duration::from_secs(60)).await,
        "{point} {action}: the writers did not start"
    );
    let mut extra = vec!["--default-retries=3", "--cut-over-lock-timeout-seconds=2"];
    if two_step {
        extra.push("--cut-over=two-step");
    }
    let args = migrate_args(&schema, "t", ALTER, &extra);
    let failpoint = format!("{point}:{action}");
    let began = std::time::Instant::now();
    let out = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", &failpoint)])
        .finish(WRAITH_RUN_LIMIT)
        .await;
    let took = began.elapsed();
    let log = stderr(&out);
    let what = format!("{failpoint} (exit {:?})", out.status.code());
    // Killed between the two renames of the two-step swap, nobody is left to rename the second:
    // `t` is missing until the next run puts the original back (the gap gh-ost's two-step has).
    let gap = out.status.code().is_none()
        && (point == "two-step:renamed-away" || point == "two-step:unlocked");
    // The next runs read the replica: it must have what the faulted run did.
    harness::sync_replica().await;
    if gap {
        assert_eq!(comment(&schema).await, None, "{what}: `t` exists\n{log}");
        let again = migrate_args(&schema, "t", ALTER, &["--initially-drop-ghost-table"]);
        let out = harness::run_wraith(&again).await;
        assert!(
            stderr(&out).contains("renamed it back"),
            "{what}: the next run did not put the original back:\n{}",
            stderr(&out)
        );
    }
    // No lock remains: the writers go on committing.
    let wrote_on = writers.wait_for_commits(10, Duration::from_secs(15)).await;
    let stats = writers.stop().await;
    assert!(
        wrote_on,
        "{what}: the writers could not write after wraith ended ({})\n{log}",
        stats.summary()
    );

    let migrated = match comment(&schema).await {
        Some(c) => c == "migrated",
        None => panic!(
            "{what}: `t` is missing; tables: {:?}\n{log}",
            tables(primary, &schema).await
        ),
    };
    let (count, samples) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert!(
        count == 0,
        "{what}: t differs from the mirror in {count} rows (migrated: {migrated}):\n{}\n{log}",
        samples.join("\n")
    );
    if gap {
        // Checked above: the next run restored the original and migrated it.
    } else if out.status.success() {
        assert!(
            migrated,
            "{what}: wraith succeeded but `t` is not migrated\n{log}"
        );
    } else if out.status.code().is_some() {
        assert_eq!(
            log.contains("WERE swapped"),
            migrated,
            "{what}: the message does not say truly whether the tables were swapped (migrated: {migrated})\n{log}"
        );
        assert_eq!(
            log.contains("untouched"),
            !migrated,
            "{what}: the message does not say truly whether the table is untouched (migrated: {migrated})\n{log}"
        );
    }

    // A fresh run starts and finishes.
    let again = migrate_args(
        &schema,
        "t",
        ALTER,
        &["--initially-drop-ghost-table", "--initially-drop-old-table"],
    );
    let out2 = harness::run_wraith(&again).await;
    assert!(
        out2.status.success(),
        "{what}: a fresh run after the fault failed:\n{}\nthe faulted run:\n{log}",
        stderr(&out2)
    );
    assert_eq!(
        comment(&schema).await.as_deref(),
        Some("migrated"),
        "{what}"
    );
    let (count, _) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(
        count, 0,
        "{what}: t differs from the mirror after the fresh run"
    );
    let left = tables(primary, &schema).await;
    assert!(
        !left.iter().any(|t| t == "_t_gho" || t == "_t_ghc"),
        "{what}: helper tables left after the fresh run: {left:?}"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
    format!(
        "{what} in {:.1}s: `t` migrated afterwards: {migrated}; writers {}",
        took.as_secs_f64(),
        stats.summary()
    )
}

/// Runs the faults `cases` a few at a time and prints what each did.
async fn run_cases(two_step: bool, cases: Vec<(&'static str, &'static str)>, first: usize) {
    for (i, batch) in cases.chunks(AT_ONCE).enumerate() {
        let runs = batch.iter().enumerate().map(|(j, (point, action))| {
            faulted_run(first + i * AT_ONCE + j, two_step, point, action)
        });
        for line in join_all(runs).await {
            eprintln!("{line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_at_any_step_of_the_atomic_cut_over_leaves_a_whole_table() {
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for point in ATOMIC_POINTS {
        for action in ACTIONS {
            cases.push((point, action));
        }
    }
    for point in RENAME_POINTS {
        cases.push((point, "kill-rename"));
    }
    run_cases(false, cases, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_at_any_step_of_the_two_step_cut_over_leaves_a_whole_table() {
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for point in TWO_STEP_POINTS {
        for action in ACTIONS {
            cases.push((point, action));
        }
    }
    run_cases(true, cases, 100).await;
}

/// Starts wraith with `extra` flags and the cut-over postponed; returns it once the changelog
/// says it is postponed, with the flag file (removing it lets the cut-over go).
pub(crate) async fn postponed(
    schema: &str,
    args: Vec<String>,
) -> (Running, tempfile::NamedTempFile) {
    postponed_with_env(schema, args, &[]).await
}

/// [`postponed`] with extra environment variables (a failpoint).
pub(crate) async fn postponed_with_env(
    schema: &str,
    args: Vec<String>,
    env: &[(&str, &str)],
) -> (Running, tempfile::NamedTempFile) {
    let flag = tempfile::NamedTempFile::new().unwrap();
    let mut args = args;
    args.push(format!(
        "--postpone-cut-over-flag-file={}",
        flag.path().display()
    ));
    let running = Running::start_with_env(&args, env);
    harness::eventually(
        "the changelog to record the postponed cut-over",
        Duration::from_secs(60),
        async || changelog_state(schema).await.as_deref() == Some("Postpone"),
    )
    .await;
    (running, flag)
}

/// A session in a transaction that has read `_t_gho`: it holds the ghost table's metadata lock
/// until it commits.
async fn reader_of_the_ghost(schema: &str) -> mysql_async::Conn {
    let mut reader = servers().primary.conn().await;
    reader
        .query_drop(format!(
            "START TRANSACTION; SELECT COUNT(*) FROM `{schema}`._t_gho"
        ))
        .await
        .unwrap();
    reader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_step_swap_blocked_by_a_reader_of_the_ghost_table_puts_the_original_back() {
    let (schema, writers) = table_with_writers("fault_reader", 1_000).await;
    let primary = &servers().primary;
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &["--cut-over=two-step", "--cut-over-lock-timeout-seconds=1"],
    );
    let (running, flag) = postponed(&schema, args).await;
    // A reader (a `mysqldump --single-transaction`, say) holds the ghost table for 4 s: longer
    // than the lock timeout, so the second RENAME of the two-step swap fails.
    let mut reader = reader_of_the_ghost(&schema).await;
    let holding = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        reader.query_drop("COMMIT").await.unwrap();
    });
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    holding.await.unwrap();
    let log = stderr(&out);
    assert!(
        !out.status.success(),
        "wraith swapped past the reader:\n{log}"
    );
    assert!(log.contains("renamed back"), "{log}");
    assert!(log.contains("untouched"), "{log}");
    assert!(
        writers.wait_for_commits(10, Duration::from_secs(15)).await,
        "the writers could not write after wraith ended\n{log}"
    );
    let stats = writers.stop().await;
    assert_eq!(
        comment(&schema).await.as_deref(),
        Some(""),
        "`t` is the original table\n{log}"
    );
    let (count, samples) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert!(count == 0, "t lost writes:\n{}\n{log}", samples.join("\n"));
    let left = tables(primary, &schema).await;
    assert!(
        left.iter().all(|t| t == "t" || t == "mirror"),
        "tables left: {left:?}\n{log}"
    );
    eprintln!("reader on the ghost: {}", stats.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_lost_before_the_rename_reaches_the_original_table_swaps_nothing() {
    // The RENAME takes its locks in order: `_t_del`, the ghost `_t_gho`, then `t`. Issued, it
    // must get the ghost's lock before it queues on `t`; a reader of the ghost table (a dump, a
    // monitoring query) holds it there. If the connection holding the lock on `t` dies
    // meanwhile, the writers of `t` go first, and the RENAME must then fail rather than swap
    // their writes away into `_t_del`, even once it is seen queued on `t` after them.
    let (schema, writers) = table_with_writers("fault_lost_lock", 1_000).await;
    let primary = &servers().primary;
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &["--cut-over-lock-timeout-seconds=5", "--default-retries=5"],
    );
    // wraith stops itself once its gate is open (its RENAME then free to go), until told to go on.
    let failpoint = [("WRAITH_FAILPOINT", "atomic:gated:sigstop")];
    let (running, flag) = postponed_with_env(&schema, args, &failpoint).await;
    let pid = running.pid();
    let mut reader = reader_of_the_ghost(&schema).await;
    drop(flag);
    let mut c = primary.conn().await;
    harness::eventually(
        "the cut-over to issue its RENAME",
        Duration::from_secs(60),
        async || {
            // This schema's RENAME (other tests' run at the same time).
            let renaming: Option<u64> = c
                .exec_first(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME /* wraith */ TABLE%' AND INFO LIKE ?",
                    (format!("%`{schema}`%"),),
                )
                .await
                .unwrap();
            renaming.is_some()
        },
    )
    .await;
    // The RENAME waits on the reader: the connection holding wraith's lock on `t` is killed, and
    // the writers write to `t`.
    let holding: Option<u64> = c
        .exec_first(
            "SELECT THREAD_ID FROM information_schema.METADATA_LOCK_INFO WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND LOCK_MODE LIKE '%NO_READ_WRITE%'",
            (&schema,),
        )
        .await
        .unwrap();
    let holding = holding.expect("wraith's lock on t");
    c.query_drop(format!("KILL CONNECTION {holding}"))
        .await
        .unwrap();
    assert!(
        writers.wait_for_commits(5, Duration::from_secs(10)).await,
        "the writers did not write once the lock's connection was killed"
    );
    // Then the RENAME gets the ghost and queues on `t`, behind a transaction that read it: seen
    // queued on `t` now, but after those writes, it must not be let through.
    let mut holder = primary.conn().await;
    holder
        .query_drop(format!(
            "START TRANSACTION; SELECT COUNT(*) FROM `{schema}`.t"
        ))
        .await
        .unwrap();
    reader.query_drop("COMMIT").await.unwrap();
    // Had wraith opened its gate (it stops there), the RENAME would go once `t` is free. It must
    // not get there: after a few seconds the holder lets `t` go either way.
    let started = std::time::Instant::now();
    while !crate::revert::stopped(pid) && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.query_drop("COMMIT").await.unwrap();
    // A later attempt stops at its own gate: let it go on, whenever it does.
    let resume = tokio::spawn(async move {
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            if crate::revert::stopped(pid) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // SAFETY: kill(2) on the child this test started.
                unsafe { libc::kill(pid as i32, libc::SIGCONT) };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    resume.abort();
    let log = stderr(&out);
    let stats = writers.stop().await;
    let (count, samples) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert!(
        count == 0,
        "t lost {count} writes made after the lock's connection died:\n{}\n{log}",
        samples.join("\n")
    );
    assert!(out.status.success(), "wraith failed:\n{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some("migrated"), "{log}");
    eprintln!("lock lost before the rename queued: {}", stats.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_over_after_the_server_closed_every_connection_of_wraith_succeeds() {
    // wraith logs in as a user of its own, so only its connections are closed.
    let user = "wraith_idle";
    let mut c = servers().primary.conn().await;
    c.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'idle'; \
         GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let (schema, writers) = table_with_writers("fault_idle", 1_000).await;
    harness::sync_replica().await;
    let args: Vec<String> = migrate_args(&schema, "t", ALTER, &[])
        .into_iter()
        .filter(|a| !a.starts_with("--user=") && !a.starts_with("--password="))
        .chain([format!("--user={user}"), "--password=idle".to_string()])
        .collect();
    let (running, flag) = postponed(&schema, args).await;
    // While it waits, the server ends every session of wraith on the primary, as it does with
    // sessions idle past `wait_timeout` (or MySQL 8 with error 4031).
    let ids: Vec<u64> = c
        .exec(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
            (user,),
        )
        .await
        .unwrap();
    assert!(!ids.is_empty(), "wraith has no session on the primary");
    for id in &ids {
        let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    assert!(
        writers.wait_for_commits(10, Duration::from_secs(15)).await,
        "the writers could not write after wraith ended\n{log}"
    );
    let stats = writers.stop().await;
    assert!(
        out.status.success(),
        "the cut-over failed after {} sessions were closed:\n{log}",
        ids.len()
    );
    assert_migrated(&schema, &["id"]).await;
    eprintln!(
        "{} sessions closed while postponed; writers {}",
        ids.len(),
        stats.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signal_while_the_cut_over_is_postponed_stops_cleanly() {
    for (signal, name) in [(libc::SIGTERM, "term"), (libc::SIGHUP, "hup")] {
        let schema = harness::fresh_schema(&format!("fault_postponed_{name}")).await;
        setup(&schema, SMALL, ALTER, 500, &SMALL_COLUMNS, small_values).await;
        let primary = &servers().primary;
        let before = harness::table_checksum(primary, &schema, "t").await;
        let (running, _flag) = postponed(&schema, migrate_args(&schema, "t", ALTER, &[])).await;
        // SAFETY: kill(2) on the child we started.
        unsafe { libc::kill(running.pid() as i32, signal) };
        let out = running.finish(Duration::from_secs(30)).await;
        let log = stderr(&out);
        assert!(!out.status.success(), "{name}: {log}");
        assert!(
            log.contains("cancelled") && log.contains("untouched"),
            "{name}: {log}"
        );
        assert_eq!(comment(&schema).await.as_deref(), Some(""), "{name}");
        assert_eq!(
            harness::table_checksum(primary, &schema, "t").await,
            before,
            "{name}"
        );
        let left = tables(primary, &schema).await;
        assert!(
            left.iter().all(|t| t == "t" || t == "mirror"),
            "{name}: tables left: {left:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_the_apply_loop_stops_the_run_and_cleans_up() {
    let (schema, writers) = table_with_writers("fault_panic", 500).await;
    let primary = &servers().primary;
    let args = migrate_args(&schema, "t", ALTER, &[]);
    let out = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "apply:batch:panic")])
        .finish(Duration::from_secs(60))
        .await;
    let stats = writers.stop().await;
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("apply loop panicked"), "{log}");
    assert!(log.contains("untouched"), "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some(""), "{log}");
    let (count, _) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(count, 0, "{log}");
    let left = tables(primary, &schema).await;
    assert!(
        left.iter().all(|t| t == "t" || t == "mirror"),
        "tables left: {left:?}\n{log}"
    );
    eprintln!("panic in the apply loop: writers {}", stats.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wraith_frozen_while_it_holds_the_lock_loses_the_lock_within_seconds() {
    let schema = harness::fresh_schema("fault_frozen").await;
    setup(&schema, SMALL, ALTER, 300, &SMALL_COLUMNS, small_values).await;
    let primary = &servers().primary;
    let args = migrate_args(&schema, "t", ALTER, &["--cut-over-lock-timeout-seconds=2"]);
    // wraith stops itself (SIGSTOP) right after LOCK TABLES: its connections stay open, as with
    // a hung process or a host cut off from the network.
    let running = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "atomic:locked:sigstop")]);
    let mut c = primary.conn().await;
    let pid = running.pid();
    harness::eventually("the cut-over's lock", Duration::from_secs(60), async || {
        crate::revert::stopped(pid)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A writer waits for the lock; the server must end the frozen lock session on its own.
    c.query_drop("SET SESSION lock_wait_timeout = 40")
        .await
        .unwrap();
    let asked = std::time::Instant::now();
    let wrote = c
        .query_drop(format!(
            "INSERT INTO `{schema}`.t (a, b) VALUES (-1, 'after the freeze')"
        ))
        .await;
    let waited = asked.elapsed();
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGKILL) };
    let out = running.finish(Duration::from_secs(30)).await;
    assert!(
        wrote.is_ok(),
        "the lock of the frozen wraith was still held after {waited:?}: {wrote:?}\n{}",
        stderr(&out)
    );
    eprintln!("the frozen wraith's lock was released after {waited:?}");
    assert_eq!(comment(&schema).await.as_deref(), Some(""));
    let again = migrate_args(
        &schema,
        "t",
        ALTER,
        &["--initially-drop-ghost-table", "--initially-drop-old-table"],
    );
    let out = harness::run_wraith(&again).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(comment(&schema).await.as_deref(), Some("migrated"));
    let n: Option<u64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM `{schema}`.t WHERE b = 'after the freeze'"
        ))
        .await
        .unwrap();
    assert_eq!(
        n,
        Some(1),
        "the row written after the freeze is in the migrated table"
    );
}

/// The lag a lock was taken "anyway" at, from the log's `locking anyway (lag 1.234s)` lines.
fn lags_locked_anyway(log: &str) -> Vec<f64> {
    log.split("locking anyway (lag ")
        .skip(1)
        .filter_map(|rest| rest.split('s').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_built_while_throttled_is_applied_before_the_lock_not_under_it() {
    backlog_then_cut_over("fault_backlog", &[]).await;
}

/// The same backlog, applied in batches of up to 5,000 events (50 times `--dml-batch-size`
/// while a backlog waits; the streamer's queue of 1,000 binlog events bounds them first): while
/// a batch is applied no heartbeat comes back, and the lag last heard of stands still. Seen in
/// CI: a lag of 2.441 s that "did not fall" over 3 s was locked over and the lock held the
/// writers its whole 2.5 s for nothing; and, in a run by hand, a heartbeat read before a batch
/// was applied let the checksum lock with 0.047 s of lag while 1.3 s of events were still to
/// apply (the table locked 0.338 s instead of 0.004 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_in_one_long_batch_is_not_locked_over_either() {
    backlog_then_cut_over("fault_backlog_batch", &["--dml-batch-size=100"]).await;
}

/// Writers on a table while wraith, its cut-over postponed, is throttled for 8 s; then both are
/// released at once. The checksum's snapshot and the cut-over must wait for the backlog to be
/// applied rather than lock over it.
async fn backlog_then_cut_over(name: &str, extra: &[&str]) {
    let (schema, writers) = table_with_writers(name, 500).await;
    let dir = tempfile::tempdir().unwrap();
    let (postpone, throttle) = (dir.path().join("postpone"), dir.path().join("throttle"));
    std::fs::write(&postpone, "").unwrap();
    let flags = [
        format!("--postpone-cut-over-flag-file={}", postpone.display()),
        format!("--throttle-flag-file={}", throttle.display()),
    ];
    let flags: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    // The applier applies at most 250 events a second: a backlog drains for seconds.
    let running = Running::start_with_env(
        &migrate_args(&schema, "t", ALTER, &flags),
        &[("WRAITH_FAILPOINT", "apply:batch:sleep")],
    );
    harness::eventually("the cut-over postponed", WRAITH_RUN_LIMIT, async || {
        changelog_state(&schema).await.as_deref() == Some("Postpone")
    })
    .await;
    // Throttled while the writers go on: the binlog's lag grows to seconds.
    std::fs::write(&throttle, "").unwrap();
    assert!(writers.wait_for_commits(200, Duration::from_secs(60)).await);
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Both let go at once: the checksum's snapshot and the cut-over lock the table next.
    std::fs::remove_file(&throttle).unwrap();
    std::fs::remove_file(&postpone).unwrap();
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let stats = writers.stop().await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    eprintln!("writers: {}", stats.summary());
    assert!(
        log.contains("waiting for the binlog's lag"),
        "no wait for the backlog before the lock:\n{log}"
    );
    // A lock taken over a backlog holds the writers until the applier has drained it, or for
    // the lock's whole timeout, for nothing.
    assert!(
        !log.contains("did not come back through the binlog within"),
        "a lock was taken that could not see its marker in time:\n{log}"
    );
    let anyway = lags_locked_anyway(&log);
    assert!(
        anyway.iter().all(|lag| *lag <= 0.5),
        "locked with the binlog's lag at {anyway:?} s:\n{log}"
    );
    assert_migrated(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}
