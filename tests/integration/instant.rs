//! `--attempt-instant-ddl`: an ALTER the server can make instantly changes the table in place,
//! with no copy and no helper table; one it cannot falls back to the online migration.

use mysql_async::prelude::Queryable;

use crate::harness::{self, migrate_args, servers, stderr, tables};
use crate::throttling;

/// `column` of `t` exists on `endpoint`.
async fn has_column(endpoint: &harness::Endpoint, schema: &str, column: &str) -> bool {
    let mut c = endpoint.conn().await;
    let found: Option<String> = c
        .exec_first(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = ?",
            (schema, column),
        )
        .await
        .unwrap();
    found.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alter_the_server_can_make_instantly_needs_no_copy() {
    let schema = throttling::setup("instant_yes").await;
    let out = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        "ADD COLUMN d INT",
        &["--attempt-instant-ddl"],
    ))
    .await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("changed with ALGORITHM=INSTANT"), "{err}");
    assert!(!err.contains("copying rows"), "{err}");
    assert_eq!(tables(&servers().primary, &schema).await, ["gate", "t"]);
    harness::sync_replica().await;
    for endpoint in [&servers().primary, &servers().replica] {
        assert!(has_column(endpoint, &schema, "d").await);
        let mut c = endpoint.conn().await;
        let rows: Option<u64> = c
            .query_first(format!("SELECT COUNT(*) FROM `{schema}`.t"))
            .await
            .unwrap();
        assert_eq!(rows, Some(3000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alter_that_cannot_be_instant_falls_back_to_the_online_migration() {
    let schema = throttling::setup("instant_no").await;
    // A new index is built, not instant (MariaDB: NOCOPY at best).
    let out = harness::run_wraith(&migrate_args(
        &schema,
        "t",
        "ADD COLUMN d INT, ADD INDEX b_idx (b)",
        &["--attempt-instant-ddl"],
    ))
    .await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ALGORITHM=INSTANT is not possible here"),
        "{err}"
    );
    assert!(err.contains("tables swapped"), "{err}");
    assert_eq!(
        tables(&servers().primary, &schema).await,
        ["_t_del", "gate", "t"]
    );
    assert!(has_column(&servers().primary, &schema, "d").await);
}
