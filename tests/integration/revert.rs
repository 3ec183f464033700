//! Revert (`--revert --old-table=_t_del`), as gh-ost's docs/revert.md runs it: a migration made
//! with `--checkpoint` that dropped a column and added a NOT NULL one is undone while writers go
//! on writing to the table and to a mirror that was never migrated (same transactions, only
//! the columns both schemas have). Afterwards `t` is the mirror, byte for byte, on the primary
//! and the replica: the old schema, every write made since the swap, and the dropped column's
//! values as they were at the swap. A revert killed half-way runs again from where it got to (a
//! key moved in place cannot be moved twice), and loses nothing; so does a revert whose
//! connection is lost just after a commit, and one killed (or whose connection is lost) inside a
//! transaction too large for a batch, which it applies in parts: its memory stays bounded (under
//! 200 MiB for a transaction of 200,000 row changes). A revert's swap keeps the lock until its
//! RENAME waits on `t` itself, though its names lock in another order than a migration's. A
//! revert that cannot be done says why and changes nothing.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::compare::{assert_same_as_mirror, definition};
use crate::harness::{self, migrate_args, servers, stderr, tables, Running, WRAITH_RUN_LIMIT};
use crate::migrate::{by_id, changelog_state, setup, small_values, SMALL, SMALL_COLUMNS};
use crate::writers::{Rng, Writers, PACE};

/// The migration undone: drops `c` (which keeps its values in the old table), adds a NOT NULL `d`.
const ALTER: &str = "DROP COLUMN c, ADD COLUMN d INT NOT NULL DEFAULT 5";

/// Values for the columns both schemas have.
fn shared_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    small_values(r)
        .into_iter()
        .filter(|(c, _)| *c != "c")
        .collect()
}

/// gh-ost's revert command: the migration's flags without `--alter`, with `--revert` and
/// `--old-table`.
fn revert_args(schema: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = vec!["--revert", "--old-table=_t_del", "--checkpoint"];
    flags.extend_from_slice(extra);
    migrate_args(schema, "t", ALTER, &flags)
        .into_iter()
        .filter(|a| !a.starts_with("--alter="))
        .collect()
}

/// A revert whose cut-over is postponed (by a flag file in the returned directory), once it has
/// applied everything and postponed.
async fn revert_postponed(schema: &str) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("postpone");
    std::fs::write(&flag, "").unwrap();
    let postpone = format!("--postpone-cut-over-flag-file={}", flag.display());
    let running = Running::start(&revert_args(schema, &[&postpone]));
    harness::eventually("the revert postponed", WRAITH_RUN_LIMIT, async || {
        changelog_state(schema).await.as_deref() == Some("Postpone")
    })
    .await;
    (running, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_brings_the_old_schema_back_with_every_write_made_since_the_swap() {
    let schema = harness::fresh_schema("revert").await;
    // The mirror keeps the original schema: it is never migrated.
    setup(
        &schema,
        SMALL,
        "ENGINE=InnoDB",
        800,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let primary = &servers().primary;
    let original = definition(primary, &schema, "t").await;
    let workload = by_id(&schema, shared_values).await;
    let writers = Writers::start(primary, &schema, workload, 2, PACE * 2).await;
    assert!(writers.wait_for_commits(10, Duration::from_secs(60)).await);

    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--checkpoint"])).await;
    let log = stderr(&out);
    assert!(out.status.success(), "the migration failed:\n{log}");
    assert!(
        log.contains("cut-over checkpoint written to `_t_ghk`"),
        "{log}"
    );
    assert_ne!(definition(primary, &schema, "t").await, original);

    // Writes to the migrated table, then the revert while they go on.
    assert!(writers.wait_for_commits(50, Duration::from_secs(60)).await);
    let out = harness::run_wraith(&revert_args(&schema, &[])).await;
    let log = stderr(&out);
    assert!(writers.wait_for_commits(10, Duration::from_secs(30)).await);
    let stats = writers.stop().await;
    assert!(out.status.success(), "the revert failed:\n{log}");
    assert!(
        log.contains("reverted: `t` is the table of before the migration again"),
        "{log}"
    );
    eprintln!("writers: {}", stats.summary());
    assert_same_as_mirror(&schema, &["id"]).await;
    let names = tables(primary, &schema).await;
    for kept in ["_t_rev_del", "_t_ghk"] {
        assert!(
            names.iter().any(|n| n == kept),
            "{kept} is not kept: {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n == "_t_del" || n == "_t_ghc" || n == "_t_gho"),
        "{names:?}"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_that_cannot_be_done_says_why_and_changes_nothing() {
    let schema = harness::fresh_schema("revert_refused").await;
    setup(
        &schema,
        SMALL,
        "ENGINE=InnoDB",
        200,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let primary = &servers().primary;

    // A migration without --checkpoint cannot be reverted.
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harness::run_wraith(&revert_args(&schema, &[])).await;
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("--revert: there is no checkpoint table `_t_ghk`: only a migration run with --checkpoint"),
        "{log}"
    );

    // The old table is gone.
    let again = migrate_args(
        &schema,
        "t",
        "ADD COLUMN e INT",
        &["--checkpoint", "--initially-drop-old-table"],
    );
    let out = harness::run_wraith(&again).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let migrated = definition(primary, &schema, "t").await;
    harness::primary_sql(&schema, &["DROP TABLE _t_del"]).await;
    harness::sync_replica().await;
    let out = harness::run_wraith(&revert_args(&schema, &[])).await;
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("--revert: the old table `_t_del` (--old-table) does not exist"),
        "{log}"
    );
    assert_eq!(definition(primary, &schema, "t").await, migrated);
    assert_eq!(
        tables(primary, &schema).await,
        ["_t_ghk", "mirror", "t"],
        "a refused revert left or dropped tables"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_killed_half_way_runs_again_from_where_it_got_to_and_loses_nothing() {
    let schema = harness::fresh_schema("revert_again").await;
    setup(
        &schema,
        SMALL,
        "ENGINE=InnoDB",
        500,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let primary = &servers().primary;
    let workload = by_id(&schema, shared_values).await;
    let writers = Writers::start(primary, &schema, workload, 2, PACE * 2).await;
    assert!(writers.wait_for_commits(10, Duration::from_secs(60)).await);
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--checkpoint"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(writers.wait_for_commits(30, Duration::from_secs(60)).await);

    // The first revert applies the changes since the swap, then waits, postponed, and is killed.
    let (running, _flag) = revert_postponed(&schema).await;
    assert!(writers.wait_for_commits(20, Duration::from_secs(30)).await);
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGKILL) };
    running.finish(Duration::from_secs(30)).await;
    assert!(writers.wait_for_commits(20, Duration::from_secs(30)).await);

    // Again, from where it got to: its changelog is dropped first, as for any leftover one.
    let out = harness::run_wraith(&revert_args(&schema, &["--initially-drop-ghost-table"])).await;
    let log = stderr(&out);
    let stats = writers.stop().await;
    assert!(out.status.success(), "the second revert failed:\n{log}");
    eprintln!("writers: {}", stats.summary());
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// Whether process `pid` is stopped (by a signal).
pub(crate) fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.starts_with('T')))
        .unwrap_or(false)
}

/// A revert's names sort differently from a migration's: its ghost `_t_del` sorts before its old
/// table's name `_t_rev_del`, and a RENAME takes its locks in name order, so wraith's RENAME holds
/// the ghost's lock and waits on `_t_rev_del` when another session holds that name. Here another
/// session takes it while wraith holds its lock and keeps it for 3 s (its own RENAME of that name,
/// then waiting on a table a third session has locked): wraith's RENAME waits on that name all
/// that time, not on `t`, and the lock on `t` must be kept until it does, or the writers waiting
/// on `t` write to it after the marker, and the swap loses their writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_keeps_the_lock_until_its_rename_waits_on_the_table_itself() {
    let schema = harness::fresh_schema("revert_sentry_held").await;
    setup(
        &schema,
        SMALL,
        "ENGINE=InnoDB",
        300,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let primary = &servers().primary;
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--checkpoint"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    harness::primary_sql(&schema, &["CREATE TABLE zz_held (id INT)"]).await;
    let mut third = primary.conn().await;
    third
        .query_drop(format!("LOCK TABLES `{schema}`.zz_held WRITE"))
        .await
        .unwrap();
    let workload = by_id(&schema, shared_values).await;
    let writers = Writers::start(primary, &schema, workload, 4, PACE).await;
    assert!(writers.wait_for_commits(10, Duration::from_secs(60)).await);

    // wraith stops itself once it holds the lock, before its RENAME is issued.
    let args = revert_args(&schema, &["--cut-over-lock-timeout-seconds=10"]);
    let running = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "atomic:locked:sigstop")]);
    let pid = running.pid();
    harness::eventually("the revert's lock", WRAITH_RUN_LIMIT, async || stopped(pid)).await;
    let mut other = primary.conn().await;
    let other_id: u64 = other
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let rename = format!(
        "RENAME TABLE `{schema}`._t_rev_del TO `{schema}`.zz_a, `{schema}`.zz_held TO `{schema}`.zz_b"
    );
    let renaming = tokio::spawn(async move { other.query_drop(rename).await });
    let mut c = primary.conn().await;
    harness::eventually(
        "the other RENAME holding `_t_rev_del`",
        Duration::from_secs(10),
        async || {
            let state: Option<Option<String>> = c
                .exec_first(
                    "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?",
                    (other_id,),
                )
                .await
                .unwrap();
            state
                .flatten()
                .is_some_and(|s| s.starts_with("Waiting for table metadata lock"))
        },
    )
    .await;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    tokio::time::sleep(Duration::from_secs(3)).await;
    third.query_drop("UNLOCK TABLES").await.unwrap();
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    let renamed = renaming.await.unwrap();
    let stats = writers.stop().await;
    assert!(out.status.success(), "the revert failed:\n{log}");
    // It held the old table's name until the third session let it go, then found no table there.
    assert!(
        matches!(&renamed, Err(mysql_async::Error::Server(e)) if e.code == 1146),
        "{renamed:?}"
    );
    eprintln!("writers: {}", stats.summary());
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// The same changes, made on `table` in one transaction: a row moved to a new key and a new row
/// at its old key, and a row moved twice (away, then on again) with a new row at its first key.
/// Applied twice in place, the first move would meet its own result.
fn moves_and_reuses(table: &str) -> String {
    format!(
        "START TRANSACTION; \
         UPDATE {table} SET id = 100000 WHERE id = 1; \
         INSERT INTO {table} (id, a, b) VALUES (1, 7, 'at the old key'); \
         UPDATE {table} SET id = 200000 WHERE id = 2; \
         UPDATE {table} SET id = 300000 WHERE id = 200000; \
         INSERT INTO {table} (id, a, b) VALUES (2, 8, 'at the first key'); \
         UPDATE {table} SET a = a + 1 WHERE id = 300000; \
         COMMIT"
    )
}

/// `t` of `rows` rows migrated with `--checkpoint`, then the transaction `change` writes, on `t`
/// and on the mirror ([`moves_and_reuses`]: the old table keeps `c` of the rows moved, which must
/// move with them).
async fn migrated_then(name: &str, rows: u64, change: fn(&str) -> String) -> String {
    let schema = harness::fresh_schema(name).await;
    setup(
        &schema,
        SMALL,
        "ENGINE=InnoDB",
        rows,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--checkpoint"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    for table in ["t", "mirror"] {
        harness::primary_sql(&schema, &[&change(table)]).await;
    }
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_run_again_after_it_applied_key_moves_goes_on_from_where_it_got_to() {
    let schema = migrated_then("revert_moves", 100, moves_and_reuses).await;
    // The first revert applies the moves, waits, postponed, and is killed.
    let (running, _flag) = revert_postponed(&schema).await;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGKILL) };
    running.finish(Duration::from_secs(30)).await;

    // Run again, it must not move rows 1 and 2 a second time (1 and 100000 both exist now).
    let out = harness::run_wraith(&revert_args(&schema, &["--initially-drop-ghost-table"])).await;
    let log = stderr(&out);
    assert!(out.status.success(), "the second revert failed:\n{log}");
    assert!(log.contains("from where an earlier revert got to"), "{log}");
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// A revert (with `extra` flags) whose applier's connection dies right after its first batch
/// commits: it succeeds, and its log says it found that batch committed. Returns the log.
async fn revert_losing_the_connection_after_its_first_batch(
    schema: &str,
    extra: &[&str],
) -> String {
    let env = [("WRAITH_FAILPOINT", "apply:committed:kill-connection")];
    let out = Running::start_with_env(&revert_args(schema, extra), &env)
        .finish(WRAITH_RUN_LIMIT)
        .await;
    let log = stderr(&out);
    assert!(out.status.success(), "the revert failed:\n{log}");
    assert!(
        log.contains("the batch lost with the connection had been committed"),
        "{log}"
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_whose_connection_is_lost_after_a_commit_does_not_apply_that_batch_again() {
    let schema = migrated_then("revert_lost_commit", 100, moves_and_reuses).await;
    // The first batch: the moves.
    revert_losing_the_connection_after_its_first_batch(&schema, &[]).await;
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// Every row of `table` moved to a new key and a new row put at each old key, in one
/// transaction: applied twice in place, a move would meet the row put at its old key.
fn move_all_and_reuse(table: &str) -> String {
    format!(
        "START TRANSACTION; \
         UPDATE {table} SET id = id + 1000000; \
         INSERT INTO {table} (id, a, b) SELECT id - 1000000, a + 1, 'at the old key' FROM {table}; \
         COMMIT"
    )
}

/// How far the revert recorded it got (`_t_ghk` row 3): rows events into the transaction after
/// its position.
async fn reverted_events_into_a_transaction(schema: &str) -> Option<u64> {
    let mut c = servers().primary.conn().await;
    c.query_first(format!(
        "SELECT events_applied FROM `{schema}`.`_t_ghk` WHERE id = 3"
    ))
    .await
    .ok()
    .flatten()
}

/// A transaction larger than a batch (here 12,000 rows moved and 12,000 put at their old keys,
/// hundreds of rows events, with `--dml-batch-size=1`: batches of 50 events) is applied in parts,
/// each recording how many of its rows events are applied, so a revert does not hold it whole in
/// memory; killed between two parts, the revert runs again from inside the transaction, applies
/// no part twice, and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_applies_a_large_transaction_in_parts_and_run_again_goes_on_from_inside_it() {
    let schema = migrated_then("revert_large_txn", 12_000, move_all_and_reuse).await;
    // Each batch takes a while (the failpoint: 4 ms per event), so the revert is caught between
    // two parts of the transaction and killed there.
    let env = [("WRAITH_FAILPOINT", "apply:batch:sleep")];
    let running = Running::start_with_env(&revert_args(&schema, &["--dml-batch-size=1"]), &env);
    harness::eventually(
        "the revert recorded a part of the transaction",
        WRAITH_RUN_LIMIT,
        async || {
            reverted_events_into_a_transaction(&schema)
                .await
                .unwrap_or(0)
                > 0
        },
    )
    .await;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGKILL) };
    let log = stderr(&running.finish(Duration::from_secs(30)).await);
    assert!(log.contains("applying it in parts"), "{log}");
    let into = reverted_events_into_a_transaction(&schema).await.unwrap();
    assert!(
        into > 0,
        "killed past the transaction: the test is too slow to catch it"
    );

    let out = harness::run_wraith(&revert_args(
        &schema,
        &["--initially-drop-ghost-table", "--dml-batch-size=1"],
    ))
    .await;
    let log = stderr(&out);
    assert!(out.status.success(), "the second revert failed:\n{log}");
    assert!(
        log.contains(&format!(
            "and {into} rows events into the transaction after it"
        )),
        "{log}"
    );
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// The connection lost right after the first part of a large transaction commits: the mark read
/// back says that part is applied (its rows events into the transaction), so it is not applied
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_whose_connection_is_lost_after_a_part_of_a_transaction_does_not_apply_it_again() {
    let schema = migrated_then("revert_lost_part", 12_000, move_all_and_reuse).await;
    // The first batch: the first part of the transaction.
    let log =
        revert_losing_the_connection_after_its_first_batch(&schema, &["--dml-batch-size=1"]).await;
    assert!(
        log.contains("rows events into the transaction after it)"),
        "{log}"
    );
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

/// A revert's memory does not grow with the application's transactions: one of 200,000 row
/// changes (100,000 rows moved to new keys, 100,000 put at the old keys) is applied in parts, and
/// wraith's peak RSS stays under 200 MiB (it was 669 MiB for 480,000 changes when a revert held a
/// transaction whole, and 300 MiB in parts while the driver kept its large buffers for reuse).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_of_a_transaction_of_200_000_row_changes_stays_under_200_mib() {
    const ROWS: u64 = 100_000;
    let schema = harness::fresh_schema("revert_memory").await;
    harness::primary_sql(
        &schema,
        &[
            SMALL,
            &format!(
                "INSERT INTO t (a, b, c) SELECT seq, CONCAT('w', seq), NOW(3) FROM {}",
                harness::seq(1, ROWS / 2)
            ),
            &format!(
                "INSERT INTO t (a, b, c) SELECT seq, CONCAT('w', seq), NOW(3) FROM {}",
                harness::seq(ROWS / 2 + 1, ROWS)
            ),
            "CREATE TABLE mirror LIKE t",
            "INSERT INTO mirror SELECT * FROM t",
        ],
    )
    .await;
    let out = harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--checkpoint"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    for table in ["t", "mirror"] {
        harness::primary_sql(&schema, &[&move_all_and_reuse(table)]).await;
    }

    let running = Running::start(&revert_args(&schema, &[]));
    let peak = crate::memory::sample_peak_rss(running.pid());
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    assert!(out.status.success(), "the revert failed:\n{log}");
    let peak_mib = peak.await.unwrap() / 1024;
    eprintln!(
        "wraith's peak RSS, reverting a transaction of {} row changes: {peak_mib} MiB",
        2 * ROWS
    );
    assert!(peak_mib < 200, "wraith's peak RSS was {peak_mib} MiB");
    assert!(log.contains("applying it in parts"), "{log}");
    assert_same_as_mirror(&schema, &["id"]).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}
