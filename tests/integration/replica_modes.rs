//! gh-ost's replica modes: `--migrate-on-replica` migrates and swaps the replica's own table and
//! leaves the primary's alone, while replication goes on.

use mysql_async::prelude::Queryable;

use crate::harness::{self, stderr, tables, Endpoint};
use crate::memory::run_sql;

/// `t` of `schema` on `endpoint`: (rows, whether column `d` exists).
async fn shape(endpoint: &Endpoint, schema: &str) -> (u64, bool) {
    let mut c = endpoint.conn().await;
    let rows: Option<u64> = c
        .query_first(format!("SELECT COUNT(*) FROM `{schema}`.t"))
        .await
        .unwrap();
    let d: Option<String> = c
        .exec_first(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = 'd'",
            (schema,),
        )
        .await
        .unwrap();
    (rows.unwrap_or(0), d.is_some())
}

/// `t` with `rows` rows in a fresh `schema` on the primary, replicated; returns wraith's
/// arguments to add column `d` to it on the replica with `mode`.
async fn on_replica(
    primary: &Endpoint,
    replica: &Endpoint,
    schema: &str,
    rows: u64,
    mode: &str,
) -> Vec<String> {
    crate::throttling::setup_on_pair(primary, replica, schema, rows).await;
    crate::throttling::args_on_pair(replica, schema, &[mode.into()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_on_replica_changes_the_replicas_table_only_and_replication_goes_on() {
    let Some((primary, replica)) = harness::own_pair("replica-modes", &[]) else {
        return;
    };
    let schema = "replica_migrate".to_string();
    let args = on_replica(&primary, &replica, &schema, 3000, "--migrate-on-replica").await;
    // Writes on the primary while the replica's table is migrated: they replicate into it.
    let writes = tokio::spawn({
        let (primary, schema) = (primary.clone(), schema.clone());
        async move {
            let mut c = primary.conn().await;
            for i in 0..200 {
                c.query_drop(format!(
                    "INSERT INTO `{schema}`.t (a, b) VALUES ({i}, 'during')"
                ))
                .await
                .unwrap();
                c.query_drop(format!(
                    "UPDATE `{schema}`.t SET a = a + 1 WHERE id = {}",
                    i * 7 + 1
                ))
                .await
                .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    });
    let out = harness::run_wraith(&args).await;
    writes.await.unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("--migrate-on-replica"), "{err}");

    // Written after the swap on the primary: replicated into the replica's new table.
    run_sql(
        &primary,
        &schema,
        &["INSERT INTO t (a, b) VALUES (-5, 'after')".into()],
    )
    .await;
    harness::sync_replica_of(&primary, &replica).await;
    assert_eq!(tables(&primary, &schema).await, ["t"]);
    assert_eq!(shape(&primary, &schema).await, (3201, false));
    assert_eq!(tables(&replica, &schema).await, ["_t_del", "t"]);
    assert_eq!(shape(&replica, &schema).await, (3201, true));
    // Every row the same on both, in the columns they share.
    let sum = |e: Endpoint| {
        let schema = schema.clone();
        async move {
            let mut c = e.conn().await;
            let s: Option<String> = c
                .query_first(format!(
                    "SELECT CONCAT(COUNT(*), ':', BIT_XOR(CRC32(CONCAT_WS('|', id, a, b, c)))) FROM `{schema}`.t"
                ))
                .await
                .unwrap();
            s.unwrap()
        }
    };
    assert_eq!(sum(primary.clone()).await, sum(replica.clone()).await);
}

/// Whether the replica's SQL thread runs.
async fn replicating(replica: &Endpoint) -> bool {
    let flavor = replica.flavor().await;
    let mut c = replica.conn().await;
    let row: mysql_async::Row = c
        .query_first(flavor.replica_status_sql())
        .await
        .unwrap()
        .unwrap();
    let [.., sql_running, _] = flavor.replica_status_columns();
    row.get::<String, _>(sql_running).as_deref() == Some("Yes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_on_replica_swaps_there_swaps_back_and_leaves_replication_stopped() {
    let Some((primary, replica)) = harness::own_pair("replica-test-mode", &[]) else {
        return;
    };
    for (schema, skip_stop) in [("replica_test", false), ("replica_test_skip", true)] {
        let mut args = on_replica(&primary, &replica, schema, 2000, "--test-on-replica").await;
        if skip_stop {
            args.push("--test-on-replica-skip-replica-stop".into());
        }
        let out = harness::run_wraith(&args).await;
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("swapped back"), "{err}");
        // The primary's table is untouched; on the replica the original is back at `t` and the
        // migrated table waits at `_t_gho`.
        assert_eq!(tables(&primary, schema).await, ["t"]);
        assert_eq!(shape(&primary, schema).await, (2000, false));
        assert_eq!(tables(&replica, schema).await, ["_t_gho", "t"]);
        assert_eq!(shape(&replica, schema).await, (2000, false));
        let mut c = replica.conn().await;
        let migrated: Option<u64> = c
            .query_first(format!("SELECT COUNT(d IS NULL) FROM `{schema}`._t_gho"))
            .await
            .unwrap();
        assert_eq!(migrated, Some(2000));
        assert_eq!(replicating(&replica).await, skip_stop, "{err}");
        if !skip_stop {
            let start = replica.flavor().await.start_replication_sql();
            c.query_drop(start).await.unwrap();
            harness::sync_replica_of(&primary, &replica).await;
        }
    }
}
