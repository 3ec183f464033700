//! The checksum before the swap (`src/checksum.rs`): a clean run under writers passes it and
//! swaps; a row that differs in the ghost table (planted behind wraith's back, where neither the
//! copy nor the applier rewrites it) stops the run before the swap, named by its key; with
//! `--skip-checksum` the same difference is swapped in, and the log says the checksum was
//! skipped; a postponed run compares again the rows that changed while it was postponed, and a
//! difference on one of them stops it; a snapshot attempt that fails is released and retried;
//! the checksum rests between chunks as the copy does (`--nice-ratio`, the copy's pace), and
//! holds no read view from one chunk to the next; an `INT` key widened to `BIGINT UNSIGNED` is
//! compared chunk by chunk too (not as one chunk in one view), and a difference behind it is
//! found.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::compare::{assert_migrated, differences};
use crate::faults::{postponed, postponed_with_env};
use crate::harness::{self, migrate_args, servers, stderr, tables, Running, WRAITH_RUN_LIMIT};
use crate::migrate::{by_id, setup, small_values, SMALL, SMALL_COLUMNS};
use crate::writers::{under_writes, Shape, Workload, WriterStats, Writers, PACE};

/// An ALTER harmless to the rows, visible in the table's comment: `t` and `mirror` keep the same
/// columns, so they can be compared whether or not the swap happened.
const COMMENT: &str = "COMMENT='migrated'";

/// The rows and the chunks the checksum compared, from its log line (`checksum passed: N rows
/// in M chunks compared ...`).
fn checksummed(log: &str) -> Option<(u64, u64)> {
    let rest = log.split("checksum passed: ").nth(1)?;
    let mut words = rest.split_whitespace();
    let rows = words.next()?.parse().ok()?;
    let chunks = words.nth(2)?.parse().ok()?;
    Some((rows, chunks))
}

/// The rows the checksum compared ([`checksummed`]).
fn rows_checksummed(log: &str) -> Option<u64> {
    checksummed(log).map(|(rows, _)| rows)
}

/// `t` as [`SMALL`], with a signed `INT` key.
const SMALL_INT_KEY: &str = "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT NOT NULL, b VARCHAR(32) NOT NULL, c DATETIME(3) NULL) ENGINE=InnoDB";

/// The most common change of a key: an `INT` about to run out of ids, widened.
const WIDEN_KEY: &str = "MODIFY id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT";

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

/// Only `t` and `mirror` are left: no helper table.
async fn assert_no_helper_tables(schema: &str, log: &str) {
    let left = tables(&servers().primary, schema).await;
    assert!(
        left.iter().all(|t| t == "t" || t == "mirror"),
        "tables left: {left:?}\n{log}"
    );
}

/// Migrates `schema`.t with `alter` in chunks of 20 rows (the checksum walks many chunks, ten
/// copy chunks each) while two writers write `workload`; asserts that wraith succeeded and no
/// writer met an error. Returns wraith's log and what the writers did.
async fn migrated_in_small_chunks(
    schema: &str,
    alter: &str,
    workload: Arc<dyn Workload>,
) -> (String, WriterStats) {
    let args = migrate_args(schema, "t", alter, &["--chunk-size=20"]);
    let (out, stats, _) =
        under_writes(schema, workload, 2, PACE * 2, harness::run_wraith(&args)).await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    (log, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_run_under_writes_passes_the_checksum_and_swaps() {
    let schema = harness::fresh_schema("checksum_clean").await;
    // `b` moves to another character set: compared as the copy converts it.
    let alter = "MODIFY b VARCHAR(64) CHARACTER SET utf16 NOT NULL, ADD COLUMN d INT";
    setup(&schema, SMALL, alter, 2_000, &SMALL_COLUMNS, small_values).await;
    let (log, stats) =
        migrated_in_small_chunks(&schema, alter, by_id(&schema, small_values).await).await;
    let rows = rows_checksummed(&log).unwrap_or_else(|| panic!("no checksum line:\n{log}"));
    assert!(rows >= 2_000, "the checksum compared {rows} rows\n{log}");
    assert!(
        log.contains("row copy: ") && log.contains("of the copy time"),
        "the checksum's cost is reported beside the copy time\n{log}"
    );
    assert_migrated(&schema, &["id"]).await;
    eprintln!(
        "clean run: checksum over {rows} rows; writers {}",
        stats.summary()
    );
}

/// The seconds the checksum's workers rested between chunks, from its log line.
fn checksum_rested(log: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains("checksum passed: "))?;
    let rest = line.split("its workers resting ").nth(1)?;
    rest.split('s').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checksum_rests_between_chunks_as_the_copy_does() {
    let schema = harness::fresh_schema("checksum_nice").await;
    setup(&schema, SMALL, COMMENT, 2_000, &SMALL_COLUMNS, small_values).await;
    // Chunks of 20 rows: the checksum walks ten chunks of 200, each followed by a rest of ten
    // times its time, as the copy's are (a full-speed checksum after a paced copy is a burst of
    // reads the application feels).
    let args = migrate_args(
        &schema,
        "t",
        COMMENT,
        &["--chunk-size=20", "--nice-ratio=10"],
    );
    let out = harness::run_wraith(&args).await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let rested = checksum_rested(&log)
        .unwrap_or_else(|| panic!("the checksum line does not say how long it rested:\n{log}"));
    assert!(rested > 0.0, "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some("migrated"), "{log}");
    assert_migrated(&schema, &["id"]).await;
}

/// The longest a read view of wraith's checksum connections has been open on the primary, in
/// whole seconds (from `SHOW ENGINE INNODB STATUS`, which says how long each transaction holding
/// a view has been active), sampled while `running` runs; and how many such connections were
/// seen. A checksum connection is one seen running the checksum's figures on `schema`'s ghost
/// table.
async fn checksum_views(schema: &str, running: &mut Running) -> (u64, usize) {
    let mut c = servers().primary.conn().await;
    let mut ids: Vec<u64> = Vec::new();
    let mut longest = 0u64;
    while !running.exited() {
        let seen: Vec<u64> = c
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND INFO LIKE '%CRC32%'",
                (format!("%`{schema}`.`_t_gho`%"),),
            )
            .await
            .unwrap();
        for id in seen {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            let status: Option<(String, String, String)> =
                c.query_first("SHOW ENGINE INNODB STATUS").await.unwrap();
            let text = status.map(|(_, _, text)| text).unwrap_or_default();
            for block in text.split("---TRANSACTION").skip(1) {
                let ours = ids
                    .iter()
                    .any(|id| block.contains(&format!("thread id {id},")));
                let active = block
                    .split("ACTIVE ")
                    .nth(1)
                    .and_then(|r| r.split(" sec").next())
                    .and_then(|n| n.trim().parse::<u64>().ok());
                if let (true, true, Some(secs)) = (ours, block.contains("read view"), active) {
                    longest = longest.max(secs);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (longest, ids.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checksum_holds_no_read_view_from_one_chunk_to_the_next() {
    let schema = harness::fresh_schema("checksum_views").await;
    setup(
        &schema,
        SMALL,
        COMMENT,
        15_000,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    let writers = two_writers(&schema).await;
    // 500-row checksum chunks (ten copy chunks), each followed by 300 ms: 30 chunks on two
    // connections, about 4.5 s of checksum. A read view held across them holds back the
    // server's purge for all that time (on a table of hundreds of millions of rows, for hours).
    let args = migrate_args(&schema, "t", COMMENT, &["--chunk-size=50"]);
    let mut running =
        Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "checksum:chunk:sleep")]);
    let (longest, connections) = checksum_views(&schema, &mut running).await;
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let stats = writers.stop().await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let took: f64 = log
        .split("chunks compared in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no checksum line:\n{log}"));
    assert!(
        took >= 4.0,
        "the checksum took {took}s, too short to tell:\n{log}"
    );
    assert!(connections > 0, "no checksum connection was seen:\n{log}");
    assert!(
        longest <= 1,
        "a checksum connection kept a read view open for {longest}s of a {took}s checksum:\n{log}"
    );
    assert_migrated(&schema, &["id"]).await;
    eprintln!(
        "checksum of {took}s on {connections} connections, views at most {longest}s; writers {}",
        stats.summary()
    );
}

/// Migrates `schema`.t (1,000 rows) with `extra` flags after planting two differences in the
/// ghost table before the copy ends: row 500 with another `a`, and row 5000000, which `t` does
/// not have. The copy skips a row the ghost table already holds (`INSERT IGNORE`) and no writer
/// touches either key, so nothing but a comparison can see them. Returns wraith's output.
async fn run_with_planted_difference(schema: &str, extra: &[&str]) -> std::process::Output {
    run_with_planted_difference_in(schema, SMALL, COMMENT, extra).await
}

/// [`run_with_planted_difference`] on a table made by `create`, migrated with `alter`.
async fn run_with_planted_difference_in(
    schema: &str,
    create: &str,
    alter: &str,
    extra: &[&str],
) -> std::process::Output {
    setup(schema, create, alter, 1_000, &SMALL_COLUMNS, small_values).await;
    // The throttle flag holds the copy until the difference is planted.
    let throttle = tempfile::NamedTempFile::new().unwrap();
    let throttle_arg = format!("--throttle-flag-file={}", throttle.path().display());
    let mut flags = vec!["--chunk-size=10", throttle_arg.as_str()];
    flags.extend(extra);
    let args = migrate_args(schema, "t", alter, &flags);
    let running = Running::start(&args);
    let primary = &servers().primary;
    harness::eventually(
        "the ghost table to be created",
        Duration::from_secs(60),
        async || {
            tables(primary, schema)
                .await
                .contains(&"_t_gho".to_string())
        },
    )
    .await;
    let mut c = primary.conn().await;
    c.query_drop(format!(
        "USE `{schema}`; \
         INSERT INTO _t_gho (id, a, b, c) SELECT id, a + 1, b, c FROM t WHERE id = 500 \
         ON DUPLICATE KEY UPDATE a = VALUES(a); \
         INSERT INTO _t_gho (id, a, b, c) VALUES (5000000, 1, 'planted', NULL)"
    ))
    .await
    .unwrap();
    drop(throttle);
    running.finish(WRAITH_RUN_LIMIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_differs_in_the_ghost_table_stops_the_run_before_the_swap_named_by_its_key() {
    let schema = harness::fresh_schema("checksum_planted").await;
    let out = run_with_planted_difference(&schema, &[]).await;
    let log = stderr(&out);
    assert!(!out.status.success(), "wraith swapped:\n{log}");
    assert!(
        log.contains("found rows that differ") && log.contains("id=500"),
        "the changed row is not named:\n{log}"
    );
    assert!(
        log.contains("id=5000000 (only in the ghost table)"),
        "the extra row is not named:\n{log}"
    );
    assert!(log.contains("untouched"), "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some(""), "{log}");
    let (count, samples) = differences(&servers().primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(count, 0, "t changed:\n{}\n{log}", samples.join("\n"));
    assert_no_helper_tables(&schema, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_skip_checksum_the_same_difference_is_swapped_in_and_the_log_says_so() {
    let schema = harness::fresh_schema("checksum_skipped").await;
    let out = run_with_planted_difference(&schema, &["--skip-checksum"]).await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("checksum skipped (--skip-checksum)"), "{log}");
    assert!(rows_checksummed(&log).is_none(), "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some("migrated"));
    // What the checksum would have stopped: t now holds the planted rows.
    let (count, _) = differences(&servers().primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(count, 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_int_key_widened_to_bigint_is_checksummed_chunk_by_chunk_under_writes() {
    let schema = harness::fresh_schema("checksum_widened_key").await;
    let rows = 2_000;
    setup(
        &schema,
        SMALL_INT_KEY,
        WIDEN_KEY,
        rows,
        &SMALL_COLUMNS,
        small_values,
    )
    .await;
    // Rows move to ids counted down from 2^30, within the INT they start in.
    let shape = Shape {
        rekey: |_, _, unique| vec![((1u64 << 30) - unique).to_string()],
        ..Shape::by_id(rows, small_values)
    };
    let (log, _) = migrated_in_small_chunks(&schema, WIDEN_KEY, Arc::new(shape)).await;
    // About ten chunks, each in a read view of its own (not the whole table in one view).
    let (_, chunks) = checksummed(&log).unwrap_or_else(|| panic!("no checksum line:\n{log}"));
    assert!(
        chunks >= 5,
        "the checksum compared the widened key's table in {chunks} chunk(s)\n{log}"
    );
    assert_migrated(&schema, &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_differs_behind_a_widened_key_stops_the_run_before_the_swap() {
    let schema = harness::fresh_schema("checksum_widened_planted").await;
    let out = run_with_planted_difference_in(&schema, SMALL_INT_KEY, WIDEN_KEY, &[]).await;
    let log = stderr(&out);
    assert!(!out.status.success(), "wraith swapped:\n{log}");
    assert!(
        log.contains("id=500") && log.contains("id=5000000 (only in the ghost table)"),
        "the planted rows are not named:\n{log}"
    );
    assert!(log.contains("untouched"), "{log}");
    let (count, samples) = differences(&servers().primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(count, 0, "t changed:\n{}\n{log}", samples.join("\n"));
    assert_no_helper_tables(&schema, &log).await;
}

/// Two writers on `schema`.t, each writing every other pace.
async fn two_writers(schema: &str) -> Writers {
    let workload = by_id(schema, small_values).await;
    Writers::start(&servers().primary, schema, workload, 2, PACE * 2).await
}

/// `t` (1,000 rows) of a fresh schema `name` under two writers, and a run of wraith postponed at
/// its cut-over.
async fn postponed_under_writes(
    name: &str,
) -> (String, Writers, harness::Running, tempfile::NamedTempFile) {
    let schema = harness::fresh_schema(name).await;
    setup(&schema, SMALL, COMMENT, 1_000, &SMALL_COLUMNS, small_values).await;
    let writers = two_writers(&schema).await;
    let (running, flag) = postponed(&schema, migrate_args(&schema, "t", COMMENT, &[])).await;
    (schema, writers, running, flag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postponed_run_compares_again_the_rows_changed_while_postponed_and_swaps() {
    let (schema, writers, running, flag) = postponed_under_writes("checksum_postponed").await;
    assert!(
        writers.wait_for_commits(30, Duration::from_secs(60)).await,
        "the writers did not write while the cut-over was postponed"
    );
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    assert!(writers.wait_for_commits(10, Duration::from_secs(15)).await);
    let stats = writers.stop().await;
    assert!(out.status.success(), "{log}");
    let again: u64 = log
        .split("checksum: re-verified ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no re-verification:\n{log}"));
    assert!(
        again > 0,
        "no changed row was compared again (writers {})\n{log}",
        stats.summary()
    );
    assert_migrated(&schema, &["id"]).await;
    eprintln!(
        "postponed: {again} rows compared again; writers {}",
        stats.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postponed_run_on_a_composite_key_compares_again_the_changed_rows_and_no_others() {
    let schema = harness::fresh_schema("checksum_composite").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (a INT NOT NULL, b VARCHAR(8) NOT NULL, v INT, PRIMARY KEY (a, b))",
            "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500) \
             SELECT n, CONCAT('b', n % 3), n FROM s",
        ],
    )
    .await;
    let (running, flag) = postponed(&schema, migrate_args(&schema, "t", COMMENT, &[])).await;
    // Three rows change while the cut-over is postponed: their keys are compared again, each
    // key's row alone (a condition naming several keys of two columns is an OR of ANDs).
    harness::primary_sql(&schema, &["UPDATE t SET v = -v WHERE a IN (10, 20, 30)"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("checksum: re-verified 3 rows"), "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some("migrated"), "{log}");
    let mut c = servers().primary.conn().await;
    let negated: Vec<(i32, String, i32)> = c
        .query(format!(
            "SELECT a, b, v FROM `{schema}`.t WHERE v < 0 ORDER BY a"
        ))
        .await
        .unwrap();
    assert_eq!(
        negated,
        [
            (10, "b1".to_string(), -10),
            (20, "b2".to_string(), -20),
            (30, "b0".to_string(), -30)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_difference_on_a_row_changed_while_postponed_stops_the_run_before_the_swap() {
    let (schema, writers, running, flag) =
        postponed_under_writes("checksum_postponed_planted").await;
    let primary = &servers().primary;
    // While postponed, the application writes rows 4000000 and 4000001 (no writer uses these
    // ids); once the applier has brought them to the ghost table, the ghost's copy of the first
    // is changed and the second is deleted.
    let mut c = primary.conn().await;
    c.query_drop(format!(
        "USE `{schema}`; START TRANSACTION; \
         INSERT INTO t (id, a, b) VALUES (4000000, 7, 'late'), (4000001, 7, 'late'); \
         INSERT INTO mirror (id, a, b) VALUES (4000000, 7, 'late'), (4000001, 7, 'late'); COMMIT"
    ))
    .await
    .unwrap();
    harness::eventually(
        "the applier to write rows 4000000 and 4000001 to the ghost table",
        Duration::from_secs(60),
        async || {
            let n: Option<u64> = c
                .query_first(format!(
                    "SELECT COUNT(*) FROM `{schema}`._t_gho WHERE id IN (4000000, 4000001) AND a = 7"
                ))
                .await
                .unwrap();
            n == Some(2)
        },
    )
    .await;
    c.query_drop(format!(
        "UPDATE `{schema}`._t_gho SET a = 8 WHERE id = 4000000; \
         DELETE FROM `{schema}`._t_gho WHERE id = 4000001"
    ))
    .await
    .unwrap();
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let log = stderr(&out);
    let stats = writers.stop().await;
    assert!(!out.status.success(), "wraith swapped:\n{log}");
    assert!(
        log.contains("found rows that differ") && log.contains("id=4000000"),
        "the changed row is not named:\n{log}"
    );
    assert!(
        log.contains("id=4000001"),
        "the row missing from the ghost table is not named:\n{log}"
    );
    assert!(log.contains("untouched"), "{log}");
    assert_eq!(comment(&schema).await.as_deref(), Some(""), "{log}");
    let (count, samples) = differences(primary, &schema, "t", "mirror", &["id"]).await;
    assert_eq!(count, 0, "t lost writes:\n{}\n{log}", samples.join("\n"));
    assert_no_helper_tables(&schema, &log).await;
    eprintln!("caught while postponed; writers {}", stats.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_attempt_that_fails_after_the_drain_is_released_and_tried_again() {
    let schema = harness::fresh_schema("checksum_retry").await;
    setup(&schema, SMALL, COMMENT, 1_000, &SMALL_COLUMNS, small_values).await;
    let writers = two_writers(&schema).await;
    // The re-verify after the postponed cut-over takes a snapshot; its first attempt fails
    // while it holds the lock and the applier holds the events after its marker: both must be
    // released, and the held events applied.
    let (running, flag) = postponed_with_env(
        &schema,
        migrate_args(&schema, "t", COMMENT, &[]),
        &[("WRAITH_FAILPOINT", "checksum:drained:fail")],
    )
    .await;
    assert!(writers.wait_for_commits(30, Duration::from_secs(60)).await);
    drop(flag);
    let out = running.finish(WRAITH_RUN_LIMIT).await;
    let stats = writers.stop().await;
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("checksum: taking the snapshot failed (attempt 1)"),
        "{log}"
    );
    assert!(rows_checksummed(&log).is_some(), "{log}");
    assert_migrated(&schema, &["id"]).await;
    eprintln!("retried snapshot; writers {}", stats.summary());
}
