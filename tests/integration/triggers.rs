//! `--include-triggers`: the original table's triggers are on the new table after the swap,
//! under gh-ost's names, and never fire for what wraith itself writes (the copy, the replayed
//! changes), even when a cut-over attempt fails after creating them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::harness::{self, migrate_args, primary_sql, servers, stderr, tables, Running};
use crate::throttling::{self, ALTER};

/// `t` (3000 rows) with two triggers: every insert is logged in `audit`, every update prefixes
/// `b` with `u:`.
async fn with_triggers(name: &str) -> String {
    let schema = throttling::setup(name).await;
    primary_sql(
        &schema,
        &[
            "CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, t_id BIGINT NOT NULL)",
            "CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (t_id) VALUES (NEW.id)",
            "CREATE TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW SET NEW.b = CONCAT('u:', NEW.b)",
        ],
    )
    .await;
    schema
}

/// Inserts into `t` until stopped; counts the inserts that committed.
fn insert_until(
    schema: &str,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let schema = schema.to_string();
    tokio::spawn(async move {
        let mut c = servers().primary.conn().await;
        let insert = format!("INSERT INTO `{schema}`.t (a, b) VALUES (-1, 'app')");
        while !stop.load(Ordering::Relaxed) {
            if c.query_drop(&insert).await.is_ok() {
                done.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn trigger_names(schema: &str, table: &str) -> Vec<String> {
    let mut c = servers().primary.conn().await;
    c.exec(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
         WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY 1",
        (schema, table),
    )
    .await
    .unwrap()
}

async fn audit_rows(schema: &str) -> u64 {
    let mut c = servers().primary.conn().await;
    c.query_first(format!("SELECT COUNT(*) FROM `{schema}`.audit"))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn triggers_move_to_the_new_table_and_fire_once_per_write_even_after_a_failed_attempt() {
    let schema = with_triggers("triggers_carried").await;
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = insert_until(&schema, stop.clone(), done.clone());
    let args = migrate_args(
        &schema,
        "t",
        ALTER,
        &["--include-triggers", "--trigger-suffix=_v2"],
    );
    // The first attempt fails right after creating the triggers on the ghost table.
    let out = Running::start_with_env(&args, &[("WRAITH_FAILPOINT", "triggers:created:fail")])
        .finish(harness::WRAITH_RUN_LIMIT)
        .await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("creating the triggers") || err.contains("triggers:created"),
        "{err}"
    );
    assert!(err.contains("tables swapped"), "{err}");
    // A write after the swap, through the new table's triggers.
    primary_sql(&schema, &["UPDATE t SET b = 'x' WHERE id = 7"]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    assert_eq!(trigger_names(&schema, "t").await, ["t_ai_v2", "t_bu_v2"]);
    assert_eq!(trigger_names(&schema, "_t_del").await, ["t_ai", "t_bu"]);
    // Every committed insert logged exactly once: nothing fired for the copy or the applier.
    let inserts = done.load(Ordering::Relaxed);
    assert!(inserts > 0);
    assert_eq!(audit_rows(&schema).await, inserts);
    let mut c = servers().primary.conn().await;
    let b: Option<String> = c
        .query_first(format!("SELECT b FROM `{schema}`.t WHERE id = 7"))
        .await
        .unwrap();
    assert_eq!(b.as_deref(), Some("u:x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_names_taken_in_the_schema_are_refused_with_gh_osts_words() {
    let schema = with_triggers("triggers_taken").await;
    let before = harness::table_checksum(&servers().primary, &schema, "t").await;
    // Without a suffix the new names are the old ones, taken.
    let out =
        harness::run_wraith(&migrate_args(&schema, "t", ALTER, &["--include-triggers"])).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("found gh-ost triggers (t_ai,t_bu)"), "{err}");
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["audit", "gate", "t"]
    );
    assert_eq!(
        harness::table_checksum(&servers().primary, &schema, "t").await,
        before
    );
    assert_eq!(trigger_names(&schema, "t").await, ["t_ai", "t_bu"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_the_new_schema_cannot_hold_refuses_the_run_before_the_copy() {
    let schema = with_triggers("triggers_bad").await;
    // The update trigger writes column b, which the ALTER drops.
    let out = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        "DROP COLUMN b",
        &["--include-triggers", "--trigger-suffix=_v2"],
    ))
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot be created on the new table"), "{err}");
    assert!(!err.contains("copying rows"), "{err}");
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["audit", "gate", "t"]
    );
}
