//! Checkpoint and resume (`--checkpoint`, `--resume`), as gh-ost's docs/resume.md runs them: a
//! migration started with `--checkpoint` is killed (SIGKILL: nothing of wraith's own cleanup
//! runs) while writers write to the table and to a natively altered mirror in the same
//! transactions; the same command with `--resume` in place of `--checkpoint` then finishes it.
//! After each: `t` is the mirror, byte for byte, on the primary and the replica, and only the
//! checkpoint table is left (for `--revert`). Killed during the copy, while the cut-over is postponed, and while the
//! cut-over holds its lock (then `t` must be whole in between). A resume that cannot go on
//! (nothing to resume, another ALTER, a purged binlog) says so and changes nothing.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::compare::{assert_migrated, definition};
use crate::harness::{self, migrate_args, servers, stderr, tables, Running, WRAITH_RUN_LIMIT};
use crate::migrate::{by_id, changelog_state, setup, small_values, SMALL, SMALL_COLUMNS};
use crate::writers::{Writers, PACE};

/// The ALTER of every run here: a new column, so the ghost table's rows differ from the
/// original's, and a secondary index (which `--defer-secondary-indexes` builds after the copy).
const ALTER: &str = "ADD COLUMN d INT NOT NULL DEFAULT 7, ADD INDEX a_idx (a)";

/// `schema`.t with `rows` rows, its mirror, and two writers writing to both.
async fn table_with_writers(name: &str, rows: u64) -> (String, Writers) {
    let schema = harness::fresh_schema(name).await;
    setup(&schema, SMALL, ALTER, rows, &SMALL_COLUMNS, small_values).await;
    let workload = by_id(&schema, small_values).await;
    let writers = Writers::start(&servers().primary, &schema, workload, 2, PACE * 2).await;
    assert!(
        writers.wait_for_commits(10, Duration::from_secs(60)).await,
        "the writers did not start"
    );
    (schema, writers)
}

/// The checkpoint row of `schema`.`_t_ghk`: (copied through a key, copy done), if written.
async fn checkpoint(schema: &str) -> Option<(bool, bool)> {
    let mut c = servers().primary.conn().await;
    c.query_first::<(Option<Vec<u8>>, bool), _>(format!(
        "SELECT copied_through, copy_done FROM `{schema}`._t_ghk WHERE id = 1"
    ))
    .await
    .ok()
    .flatten()
    .map(|(through, done)| (through.is_some(), done))
}

fn sigkill(running: &Running) {
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGKILL) };
}

/// The first run's flags: a slow copy (small chunks, a nice ratio) that checkpoints every second.
fn first_run(schema: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = vec![
        "--checkpoint",
        "--checkpoint-seconds=1",
        "--chunk-size=50",
        "--nice-ratio=10",
    ];
    flags.extend_from_slice(extra);
    migrate_args(schema, "t", ALTER, &flags)
}

/// The same command with `--resume` instead of `--checkpoint` (gh-ost's docs/resume.md), and
/// nothing to clear the way: the killed run's socket file is left for wraith to find stale.
fn resume_run(schema: &str) -> Vec<String> {
    migrate_args(
        schema,
        "t",
        ALTER,
        &[
            "--resume",
            "--checkpoint-seconds=1",
            "--initially-drop-socket-file=false",
        ],
    )
}

/// After the kill: `t` is the original table, whole, and what `--resume` needs is there.
async fn assert_interrupted_and_kept(schema: &str, original: &str, log: &str) {
    harness::sync_replica().await;
    let primary = &servers().primary;
    assert_eq!(
        definition(primary, schema, "t").await,
        original,
        "`t` changed while the killed run held it\n{log}"
    );
    let names = tables(primary, schema).await;
    for helper in ["_t_gho", "_t_ghc", "_t_ghk"] {
        assert!(
            names.iter().any(|n| n == helper),
            "{helper} is gone after the kill: {names:?}"
        );
    }
}

/// Resumes, lets the writers go on a little more, stops them and checks the result.
async fn resume_and_check(schema: &str, writers: Writers) -> String {
    // Writes while nothing runs: the resumed run must find them in the binlog.
    assert!(writers.wait_for_commits(20, Duration::from_secs(30)).await);
    let out = harness::run_wraith(&resume_run(schema)).await;
    let log = stderr(&out);
    let stats = writers.stop().await;
    assert!(out.status.success(), "the resumed run failed:\n{log}");
    assert!(
        log.contains("--resume: going on from the checkpoint"),
        "the run did not resume:\n{log}"
    );
    eprintln!("writers: {}", stats.summary());
    assert_migrated(schema, &["id"]).await;
    // Kept, as gh-ost keeps it without --ok-to-drop-table: --revert reads it.
    assert!(
        log.contains("cut-over checkpoint written to `_t_ghk`"),
        "no cut-over checkpoint:\n{log}"
    );
    log
}

/// A run with `extra` flags killed during its copy, and resumed (without them): returns both
/// runs' logs, after checking that the second copied on from the checkpoint and lost nothing.
async fn killed_during_the_copy_and_resumed(name: &str, extra: &[&str]) -> (String, String) {
    let (schema, writers) = table_with_writers(name, 10000).await;
    let original = definition(&servers().primary, &schema, "t").await;
    // The copy is held (throttled) once a checkpoint with copied rows is seen, so the kill
    // lands before the copy is done however fast the machine is.
    let dir = tempfile::tempdir().unwrap();
    let hold = dir.path().join("throttle");
    let throttle = format!("--throttle-flag-file={}", hold.display());
    let mut flags = vec![throttle.as_str()];
    flags.extend_from_slice(extra);
    let running = Running::start(&first_run(&schema, &flags));
    harness::eventually(
        "a checkpoint with copied rows, the copy not done",
        Duration::from_secs(120),
        async || checkpoint(&schema).await == Some((true, false)),
    )
    .await;
    std::fs::write(&hold, "").unwrap();
    // Chunks copied past the checkpoint meanwhile; the position moved on with the writes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigkill(&running);
    let out = running.finish(Duration::from_secs(30)).await;
    let first = stderr(&out);
    assert!(
        checkpoint(&schema).await == Some((true, false)),
        "killed after the copy ended: this test needs a slower copy\n{first}"
    );
    assert_interrupted_and_kept(&schema, &original, &first).await;
    let log = resume_and_check(&schema, writers).await;
    assert!(
        log.contains("copying the rows above the checkpoint's key"),
        "the resumed run copied from the start:\n{log}"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
    (first, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_killed_during_the_copy_resumes_from_its_checkpoint_and_loses_nothing() {
    let (_, log) = killed_during_the_copy_and_resumed("resume_copy", &[]).await;
    assert!(!log.contains("deferred"), "{log}");
}

/// The interrupted run dropped the ghost table's index for its copy; the resumed run, not told
/// to defer anything, learns it from the checkpoint and builds it before the swap (the mirror's
/// definition, checked on both servers, has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_run_builds_the_indexes_the_interrupted_run_deferred() {
    let (first, log) =
        killed_during_the_copy_and_resumed("resume_deferred", &["--defer-secondary-indexes"]).await;
    assert!(
        first.contains("`a_idx` dropped from the empty ghost table"),
        "the first run did not defer the index:\n{first}"
    );
    assert!(
        log.contains("building the deferred secondary indexes `a_idx`"),
        "the resumed run did not build the deferred index:\n{log}"
    );
}

/// Stopped (SIGTERM) after its copy, just before the ALTER that builds the deferred index: the
/// run keeps its tables for `--resume` (the ghost table without the index), and the resumed run
/// copies nothing, builds the index and swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_before_building_its_deferred_index_resumes_and_builds_it() {
    let (schema, writers) = table_with_writers("resume_build", 2000).await;
    let primary = &servers().primary;
    let original = definition(primary, &schema, "t").await;
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &[
            "--checkpoint",
            "--checkpoint-seconds=1",
            "--defer-secondary-indexes",
        ],
    );
    let out = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "indexes:build:sigterm")])
        .finish(WRAITH_RUN_LIMIT)
        .await;
    let first = stderr(&out);
    assert!(!out.status.success(), "{first}");
    assert!(
        first.contains("failpoint indexes:build: sigterm"),
        "{first}"
    );
    assert!(
        first.contains("Kept for --resume: _t_gho, _t_ghc, _t_ghk"),
        "{first}"
    );
    assert_eq!(
        checkpoint(&schema).await.map(|(_, done)| done),
        Some(true),
        "the checkpoint does not say the copy is done\n{first}"
    );
    assert_interrupted_and_kept(&schema, &original, &first).await;
    let ghost = definition(primary, &schema, "_t_gho").await;
    assert!(!ghost.contains("a_idx"), "the index was built: {ghost}");
    let log = resume_and_check(&schema, writers).await;
    assert!(
        log.contains("the interrupted run had copied every row"),
        "{log}"
    );
    assert!(
        log.contains("building the deferred secondary indexes `a_idx`"),
        "{log}"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_killed_while_its_cut_over_is_postponed_resumes_without_copying_again() {
    let (schema, writers) = table_with_writers("resume_postponed", 1000).await;
    let original = definition(&servers().primary, &schema, "t").await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("postpone");
    std::fs::write(&flag, "").unwrap();
    let postpone = format!("--postpone-cut-over-flag-file={}", flag.display());
    let running = Running::start(&first_run(&schema, &[&postpone, "--nice-ratio=0"]));
    harness::eventually(
        "the cut-over postponed",
        Duration::from_secs(120),
        async || changelog_state(&schema).await.as_deref() == Some("Postpone"),
    )
    .await;
    // Writes while postponed, applied and checkpointed, then more while nothing runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigkill(&running);
    let out = running.finish(Duration::from_secs(30)).await;
    assert_eq!(checkpoint(&schema).await, Some((true, true)));
    assert_interrupted_and_kept(&schema, &original, &stderr(&out)).await;
    let log = resume_and_check(&schema, writers).await;
    assert!(
        log.contains("had copied every row; not copying again"),
        "the resumed run copied again:\n{log}"
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_killed_while_its_cut_over_holds_the_lock_leaves_t_whole_and_resumes() {
    let (schema, writers) = table_with_writers("resume_locked", 1000).await;
    let original = definition(&servers().primary, &schema, "t").await;
    let args = first_run(&schema, &["--nice-ratio=0"]);
    let out = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "atomic:locked:sigkill")])
        .finish(WRAITH_RUN_LIMIT)
        .await;
    let first = stderr(&out);
    assert_eq!(out.status.code(), None, "wraith was not killed:\n{first}");
    // The lock died with wraith: the writers commit again.
    assert!(
        writers.wait_for_commits(10, Duration::from_secs(15)).await,
        "the writers could not write after the kill\n{first}"
    );
    assert_interrupted_and_kept(&schema, &original, &first).await;
    resume_and_check(&schema, writers).await;
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_that_cannot_go_on_says_why_and_changes_nothing() {
    let schema = harness::fresh_schema("resume_refused").await;
    setup(&schema, SMALL, ALTER, 300, &SMALL_COLUMNS, small_values).await;
    let primary = &servers().primary;
    let original = definition(primary, &schema, "t").await;

    // Nothing to resume.
    let out = harness::run_wraith(&resume_run(&schema)).await;
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("there is no checkpoint table `_t_ghk`, so there is nothing to resume"),
        "{log}"
    );
    assert_eq!(tables(primary, &schema).await, ["mirror", "t"]);

    // A checkpointed run stopped by SIGTERM keeps its tables for --resume, and says so.
    let running = Running::start(&first_run(&schema, &["--chunk-size=10"]));
    harness::eventually("a checkpoint", Duration::from_secs(120), async || {
        checkpoint(&schema).await.is_some()
    })
    .await;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(running.pid() as i32, libc::SIGTERM) };
    let out = running.finish(Duration::from_secs(60)).await;
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("Kept for --resume: _t_gho, _t_ghc, _t_ghk"),
        "{log}"
    );
    assert_interrupted_and_kept(&schema, &original, &log).await;

    // A fresh run (without --resume) is refused, naming --resume.
    let fresh = migrate_args(&schema, "t", ALTER, &[]);
    let log = stderr(&harness::run_wraith(&fresh).await);
    assert!(
        log.contains("an earlier run with --checkpoint was interrupted. Resume it with --resume"),
        "{log}"
    );

    // Another ALTER.
    let other = migrate_args(&schema, "t", "ADD COLUMN e INT", &["--resume"]);
    let log = stderr(&harness::run_wraith(&other).await);
    assert!(
        log.contains(&format!(
            "the checkpoint was written by a run with --alter=\"{ALTER}\""
        )),
        "{log}"
    );

    // A binlog file the inspected server no longer has (as after PURGE BINARY LOGS).
    harness::primary_sql(
        &schema,
        &["UPDATE _t_ghk SET binlog_file = 'purged-bin.000001'"],
    )
    .await;
    harness::sync_replica().await;
    let out = harness::run_wraith(&resume_run(&schema)).await;
    let log = stderr(&out);
    assert!(!out.status.success());
    assert!(
        log.contains("--resume: the checkpoint's binlog position purged-bin.000001:")
            && log.contains("has been purged from"),
        "{log}"
    );
    // Each refusal left the tables as they were.
    assert_eq!(definition(primary, &schema, "t").await, original);
    assert_eq!(
        tables(primary, &schema).await,
        ["_t_ghc", "_t_ghk", "_t_gho", "mirror", "t"]
    );
    harness::primary_sql(&schema, &[&format!("DROP DATABASE `{schema}`")]).await;
}
