//! Every row accounted for: rows the new table cannot hold are refused or counted, never lost in
//! silence; rows a key cannot address are still copied; changes that never committed never
//! arrive.
//!
//! - A unique key whose collation compares more loosely after the ALTER (`utf8mb4_bin` to
//!   `_general_ci`; `_general_ci` to `_unicode_ci`, where 'strasse' = 'straße') is not the same
//!   key: rows colliding on it fail the run, or are dropped and counted under
//!   `--allow-skipped-rows`, by the copy and by the applier.
//! - `--allow-nullable-unique-key` with NULLs in the key: those rows are copied and kept in step.
//! - More than 65535 rows skipped in one chunk are counted exactly.
//! - An XA transaction prepared during the copy and rolled back never reaches the new table; one
//!   committed does.
//! - `--panic-on-warnings` with `--skip-strict-mode`: a change the new table would truncate stops
//!   the run with gh-ost's words, before the swap.
//!
//! Every test writes while wraith runs (`writers`: the same statements on `t` and on a mirror, in
//! the same transactions) and compares the result with the mirror (`compare`).

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use wraith::mysql::sql::quote_ident;

use crate::compare::{assert_migrated, assert_table_same_as_mirror};
use crate::harness::{self, migrate_args, servers, stderr, tables, Running};
use crate::migrate::changelog_state;
use crate::writers::{
    assert_wrote_through, under_writes, Rng, Shape, Step, Workload, WriterState,
    MIN_COMMITS_DURING_MIGRATION, PACE,
};

/// Runs `statements` on the primary in `schema` (without waiting for the replica).
async fn run_sql(c: &mut Conn, schema: &str, statements: &[&str]) {
    c.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .unwrap();
    for s in statements {
        c.query_drop(*s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// Writers addressing `t` by its AUTO_INCREMENT `id`, but only rows with ids from `lo` to `hi`
/// (and the rows they insert, above every id there): the rows outside are the test's own.
/// Waits (up to 60 s) until the applier has brought the marker row `id` to `_t_gho` (`c`'s
/// default database is the test's schema).
async fn marker_in_ghost(c: &mut Conn, id: u64) {
    let count = format!("SELECT COUNT(*) FROM _t_gho WHERE id = {id}");
    harness::eventually(
        "the marker row to reach the ghost table",
        Duration::from_secs(60),
        async || c.query_first::<u64, _>(&count).await.unwrap() == Some(1),
    )
    .await;
}

fn by_id_between(lo: u64, hi: u64, values: fn(&mut Rng) -> Vec<(&'static str, String)>) -> Shape {
    let mut shape = Shape::by_id(hi, values);
    shape.random_key = Arc::new(move |r: &mut Rng| vec![(lo + r.below(hi - lo + 1)).to_string()]);
    shape
}

/// The number a wraith log line states before `what` ("... 12 rows were skipped by the copy").
fn count_before(log: &str, what: &str) -> Option<u64> {
    let at = log.find(what)?;
    log[..at].split_whitespace().last()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// 1. A unique key that compares more loosely after the ALTER
// ---------------------------------------------------------------------------------------------

/// A collation change and two values equal under the new collation only.
struct Loosening {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// Two values that are different keys before the ALTER and the same key after it.
    pair: [&'static str; 2],
    /// A third value equal to both after the ALTER, different from both before.
    third: &'static str,
}

const LOOSENINGS: [Loosening; 2] = [
    Loosening {
        name: "bin_to_ci",
        from: "utf8mb4_bin",
        to: "utf8mb4_general_ci",
        pair: ["abc", "ABC"],
        third: "aBc",
    },
    Loosening {
        name: "general_to_unicode",
        from: "utf8mb4_general_ci",
        to: "utf8mb4_unicode_ci",
        pair: ["strasse", "straße"],
        // The 'st' ligature: one letter to _general_ci, 's' and 't' to _unicode_ci.
        third: "\u{FB06}rasse",
    },
];

impl Loosening {
    fn create(&self) -> String {
        format!(
            "CREATE TABLE t (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             v VARCHAR(40) CHARACTER SET utf8mb4 COLLATE {} NOT NULL, n INT NOT NULL DEFAULT 0, \
             UNIQUE KEY v_uidx (v)) ENGINE=InnoDB",
            self.from
        )
    }

    fn alter(&self) -> String {
        format!(
            "MODIFY v VARCHAR(40) CHARACTER SET utf8mb4 COLLATE {} NOT NULL",
            self.to
        )
    }

    /// 20,000 rows; rows 10000 and 15000 hold the pair.
    fn fill(&self) -> Vec<String> {
        vec![
            format!(
                "INSERT INTO t (id, v) SELECT seq, CONCAT('v', seq) FROM {}",
                harness::seq(1, 20_000)
            ),
            format!("UPDATE t SET v = '{}' WHERE id = 10000", self.pair[0]),
            format!("UPDATE t SET v = '{}' WHERE id = 15000", self.pair[1]),
        ]
    }
}

/// Writers' values: `n`, and a fresh `v` of lower-case letters and digits (equal under no
/// collation to any other writer's or to the test's own values). Writers of this shape never
/// move a row to another id (see [`loosening_writers`]).
fn loosening_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("v", format!("'w{}'", r.next())),
        ("n", r.below(1_000_000).to_string()),
    ]
}

/// Writers on rows 1 to 9999 (and the rows they insert), away from the colliding pair: which of
/// two colliding rows is kept would depend on which arrives first. They never move a row to
/// another id: a copy that reads a moved row before the applier has removed it from its old id
/// meets its `v` twice, a duplicate on a key the copy no longer tolerates that the next event
/// resolves (wraith cannot tell it from a lasting one: it would fail or count it).
fn loosening_writers() -> Arc<Shape> {
    let mut shape = by_id_between(1, 9_999, loosening_values);
    shape.weights = [4, 3, 0, 2];
    Arc::new(shape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_unique_key_that_compares_more_loosely_after_the_alter_with_colliding_rows_is_refused(
) {
    for case in &LOOSENINGS {
        let schema = harness::fresh_schema(&format!("loose_refused_{}", case.name)).await;
        let fill = case.fill();
        let mut statements: Vec<&str> = vec![];
        let create = case.create();
        statements.push(&create);
        statements.extend(fill.iter().map(String::as_str));
        // The mirror is not altered: a refused run leaves `t` as the application made it.
        statements.extend([
            "CREATE TABLE mirror LIKE t",
            "INSERT INTO mirror SELECT * FROM t",
        ]);
        harness::primary_sql(&schema, &statements).await;
        let args = migrate_args(&schema, "t", &case.alter(), &[]);
        let workload = loosening_writers();
        let (out, stats, _) =
            under_writes(&schema, workload, 4, PACE, harness::run_wraith(&args)).await;
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{}: wraith migrated although '{}' and '{}' are one key under {}:\n{err}",
            case.name,
            case.pair[0],
            case.pair[1],
            case.to
        );
        assert!(
            err.contains("Duplicate entry")
                && err.contains("v_uidx")
                && err.contains(&format!("'{}'", case.pair[1])),
            "{}: the error names the key and the duplicate:\n{err}",
            case.name
        );
        assert!(
            stats.errors.is_empty(),
            "writers saw errors: {:?}",
            stats.errors
        );
        assert_eq!(
            tables(&servers().primary, &schema).await,
            vec!["mirror", "t"],
            "{}: helper tables are dropped",
            case.name
        );
        assert_table_same_as_mirror(&schema, "t", &["id"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_allow_skipped_rows_rows_colliding_on_a_loosened_key_are_dropped_and_counted() {
    for case in &LOOSENINGS {
        let schema = harness::fresh_schema(&format!("loose_allowed_{}", case.name)).await;
        let fill = case.fill();
        let create = case.create();
        let alter_mirror = format!("ALTER TABLE mirror {}", case.alter());
        let mut statements: Vec<&str> = vec![&create];
        statements.extend(fill.iter().map(String::as_str));
        // The mirror keeps the first row of each new key in id order, as the copy does.
        statements.extend([
            "CREATE TABLE mirror LIKE t",
            &alter_mirror,
            "INSERT IGNORE INTO mirror SELECT * FROM t ORDER BY id",
        ]);
        harness::primary_sql(&schema, &statements).await;
        let flag = tempfile::NamedTempFile::new().unwrap();
        let postpone = format!("--postpone-cut-over-flag-file={}", flag.path().display());
        let args = migrate_args(
            &schema,
            "t",
            &case.alter(),
            &["--allow-skipped-rows", &postpone],
        );
        let workload = loosening_writers();
        let third = case.third;
        let schema_ = schema.clone();
        let migration = async move {
            let wraith = Running::start(&args);
            harness::eventually(
                "the copy to end and the cut-over to be postponed",
                Duration::from_secs(120),
                async || changelog_state(&schema_).await.as_deref() == Some("Postpone"),
            )
            .await;
            // A row the new table cannot hold, written to `t` only, while the applier runs;
            // then a row both tables get, which shows when the applier has passed the first.
            let mut c = servers().primary.conn().await;
            run_sql(
                &mut c,
                &schema_,
                &[
                    &format!("INSERT INTO t (id, v) VALUES (30000000, '{third}')"),
                    "START TRANSACTION",
                    "INSERT INTO t (id, v) VALUES (40000000, 'marker')",
                    "INSERT INTO mirror (id, v) VALUES (40000000, 'marker')",
                    "COMMIT",
                ],
            )
            .await;
            marker_in_ghost(&mut c, 40000000).await;
            drop(flag);
            wraith.finish(harness::WRAITH_RUN_LIMIT).await
        };
        let (out, stats, timeline) = under_writes(&schema, workload, 4, PACE, migration).await;
        let err = stderr(&out);
        assert!(out.status.success(), "{}: wraith failed:\n{err}", case.name);
        assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
        assert_eq!(
            count_before(&err, "rows were skipped by the copy"),
            Some(1),
            "{}: the copy counts the one row of the pair it dropped:\n{err}",
            case.name
        );
        assert_eq!(
            count_before(&err, "rows were skipped by the applier"),
            Some(1),
            "{}: the applier counts the row it dropped:\n{err}",
            case.name
        );
        assert_migrated(&schema, &["id"]).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 2. NULLs in a nullable unique key
// ---------------------------------------------------------------------------------------------

fn nullable_key(r: &mut Rng) -> Vec<String> {
    if r.below(6) == 0 {
        return vec!["NULL".into()];
    }
    vec![(1 + r.below(36_000)).to_string()]
}

fn nullable_rekey(r: &mut Rng, _old: &[String], _unique: u64) -> Vec<String> {
    if r.below(3) == 0 {
        return vec!["NULL".into()];
    }
    nullable_key(r)
}

fn nullable_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("n", r.below(200).to_string()),
        ("s", format!("'x{}'", r.below(1000))),
    ]
}

/// The key shape's writers, and now and then a change to the rows whose key is NULL, which no
/// key addresses: addressed by `n` instead.
struct NullKeyRows(Shape);

impl Workload for NullKeyRows {
    fn transaction(&self, rng: &mut Rng, w: &mut WriterState) -> Vec<Step> {
        if rng.below(5) != 0 {
            return self.0.transaction(rng, w);
        }
        let n = rng.below(200);
        let change = if rng.below(2) == 0 {
            format!("DELETE FROM {{table}} WHERE u IS NULL AND n = {n}")
        } else {
            format!(
                "UPDATE {{table}} SET s = 'null-{}' WHERE u IS NULL AND n = {n}",
                rng.below(100)
            )
        };
        vec![Step::Both {
            t: Some(change.replace("{table}", "t")),
            mirror: Some(change.replace("{table}", "mirror")),
            may_collide: false,
        }]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_nullable_unique_key_with_null_keys_copies_every_row_under_writes() {
    let schema = harness::fresh_schema("null_keys").await;
    let alter = "ADD COLUMN d INT NOT NULL DEFAULT 3";
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (u BIGINT NULL, n INT NOT NULL DEFAULT 0, s VARCHAR(20) NOT NULL DEFAULT '', \
             UNIQUE KEY u_uidx (u)) ENGINE=InnoDB",
            // 30,000 rows, 300 of them with a NULL key; writers address those by `n`.
            &format!(
                "INSERT INTO t (u, n, s) SELECT IF(seq % 100 = 0, NULL, seq), \
                 IF(seq % 100 = 0, seq DIV 100, seq), CONCAT('s', seq) FROM {}",
                harness::seq(1, 30_000)
            ),
            "CREATE TABLE mirror LIKE t",
            &format!("ALTER TABLE mirror {alter}"),
            "INSERT INTO mirror (u, n, s) SELECT u, n, s FROM t",
        ],
    )
    .await;
    let shape = Shape {
        table: "t",
        key: &["u"],
        auto_increment: false,
        random_key: Arc::new(nullable_key),
        rekey: nullable_rekey,
        rekey_may_collide: true,
        values: nullable_values,
        renamed: &[],
        dropped: &[],
        weights: [4, 3, 2, 1],
    };
    let args = migrate_args(
        &schema,
        "t",
        alter,
        &["--allow-nullable-unique-key", "--chunk-size=100"],
    );
    // One writer: writers moving values in and out of NULL on a nullable unique key deadlock
    // with each other (gap locks), which would hide a deadlock wraith caused.
    let (out, stats, timeline) = under_writes(
        &schema,
        Arc::new(NullKeyRows(shape)),
        1,
        PACE,
        harness::run_wraith(&args),
    )
    .await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    eprintln!("null keys: {}", stats.summary());
    let mut c = servers().primary.conn().await;
    let nulls: u64 = c
        .query_first(format!(
            "SELECT COUNT(*) FROM {}.t WHERE u IS NULL",
            quote_ident(&schema)
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        nulls >= 50,
        "only {nulls} rows with a NULL key were left to compare"
    );
    // The new table's index statistics date from when it was empty: without fresh ones the
    // comparison's join takes minutes.
    c.query_drop(format!("ANALYZE TABLE {}.t", quote_ident(&schema)))
        .await
        .unwrap();
    // Matched on every column (`u` alone matches no NULL), NULL-safe, `n` first (never NULL);
    // the checksum counts duplicates.
    assert_migrated(&schema, &["n", "u", "s"]).await;
}

// ---------------------------------------------------------------------------------------------
// 3. More skipped rows in one chunk than the server lists warnings
// ---------------------------------------------------------------------------------------------

fn n_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![("n", r.below(1_000_000).to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_than_65535_rows_skipped_in_one_chunk_are_counted_exactly() {
    let schema = harness::fresh_schema("many_skipped").await;
    let alter = "ADD UNIQUE KEY a_uidx (a)";
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, a INT NULL, \
             n INT NOT NULL DEFAULT 0) ENGINE=InnoDB",
            // 100 values of `a` over 100,000 rows: 99,900 rows the new key cannot hold.
            &format!(
                "INSERT INTO t (id, a) SELECT seq, seq % 100 FROM {}",
                harness::seq(1, 100_000)
            ),
            "CREATE TABLE mirror LIKE t",
            &format!("ALTER TABLE mirror {alter}"),
            "INSERT IGNORE INTO mirror SELECT * FROM t ORDER BY id",
        ],
    )
    .await;
    let args = migrate_args(
        &schema,
        "t",
        alter,
        &["--allow-skipped-rows", "--chunk-size=100000"],
    );
    // Writers keep to rows they insert (with a NULL `a`), above the ones the copy skips.
    let workload = Arc::new(by_id_between(100_001, 101_000, n_values));
    let (out, stats, _) =
        under_writes(&schema, workload, 2, PACE * 2, harness::run_wraith(&args)).await;
    let err = stderr(&out);
    assert!(out.status.success(), "wraith failed:\n{err}");
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    assert_eq!(
        count_before(&err, "rows were skipped by the copy"),
        Some(99_900),
        "every skipped row is counted:\n{err}"
    );
    assert_migrated(&schema, &["id"]).await;
}

// ---------------------------------------------------------------------------------------------
// 4. XA transactions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_xa_transaction_prepared_during_the_copy_and_rolled_back_never_appears() {
    let schema = harness::fresh_schema("xa_rollback").await;
    let alter = "ADD COLUMN d INT";
    harness::primary_sql(
        &schema,
        &[
            crate::migrate::SMALL,
            &format!(
                "INSERT INTO t (id, a, b) SELECT seq, seq, CONCAT('w', seq) FROM {}",
                harness::seq(1, 30_000)
            ),
            "CREATE TABLE mirror LIKE t",
            &format!("ALTER TABLE mirror {alter}"),
            "INSERT INTO mirror (id, a, b, c) SELECT id, a, b, c FROM t",
        ],
    )
    .await;
    let args = migrate_args(&schema, "t", alter, &["--chunk-size=100"]);
    // Rows 1 to 1000 are the XA transactions' own. They are changed once the copy has passed
    // them: a copy waiting on a prepared transaction's locks would hold the applier back, and
    // the test would wait on itself.
    let workload = Arc::new(by_id_between(1001, 29_000, crate::migrate::small_values));
    let schema_ = schema.clone();
    let migration = async move {
        let wraith = Running::start(&args);
        let primary = &servers().primary;
        let (mut rolled_back, mut committed, mut plain) = (
            primary.conn().await,
            primary.conn().await,
            primary.conn().await,
        );
        run_sql(&mut plain, &schema_, &[]).await;
        harness::eventually(
            "the copy to pass row 1000",
            Duration::from_secs(60),
            async || {
                let n: Option<u64> = plain
                    .query_first("SELECT COUNT(*) FROM _t_gho WHERE id = 1000")
                    .await
                    .ok()
                    .flatten();
                n == Some(1)
            },
        )
        .await;
        assert_eq!(
            changelog_state(&schema_).await.as_deref(),
            Some("Copy"),
            "the copy is still running"
        );
        // Prepared, then rolled back: inserts, updates and deletes on `t` only.
        run_sql(
            &mut rolled_back,
            &schema_,
            &[
                "XA START 'wraith-rolled-back'",
                "INSERT INTO t (id, a, b) VALUES (2000000001, 1, 'xa'), (2000000002, 2, 'xa')",
                "UPDATE t SET b = 'xa-rolled-back' WHERE id BETWEEN 1 AND 50",
                "DELETE FROM t WHERE id BETWEEN 51 AND 100",
                "XA END 'wraith-rolled-back'",
                "XA PREPARE 'wraith-rolled-back'",
            ],
        )
        .await;
        // Prepared, then committed: the same on both tables.
        let mut both = vec!["XA START 'wraith-committed', 'b', 7".to_string()];
        for table in ["t", "mirror"] {
            both.extend([
                format!("INSERT INTO {table} (id, a, b) VALUES (2500000001, 1, 'xa'), (2500000002, 2, 'xa')"),
                format!("UPDATE {table} SET b = 'xa-committed' WHERE id BETWEEN 201 AND 250"),
                format!("DELETE FROM {table} WHERE id BETWEEN 251 AND 300"),
            ]);
        }
        both.extend([
            "XA END 'wraith-committed', 'b', 7".to_string(),
            "XA PREPARE 'wraith-committed', 'b', 7".to_string(),
        ]);
        let both: Vec<&str> = both.iter().map(String::as_str).collect();
        run_sql(&mut committed, &schema_, &both).await;
        // A plain transaction after both: once its row is in the ghost table, the applier has
        // read past both prepares.
        run_sql(
            &mut plain,
            &schema_,
            &[
                "START TRANSACTION",
                "INSERT INTO t (id, a, b) VALUES (3000000000, 0, 'marker')",
                "INSERT INTO mirror (id, a, b) VALUES (3000000000, 0, 'marker')",
                "COMMIT",
            ],
        )
        .await;
        marker_in_ghost(&mut plain, 3000000000).await;
        rolled_back
            .query_drop("XA ROLLBACK 'wraith-rolled-back'")
            .await
            .unwrap();
        committed
            .query_drop("XA COMMIT 'wraith-committed', 'b', 7")
            .await
            .unwrap();
        wraith.finish(harness::WRAITH_RUN_LIMIT).await
    };
    let (out, stats, timeline) = under_writes(&schema, workload, 4, PACE, migration).await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    assert_migrated(&schema, &["id"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_panic_on_warnings_a_change_the_new_table_truncates_stops_the_run_before_the_swap() {
    let schema = harness::fresh_schema("panic_warnings").await;
    let primary = &servers().primary;
    let mut c = primary.conn().await;
    run_sql(
        &mut c,
        &schema,
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, b VARCHAR(32) NOT NULL) ENGINE=InnoDB",
            "INSERT INTO t VALUES (1, 'abc'), (2, 'de'), (3, 'f')",
        ],
    )
    .await;
    harness::sync_replica().await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("postpone");
    std::fs::write(&flag, "").unwrap();
    let postpone = format!("--postpone-cut-over-flag-file={}", flag.display());
    // Without strict mode the server truncates the value with a warning instead of failing.
    let args = migrate_args(
        &schema,
        "t",
        "MODIFY b VARCHAR(4) NOT NULL",
        &["--skip-strict-mode", "--panic-on-warnings", &postpone],
    );
    let mut running = Running::start(&args);
    harness::eventually(
        "the cut-over postponed",
        Duration::from_secs(120),
        async || changelog_state(&schema).await.as_deref() == Some("Postpone"),
    )
    .await;
    run_sql(
        &mut c,
        &schema,
        &["INSERT INTO t VALUES (4, 'longer than four')"],
    )
    .await;
    harness::eventually(
        "wraith stopped by the warning",
        Duration::from_secs(60),
        async || running.exited(),
    )
    .await;
    let out = running.finish(Duration::from_secs(10)).await;
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("warnings detected in statement") && log.contains("Data truncated"),
        "{log}"
    );
    assert!(log.contains("The original table is untouched"), "{log}");
    let rows: Vec<(i32, String)> = c
        .query(format!(
            "SELECT id, b FROM {}.t ORDER BY id",
            quote_ident(&schema)
        ))
        .await
        .unwrap();
    assert_eq!(rows.last(), Some(&(4, "longer than four".to_string())));
    assert_eq!(tables(primary, &schema).await, ["t"]);
    run_sql(
        &mut c,
        &schema,
        &[&format!("DROP DATABASE {}", quote_ident(&schema))],
    )
    .await;
}
