//! Tables whose names are not plain words: a dash, a space, a backtick, a reserved word, letters
//! beyond ASCII, a capital, a common word that other tables' DDL uses for columns and indexes, and a
//! mixed-case name on a server that folds table names to lower case.
//!
//! wraith matches binlog statements to its table by name: it must see its own RENAME of each of
//! these (or the cut-over ends in "the RENAME did not come back through the binlog" after the
//! swap), stop on anyone else's DDL on it, and ignore DDL on other tables that merely uses the
//! same word. Every migration here runs under writers and ends compared with a natively altered
//! mirror (`writers`, `compare`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use wraith::mysql::sql::{qualified, quote_ident};
use wraith::sandbox::ServerSpec;

use crate::compare::{assert_table_migrated, definition, differences};
use crate::harness::{
    self, migrate_args, run_wraith, servers, stderr, sync_replica, tables, Endpoint, Running,
};
use crate::migrate::{small_values, SMALL};
use crate::writers::{
    assert_wrote_through, under_writes, Shape, Writers, MIN_COMMITS_DURING_MIGRATION, PACE,
};

const ALTER: &str = "ADD COLUMN d INT NOT NULL DEFAULT 0";
const ROWS: u64 = 3_000;

/// Creates `table` in `schema` on `endpoint` with [`SMALL`]'s columns and `rows` rows, and,
/// with `mirror`, the mirror: a copy altered natively with [`ALTER`], holding the same rows.
async fn setup(endpoint: &Endpoint, schema: &str, table: &str, rows: u64, mirror: bool) {
    let q = quote_ident(table);
    let mut statements = vec![
        SMALL.replacen("CREATE TABLE t ", &format!("CREATE TABLE {q} "), 1),
        format!(
            "INSERT INTO {q} (a, b, c) SELECT seq, CONCAT('row ', seq), NULL FROM {}",
            harness::seq(1, rows)
        ),
    ];
    if mirror {
        statements.extend([
            format!("CREATE TABLE mirror LIKE {q}"),
            format!("ALTER TABLE mirror {ALTER}"),
            format!("INSERT INTO mirror (id, a, b, c) SELECT id, a, b, c FROM {q}"),
        ]);
    }
    let mut c = endpoint.conn().await;
    c.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .unwrap();
    for s in &statements {
        c.query_drop(s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// Migrates `table` (in a fresh schema named after `test`) with [`ALTER`] under writers, to the
/// end, and compares it with the mirror.
async fn migrates_under_writes(test: &str, table: &'static str) {
    let schema = harness::fresh_schema(test).await;
    setup(&servers().primary, &schema, table, ROWS, true).await;
    sync_replica().await;
    let shape = Shape::by_id(ROWS, small_values).on(table);
    let args = migrate_args(&schema, table, ALTER, &[]);
    let (out, stats, timeline) =
        under_writes(&schema, Arc::new(shape), 4, PACE, run_wraith(&args)).await;
    assert!(
        out.status.success(),
        "migrating {table:?}: wraith failed:\n{}",
        stderr(&out)
    );
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    assert_table_migrated(&schema, table, &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_with_a_dash_migrates_under_writes() {
    migrates_under_writes("names_dash", "my-table").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_with_a_space_in_a_schema_named_with_a_space_migrates_under_writes() {
    migrates_under_writes("names space", "order items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_with_a_backtick_migrates_under_writes() {
    migrates_under_writes("names_backtick", "we`ird").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_like_a_reserved_word_migrates_under_writes() {
    migrates_under_writes("names_reserved", "select").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_with_a_unicode_name_in_a_unicode_schema_migrates_under_writes() {
    migrates_under_writes("names-ü", "tëst ü").await;
}

/// A name that starts with a capital (or a digit) sorts before `_Orders_del` and `_Orders_gho`,
/// so the RENAME waits on the table itself first, holding no other lock: the cut-over must still
/// see it queued there (on a server that keeps names' case).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_with_a_capital_migrates_under_writes() {
    migrates_under_writes("names_capital", "Orders").await;
}

/// Another session running DDL in `schema` over and over, on tables other than `status`, that
/// uses the word `status` for columns, indexes, comments and table names.
struct OtherDdl {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl OtherDdl {
    async fn start(schema: &str) -> OtherDdl {
        let mut c = servers().primary.conn().await;
        c.query_drop(format!("USE {}", quote_ident(schema)))
            .await
            .unwrap();
        let (stop, rounds) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, r) = (stop.clone(), rounds.clone());
        let handle = tokio::spawn(async move {
            let round = [
                "CREATE TABLE other_x (id INT PRIMARY KEY, status INT) COMMENT 'status'",
                "CREATE INDEX status ON other_x (status)",
                "ALTER TABLE other_x ADD COLUMN status2 INT, CHANGE COLUMN status `status` BIGINT",
                "DROP INDEX status ON other_x",
                "ALTER TABLE other_x ADD INDEX status (status2), COMMENT = 'status'",
                "CREATE TABLE status_copy LIKE status",
                "RENAME TABLE other_x TO other_status",
                "DROP TABLE other_status, status_copy",
            ];
            while !s.load(Ordering::Relaxed) {
                for statement in round {
                    c.query_drop(statement)
                        .await
                        .unwrap_or_else(|e| panic!("{statement}: {e}"));
                }
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        OtherDdl {
            stop,
            rounds,
            handle,
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Waits (at most 60 s) for three more rounds, or for `wraith` to end; `when` says which
    /// stage of the run they fall in.
    async fn three_more_rounds(&self, when: &str, wraith: &mut Running) {
        let seen = self.rounds();
        harness::eventually(
            &format!("three rounds of other DDL {when}, or wraith's end"),
            Duration::from_secs(60),
            async || wraith.exited() || self.rounds() >= seen + 3,
        )
        .await;
    }

    /// Stops after the round in progress (which drops what it created).
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("the DDL session panicked");
        self.rounds.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_like_a_common_word_ignores_that_word_in_other_tables_ddl() {
    let schema = harness::fresh_schema("names_status").await;
    setup(&servers().primary, &schema, "status", ROWS, true).await;
    sync_replica().await;
    let ddl = OtherDdl::start(&schema).await;
    // The copy is held by the throttle flag file until the DDL session has run a few rounds
    // while wraith streams the binlog (the heartbeat is written once the streamer runs).
    let flags = tempfile::tempdir().unwrap();
    let throttle = flags.path().join("throttle");
    std::fs::write(&throttle, "").unwrap();
    let args = migrate_args(
        &schema,
        "status",
        ALTER,
        &[&format!("--throttle-flag-file={}", throttle.display())],
    );
    let heartbeat = format!(
        "SELECT COUNT(*) FROM {} WHERE hint = 'heartbeat'",
        qualified(&schema, "_status_ghc")
    );
    let migration = async {
        let mut wraith = Running::start(&args);
        let mut c = servers().primary.conn().await;
        harness::eventually(
            "wraith's heartbeat (its binlog stream runs), or its end",
            Duration::from_secs(60),
            async || {
                wraith.exited()
                    || c.query_first::<u64, _>(&heartbeat).await.ok().flatten() > Some(0)
            },
        )
        .await;
        ddl.three_more_rounds("while wraith streams", &mut wraith)
            .await;
        std::fs::remove_file(&throttle).unwrap();
        // A few more rounds while wraith copies, then the DDL stops: each DDL statement stalls
        // the replica's parallel apply, and DDL without end could keep the replica lagging
        // (and wraith throttled on its lag) for as long as it runs on a busy machine.
        ddl.three_more_rounds("while wraith copies", &mut wraith)
            .await;
        let rounds = ddl.stop().await;
        (wraith.finish(Duration::from_secs(180)).await, rounds)
    };
    let shape = Shape::by_id(ROWS, small_values).on("status");
    let ((out, rounds), stats, timeline) =
        under_writes(&schema, Arc::new(shape), 4, PACE, migration).await;
    assert!(
        out.status.success(),
        "wraith failed ({rounds} rounds of other DDL):\n{}",
        stderr(&out)
    );
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    assert_table_migrated(&schema, "status", &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_on_an_odd_named_table_mid_copy_stops_the_migration_and_leaves_the_table_in_place() {
    let schema = harness::fresh_schema("names_foreign").await;
    let primary = &servers().primary;
    setup(primary, &schema, "my-table", 20_000, false).await;
    sync_replica().await;
    let before = harness::table_checksum(primary, &schema, "my-table").await;
    let flags = tempfile::tempdir().unwrap();
    let throttle = flags.path().join("throttle");
    let args = migrate_args(
        &schema,
        "my-table",
        ALTER,
        &[
            "--chunk-size=100",
            &format!("--throttle-flag-file={}", throttle.display()),
        ],
    );
    let wraith = Running::start(&args);
    // Mid-copy (so the binlog stream surely runs), the copy is held and the table altered.
    let mut c = primary.conn().await;
    harness::hold_copy_once_started(&mut c, &schema, "_my-table_gho", &throttle).await;
    c.query_drop(format!(
        "ALTER TABLE {} ADD INDEX a_idx (a)",
        qualified(&schema, "my-table")
    ))
    .await
    .unwrap();
    std::fs::remove_file(&throttle).unwrap();
    let out = wraith.finish(Duration::from_secs(120)).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "wraith did not stop:\n{err}");
    assert!(
        err.contains("the original table was changed by another statement"),
        "{err}"
    );
    assert!(err.contains("no helper tables were left behind"), "{err}");
    assert_eq!(tables(primary, &schema).await, vec!["my-table"]);
    assert_eq!(
        harness::table_checksum(primary, &schema, "my-table").await,
        before,
        "the table's rows changed"
    );
    let mut indexes: Vec<String> = c
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&schema, "my-table"),
        )
        .await
        .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        vec!["PRIMARY", "a_idx"],
        "the table is the one the other statement altered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_case_name_migrates_on_a_server_that_folds_names_to_lower_case() {
    // lower_case_table_names=1: `Names_App`.`MyTable` is stored, and logged, as names_app.mytable.
    let Some(server) =
        harness::solo(ServerSpec::new("lower-case-names", 80).arg("--lower-case-table-names=1"))
    else {
        return;
    };
    let (schema, table) = ("Names_App", "MyTable");
    let mut c = server.conn().await;
    c.query_drop(format!(
        "DROP DATABASE IF EXISTS {0}; CREATE DATABASE {0}",
        quote_ident(schema)
    ))
    .await
    .unwrap();
    setup(&server, schema, table, ROWS, true).await;
    let writers = Writers::start(
        &server,
        schema,
        Arc::new(Shape::by_id(ROWS, small_values).on(table)),
        2,
        PACE,
    )
    .await;
    assert!(
        writers.wait_for_commits(20, Duration::from_secs(60)).await,
        "the writers did not start committing"
    );
    let mut args = server.flags();
    args.extend([
        harness::unique_server_id_flag(),
        format!("--database={schema}"),
        format!("--table={table}"),
        format!("--alter={ALTER}"),
        "--execute".into(),
        "--allow-on-master".into(),
        "--chunk-size=500".into(),
        "--heartbeat-interval-millis=50".into(),
    ]);
    let out = Running::start(&args).finish(Duration::from_secs(120)).await;
    let _ = writers.wait_for_commits(50, Duration::from_secs(30)).await;
    let stats = writers.stop().await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    assert_eq!(
        tables(&server, "names_app").await,
        vec!["_mytable_del", "mirror", "mytable"]
    );
    assert_eq!(
        definition(&server, "names_app", "mytable").await,
        definition(&server, "names_app", "mirror").await,
        "the table is not defined as the natively altered mirror"
    );
    let (count, samples) = differences(&server, "names_app", "mytable", "mirror", &["id"]).await;
    assert_eq!(
        count,
        0,
        "rows differ from the mirror:\n{}",
        samples.join("\n")
    );
}
