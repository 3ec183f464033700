//! Table shapes and ALTERs beyond an auto-increment `id`, migrated under writes: composite and
//! case-insensitive keys, a table keyed only by a UNIQUE key, a primary key moved to another
//! unique key, column changes (add, drop, widen, retype, recharset, rename), a table written only
//! while it is copied, the binlog connection killed mid-copy, and the writers' stall at cut-over.
//!
//! Every test writes while wraith runs and compares the result, byte for byte, on the primary and
//! the replica, with a mirror table that was altered natively and received the same changes in
//! the same transactions.
//!
//! The writers here address rows by any key (not only `id`): every change to `t` is followed, in
//! the same transaction, by re-copying the touched keys from `t` to the mirror. A transaction's
//! first write to `t` holds the table's metadata lock until it commits, so all its statements see
//! the same `t`, old or new; a writer that finds a renamed or dropped column gone knows the swap
//! has happened and writes the new names from then on.

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::io::AsyncReadExt;

use crate::harness::{self, migrate_args, servers, stderr, sync_replica, tables, Endpoint};
use crate::migrate::{small_values, SMALL};
use crate::writers::{differing_rows, Rng, Workload, WriterStats, Writers};

// ---------------------------------------------------------------------------------------------
// Running wraith
// ---------------------------------------------------------------------------------------------

/// A wraith process running in the background; its output is read as it comes so it never
/// blocks on a full pipe.
struct Running {
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<Vec<u8>>,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl Running {
    fn start(args: &[String]) -> Running {
        let inherit = std::env::var("WRAITH_TEST_STDERR").as_deref() == Ok("inherit");
        let mut cmd = tokio::process::Command::new(harness::wraith_bin());
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        if !inherit {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("starting wraith");
        let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf).await;
                }
                buf
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("wraith is running")
    }

    /// Waits (at most `limit`) for wraith to end.
    async fn finish(mut self, limit: Duration) -> Output {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("waiting for wraith"),
            Err(_) => {
                let _ = self.child.kill().await;
                let err =
                    String::from_utf8_lossy(&self.stderr.await.unwrap_or_default()).into_owned();
                panic!("wraith did not finish within {limit:?}:\n{err}");
            }
        };
        Output {
            status,
            stdout: self.stdout.await.unwrap_or_default(),
            stderr: self.stderr.await.unwrap_or_default(),
        }
    }
}

async fn run_to_end(args: &[String]) -> Output {
    Running::start(args).finish(Duration::from_secs(180)).await
}

// ---------------------------------------------------------------------------------------------
// Writers that address rows by any key
// ---------------------------------------------------------------------------------------------

/// How writers address and change the rows of `t`, and how `t`'s columns map to the mirror's.
#[derive(Clone)]
struct Shape {
    /// The columns writers address rows by: a unique key of `t` before and after the ALTER.
    key: &'static [&'static str],
    /// A random key: one SQL literal per key column.
    random_key: fn(&mut Rng) -> Vec<String>,
    /// The new key for an update that changes the key of the row at `old`.
    rekey: fn(&mut Rng, old: &[String]) -> Vec<String>,
    /// Random assignments to non-key columns, named as before the ALTER.
    values: fn(&mut Rng) -> Vec<(&'static str, String)>,
    /// Columns the ALTER renames, (old, new).
    renamed: &'static [(&'static str, &'static str)],
    /// Columns the ALTER drops.
    dropped: &'static [&'static str],
    /// The mirror's columns copied from `t`, named as after the ALTER (added columns are not).
    copied: &'static [&'static str],
    /// Relative weights of: upsert (INSERT .. ON DUPLICATE KEY UPDATE or REPLACE), update,
    /// key-changing update, delete.
    weights: [u64; 4],
}

impl Shape {
    /// The name in `t` of the column named `name` before the ALTER: itself before the swap,
    /// its new name (or none, if dropped) after.
    fn in_t(&self, name: &'static str, swapped: bool) -> Option<&'static str> {
        if !swapped {
            return Some(name);
        }
        if self.dropped.contains(&name) {
            return None;
        }
        Some(
            self.renamed
                .iter()
                .find(|(old, _)| *old == name)
                .map_or(name, |(_, new)| new),
        )
    }

    /// The column of `t` that the mirror's column `name` is copied from.
    fn source_of(&self, name: &'static str, swapped: bool) -> &'static str {
        if swapped {
            return name;
        }
        self.renamed
            .iter()
            .find(|(_, new)| *new == name)
            .map_or(name, |(old, _)| old)
    }

    fn copied_from(&self, swapped: bool) -> String {
        quoted(self.copied.iter().map(|c| self.source_of(c, swapped)))
    }

    fn key_is(&self, key: &[String]) -> String {
        self.key
            .iter()
            .zip(key)
            .map(|(c, v)| format!("`{c}` = {v}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Statements that make the mirror's row at `key` what `t`'s is (or absent).
    fn mirror(&self, key: &[String], swapped: bool, out: &mut Vec<String>) {
        let at = self.key_is(key);
        out.push(format!("DELETE FROM mirror WHERE {at}"));
        out.push(format!(
            "INSERT INTO mirror ({}) SELECT {} FROM t WHERE {at}",
            quoted(self.copied.iter().copied()),
            self.copied_from(swapped)
        ));
    }

    fn assignments(&self, rng: &mut Rng, swapped: bool) -> Vec<(&'static str, String)> {
        (self.values)(rng)
            .into_iter()
            .filter_map(|(c, v)| self.in_t(c, swapped).map(|c| (c, v)))
            .collect()
    }

    /// One to three random changes to `t`, each mirrored.
    fn transaction(&self, rng: &mut Rng, swapped: bool, out: &mut Vec<String>) {
        let total: u64 = self.weights.iter().sum();
        for _ in 0..1 + rng.below(3) {
            let key = (self.random_key)(rng);
            let mut pick = rng.below(total);
            let op = self
                .weights
                .iter()
                .position(|w| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap();
            match op {
                0 => {
                    let sets = self.assignments(rng, swapped);
                    let names = quoted(self.key.iter().copied().chain(sets.iter().map(|s| s.0)));
                    let values: Vec<&str> = key
                        .iter()
                        .map(String::as_str)
                        .chain(sets.iter().map(|s| s.1.as_str()))
                        .collect();
                    let values = values.join(", ");
                    if sets.is_empty() {
                        out.push(format!("INSERT IGNORE INTO t ({names}) VALUES ({values})"));
                    } else if rng.below(2) == 0 {
                        let update: Vec<String> = sets
                            .iter()
                            .map(|(c, _)| format!("`{c}` = VALUES(`{c}`)"))
                            .collect();
                        out.push(format!(
                            "INSERT INTO t ({names}) VALUES ({values}) ON DUPLICATE KEY UPDATE {}",
                            update.join(", ")
                        ));
                    } else {
                        out.push(format!("REPLACE INTO t ({names}) VALUES ({values})"));
                    }
                    self.mirror(&key, swapped, out);
                }
                1 => {
                    let sets = self.assignments(rng, swapped);
                    if sets.is_empty() {
                        continue;
                    }
                    let sets: Vec<String> =
                        sets.iter().map(|(c, v)| format!("`{c}` = {v}")).collect();
                    out.push(format!(
                        "UPDATE t SET {} WHERE {}",
                        sets.join(", "),
                        self.key_is(&key)
                    ));
                    self.mirror(&key, swapped, out);
                }
                2 => {
                    let new_key = (self.rekey)(rng, &key);
                    let sets: Vec<String> = self
                        .key
                        .iter()
                        .zip(&new_key)
                        .map(|(c, v)| format!("`{c}` = {v}"))
                        .collect();
                    out.push(format!(
                        "UPDATE t SET {} WHERE {}",
                        sets.join(", "),
                        self.key_is(&key)
                    ));
                    self.mirror(&key, swapped, out);
                    self.mirror(&new_key, swapped, out);
                }
                _ => {
                    out.push(format!("DELETE FROM t WHERE {}", self.key_is(&key)));
                    self.mirror(&key, swapped, out);
                }
            }
        }
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writers running [`Shape`] transactions on `t` until stopped.
struct KeyedWriters {
    stop: Arc<AtomicBool>,
    /// How many writers found a renamed or dropped column gone (saw the swap).
    swapped: Arc<AtomicUsize>,
    handles: Vec<tokio::task::JoinHandle<WriterStats>>,
}

impl KeyedWriters {
    async fn start(schema: &str, shape: &Shape, count: usize, pause: Duration) -> KeyedWriters {
        let stop = Arc::new(AtomicBool::new(false));
        let swapped = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for w in 0..count {
            let mut conn = servers().primary.conn().await;
            conn.query_drop(
                "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', SESSION innodb_lock_wait_timeout = 50",
            )
            .await
            .unwrap();
            conn.query_drop(format!("USE `{schema}`")).await.unwrap();
            let (stop, seen, shape) = (stop.clone(), swapped.clone(), shape.clone());
            handles.push(tokio::spawn(async move {
                keyed_write(conn, w as u64, shape, stop, seen, pause).await
            }));
        }
        KeyedWriters {
            stop,
            swapped,
            handles,
        }
    }

    /// Stops the writers; returns what they did and how many of them saw the swap.
    async fn stop(self) -> (WriterStats, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = WriterStats::default();
        for h in self.handles {
            let s = h.await.expect("writer panicked");
            total.commits += s.commits;
            total.rollbacks += s.rollbacks;
            total.conflicts += s.conflicts;
            total.errors.extend(s.errors);
            total.longest_statement = total.longest_statement.max(s.longest_statement);
        }
        (total, self.swapped.load(Ordering::Relaxed))
    }
}

async fn keyed_write(
    mut conn: Conn,
    writer: u64,
    shape: Shape,
    stop: Arc<AtomicBool>,
    seen_swap: Arc<AtomicUsize>,
    pause: Duration,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut rng = Rng::new(1000 + writer);
    let mut swapped = false;
    while !stop.load(Ordering::Relaxed) {
        let rollback = rng.below(10) == 0;
        let mut statements = vec!["START TRANSACTION".to_string()];
        shape.transaction(&mut rng, swapped, &mut statements);
        statements.push(if rollback { "ROLLBACK" } else { "COMMIT" }.into());
        let mut failed = false;
        for s in &statements {
            let started = Instant::now();
            let result = conn.query_drop(s).await;
            stats.longest_statement = stats.longest_statement.max(started.elapsed());
            if let Err(e) = result {
                let _ = conn.query_drop("ROLLBACK").await;
                match &e {
                    mysql_async::Error::Server(se)
                        if se.code == 1213 || se.code == 1062 || se.code == 1205 =>
                    {
                        stats.conflicts += 1
                    }
                    // Unknown column: the table was swapped; write the new names from now on.
                    mysql_async::Error::Server(se)
                        if se.code == 1054
                            && !swapped
                            && (!shape.renamed.is_empty() || !shape.dropped.is_empty()) =>
                    {
                        swapped = true;
                        seen_swap.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => stats.errors.push(format!("{s}: {e}")),
                }
                failed = true;
                break;
            }
        }
        if !failed {
            if rollback {
                stats.rollbacks += 1;
            } else {
                stats.commits += 1;
            }
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Setting up and comparing
// ---------------------------------------------------------------------------------------------

/// Creates `t` with `create`, fills it with `fill`, and creates the mirror: a copy of `t`
/// altered natively with `alter`, holding the same rows.
async fn setup(schema: &str, shape: &Shape, create: &str, alter: &str, fill: &[&str]) {
    let mut c = servers().primary.conn().await;
    c.query_drop(format!("USE `{schema}`")).await.unwrap();
    c.query_drop("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        .await
        .unwrap();
    c.query_drop(create).await.unwrap();
    c.query_drop("CREATE TABLE mirror LIKE t").await.unwrap();
    c.query_drop(format!("ALTER TABLE mirror {alter}"))
        .await
        .unwrap();
    for stmt in fill {
        c.query_drop(*stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    c.query_drop(format!(
        "INSERT INTO mirror ({}) SELECT {} FROM t",
        quoted(shape.copied.iter().copied()),
        shape.copied_from(false)
    ))
    .await
    .unwrap();
    sync_replica().await;
}

/// Runs wraith with `alter` while `writers` keyed writers write; asserts that wraith and the
/// writers succeeded.
async fn migrate_shape(
    schema: &str,
    shape: &Shape,
    alter: &str,
    extra: &[&str],
    writers: usize,
) -> WriterStats {
    let w = KeyedWriters::start(schema, shape, writers, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = run_to_end(&migrate_args(schema, "t", alter, extra)).await;
    // Keep writing a little after the swap: those writes go to the new table.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stats, saw_swap) = w.stop().await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    assert!(stats.commits > 50, "the writers barely wrote ({stats:?})");
    if !shape.renamed.is_empty() || !shape.dropped.is_empty() {
        assert_eq!(
            saw_swap, writers,
            "every writer kept writing to the new table under its new column names"
        );
    }
    stats
}

/// The definition of `table`'s columns and indexes, for comparing a migrated table with the
/// natively altered mirror.
async fn definition(endpoint: &Endpoint, schema: &str, table: &str) -> (Vec<String>, Vec<String>) {
    let mut c = endpoint.conn().await;
    let columns: Vec<String> = c
        .exec(
            "SELECT CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLLATION_NAME, '-'), \
             IFNULL(COLUMN_DEFAULT, '-'), EXTRA) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .unwrap();
    let indexes: Vec<String> = c
        .exec(
            "SELECT CONCAT_WS(' ', INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .unwrap();
    (columns, indexes)
}

async fn column_names(endpoint: &Endpoint, schema: &str, table: &str) -> Vec<String> {
    let mut c = endpoint.conn().await;
    c.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    .await
    .unwrap()
}

/// Rows of `t` and `mirror` that are not byte-for-byte the same (matched on `key` with the
/// key's own collation): their count and up to ten of them, described.
async fn differences(endpoint: &Endpoint, schema: &str, key: &[&str]) -> (u64, Vec<String>) {
    let columns = column_names(endpoint, schema, "mirror").await;
    let on: Vec<String> = key.iter().map(|k| format!("x.`{k}` <=> y.`{k}`")).collect();
    let on = on.join(" AND ");
    let same: Vec<String> = columns
        .iter()
        .map(|c| {
            format!("x.`{c}` <=> y.`{c}` AND CAST(x.`{c}` AS BINARY) <=> CAST(y.`{c}` AS BINARY)")
        })
        .collect();
    let same = same.join(" AND ");
    let show = |alias: &str| -> String {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| format!("IFNULL(HEX({alias}.`{c}`), 'NULL')"))
            .collect();
        format!("CONCAT_WS(',', {})", cols.join(", "))
    };
    let k0 = key[0];
    let only_in_t = format!(
        "FROM `{schema}`.t x LEFT JOIN `{schema}`.mirror y ON {on} WHERE y.`{k0}` IS NULL OR NOT ({same})"
    );
    let only_in_mirror =
        format!("FROM `{schema}`.mirror y LEFT JOIN `{schema}`.t x ON {on} WHERE x.`{k0}` IS NULL");
    let mut c = endpoint.conn().await;
    let count: u64 = c
        .query_first(format!(
            "SELECT (SELECT COUNT(*) {only_in_t}) + (SELECT COUNT(*) {only_in_mirror})"
        ))
        .await
        .unwrap()
        .unwrap();
    let mut samples: Vec<String> = c
        .query(format!(
            "SELECT CONCAT('t: ', {}, '  mirror: ', IF(y.`{k0}` IS NULL, '(none)', {})) {only_in_t} LIMIT 10",
            show("x"),
            show("y")
        ))
        .await
        .unwrap();
    let more: Vec<String> = c
        .query(format!(
            "SELECT CONCAT('t: (none)  mirror: ', {}) {only_in_mirror} LIMIT 10",
            show("y")
        ))
        .await
        .unwrap();
    samples.extend(more);
    (count, samples)
}

/// After a migration: `t` is defined as the mirror and holds the same rows, byte for byte, on
/// the primary and on the replica; the old table is kept and no helper table is left.
async fn assert_same_as_mirror(schema: &str, key: &[&str]) {
    sync_replica().await;
    let s = servers();
    for endpoint in [&s.primary, &s.replica] {
        let at = format!("{}:{}", endpoint.host, endpoint.port);
        assert_eq!(
            definition(endpoint, schema, "t").await,
            definition(endpoint, schema, "mirror").await,
            "t is not defined as the natively altered mirror on {at}"
        );
        let (count, samples) = differences(endpoint, schema, key).await;
        assert!(
            count == 0,
            "t differs from the mirror in {count} rows on {at} (hex of columns {:?}):\n{}",
            column_names(endpoint, schema, "mirror").await,
            samples.join("\n")
        );
        assert_eq!(
            harness::table_checksum(endpoint, schema, "t").await,
            harness::table_checksum(endpoint, schema, "mirror").await,
            "t and the mirror hold different bytes on {at}"
        );
    }
    let names = tables(&s.primary, schema).await;
    assert!(
        names.contains(&"_t_del".to_string()),
        "the old table is kept as _t_del: {names:?}"
    );
    assert!(
        !names.iter().any(|t| t == "_t_gho" || t == "_t_ghc"),
        "helper tables left: {names:?}"
    );
}

fn int_literal(r: &mut Rng) -> String {
    match r.below(8) {
        0 => i32::MIN.to_string(),
        1 => i32::MAX.to_string(),
        2 => "0".into(),
        _ => ((r.next() % 2_000_001) as i64 - 1_000_000).to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Composite primary key
// ---------------------------------------------------------------------------------------------

fn composite_key(r: &mut Rng) -> Vec<String> {
    vec![r.below(400).to_string(), format!("'b{}'", r.below(60))]
}

fn composite_rekey(r: &mut Rng, old: &[String]) -> Vec<String> {
    let new = composite_key(r);
    match r.below(3) {
        0 => vec![new[0].clone(), old[1].clone()],
        1 => vec![old[0].clone(), new[1].clone()],
        _ => new,
    }
}

fn composite_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("v", int_literal(r)),
        ("w", format!("'w{}'", r.below(100_000))),
    ];
    if r.below(3) == 0 {
        v.remove(r.below(2) as usize);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_composite_primary_key_table_migrates_under_writes_that_change_either_key_part() {
    let schema = harness::fresh_schema("shape_composite").await;
    let shape = Shape {
        key: &["a", "b"],
        random_key: composite_key,
        rekey: composite_rekey,
        values: composite_values,
        renamed: &[],
        dropped: &[],
        copied: &["a", "b", "v", "w"],
        weights: [3, 3, 2, 2],
    };
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 7, MODIFY w VARCHAR(64)";
    setup(
        &schema,
        &shape,
        "CREATE TABLE t (a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, w VARCHAR(32), \
         PRIMARY KEY (a, b)) ENGINE=InnoDB",
        alter,
        &[
            "INSERT INTO t (a, b, v, w) SELECT seq % 400, CONCAT('b', seq DIV 400), seq, \
           CONCAT('w', seq) FROM seq_0_to_19999",
        ],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("composite key: {stats:?}");
    assert_same_as_mirror(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Case-insensitive VARCHAR primary key
// ---------------------------------------------------------------------------------------------

/// The spellings of one key under utf8mb4_general_ci: equal to each other, different bytes.
const SPELLINGS: &[&str] = &["key", "KEY", "Key", "kEY", "kEy", "kéy", "KÉY", "kÉy"];

fn ci_key_of(n: u64, spelling: u64) -> String {
    format!("'{}{n}'", SPELLINGS[spelling as usize % SPELLINGS.len()])
}

fn ci_key(r: &mut Rng) -> Vec<String> {
    vec![ci_key_of(
        1 + r.below(6000),
        r.below(SPELLINGS.len() as u64),
    )]
}

/// Mostly a change of case (or accent) only: `'key12'` to `'KEY12'`.
fn ci_rekey(r: &mut Rng, old: &[String]) -> Vec<String> {
    if r.below(5) == 0 {
        return ci_key(r);
    }
    let n: u64 = old[0]
        .trim_matches('\'')
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    vec![ci_key_of(n, r.below(SPELLINGS.len() as u64))]
}

fn ci_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("v", int_literal(r)),
        (
            "note",
            r.pick(&["'note'", "'NOTE'", "'Nöte'", "'nÖTE'", "NULL"])
                .to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_insensitive_varchar_key_keeps_the_exact_bytes_of_every_key_under_case_changing_writes(
) {
    let schema = harness::fresh_schema("shape_ci_key").await;
    let shape = Shape {
        key: &["k"],
        random_key: ci_key,
        rekey: ci_rekey,
        values: ci_values,
        renamed: &[],
        dropped: &[],
        copied: &["k", "v", "note"],
        weights: [3, 2, 3, 2],
    };
    let alter = "ADD COLUMN extra VARCHAR(8) NOT NULL DEFAULT 'x'";
    setup(
        &schema,
        &shape,
        "CREATE TABLE t (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, \
         v INT NOT NULL, note VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci) ENGINE=InnoDB",
        alter,
        &["INSERT INTO t (k, v, note) SELECT CONCAT(ELT(1 + seq % 8, 'key', 'KEY', 'Key', 'kEY', 'kEy', \
           'kéy', 'KÉY', 'kÉy'), seq), seq, 'Note' FROM seq_1_to_5000"],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("case-insensitive key: {stats:?}");
    assert_same_as_mirror(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Only a UNIQUE key
// ---------------------------------------------------------------------------------------------

fn u_key(r: &mut Rng) -> Vec<String> {
    vec![(1 + r.below(30_000)).to_string()]
}

fn u_rekey(r: &mut Rng, _old: &[String]) -> Vec<String> {
    u_key(r)
}

fn u_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("v", int_literal(r)),
        ("w", r.pick(&["'x'", "'yy'", "NULL", "'zzz'"]).to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_whose_only_key_is_a_not_null_unique_key_migrates_under_writes() {
    let schema = harness::fresh_schema("shape_unique_only").await;
    let shape = Shape {
        key: &["u"],
        random_key: u_key,
        rekey: u_rekey,
        values: u_values,
        renamed: &[],
        dropped: &[],
        copied: &["u", "v", "w"],
        weights: [3, 3, 2, 2],
    };
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 1";
    setup(
        &schema,
        &shape,
        "CREATE TABLE t (u BIGINT NOT NULL, v INT, w VARCHAR(32), UNIQUE KEY u_uk (u)) ENGINE=InnoDB",
        alter,
        &["INSERT INTO t (u, v, w) SELECT seq * 2, seq, 'start' FROM seq_1_to_10000"],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("unique key only: {stats:?}");
    assert_same_as_mirror(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 4. The primary key moves to another unique key
// ---------------------------------------------------------------------------------------------

fn code_key(r: &mut Rng) -> Vec<String> {
    vec![format!("'c{}'", 1 + r.below(12_000))]
}

fn code_rekey(r: &mut Rng, _old: &[String]) -> Vec<String> {
    code_key(r)
}

fn code_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    // Always a fresh id (upserts need one), from a space too large to collide: the old primary
    // key stays unique, so REPLACE and ON DUPLICATE KEY only ever meet the row with the same code.
    vec![
        ("id", (1_000_000 + r.next() % 1_000_000_000_000).to_string()),
        ("v", int_literal(r)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moving_the_primary_key_to_an_existing_unique_key_loses_no_write() {
    let schema = harness::fresh_schema("shape_pk_move").await;
    let shape = Shape {
        key: &["code"],
        random_key: code_key,
        rekey: code_rekey,
        values: code_values,
        renamed: &[],
        dropped: &[],
        copied: &["id", "code", "v"],
        weights: [3, 3, 2, 2],
    };
    let alter = "DROP PRIMARY KEY, ADD PRIMARY KEY (code)";
    setup(
        &schema,
        &shape,
        "CREATE TABLE t (id BIGINT NOT NULL, code VARCHAR(20) NOT NULL, v INT, \
         PRIMARY KEY (id), UNIQUE KEY code_uk (code)) ENGINE=InnoDB",
        alter,
        &["INSERT INTO t (id, code, v) SELECT seq, CONCAT('c', seq), seq FROM seq_1_to_10000"],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("primary key moved: {stats:?}");
    assert_same_as_mirror(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Column changes
// ---------------------------------------------------------------------------------------------

const COLUMNS_TABLE: &str = "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL, \
    s VARCHAR(64) CHARACTER SET latin1 NOT NULL, u VARCHAR(64) CHARACTER SET utf8mb4, gone INT) ENGINE=InnoDB";

const COLUMNS_FILL: &str = "INSERT INTO t (id, n, s, u, gone) SELECT seq, CAST(seq AS SIGNED) * 1000 - 2000000000, \
    ELT(1 + seq % 4, 'café', 'naïve', 'Ø', 'plain'), ELT(1 + seq % 4, 'héllo', '😀 𝄞', NULL, ''), seq \
    FROM seq_1_to_8000";

fn id_key(r: &mut Rng) -> Vec<String> {
    vec![(1 + r.below(9_000)).to_string()]
}

fn id_rekey(r: &mut Rng, _old: &[String]) -> Vec<String> {
    id_key(r)
}

fn columns_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("n", int_literal(r)),
        (
            "s",
            r.pick(&["'café'", "'naïve'", "'Ø'", "'plain'", "''"])
                .to_string(),
        ),
        (
            "u",
            r.pick(&["'héllo wörld'", "'😀 four bytes 𝄞'", "NULL", "''"])
                .to_string(),
        ),
        ("gone", r.pick(&["1", "NULL", "-5"]).to_string()),
    ];
    // Upserts must set `n` and `s` (NOT NULL without default); updates may set fewer.
    if r.below(2) == 0 {
        v.truncate(2 + r.below(3) as usize);
    }
    v
}

/// Migrates [`COLUMNS_TABLE`] with `alter` under writes and compares it with the mirror.
async fn column_change_under_writes(
    name: &str,
    alter: &str,
    extra: &[&str],
    renamed: &'static [(&'static str, &'static str)],
    dropped: &'static [&'static str],
    copied: &'static [&'static str],
) {
    let schema = harness::fresh_schema(name).await;
    let shape = Shape {
        key: &["id"],
        random_key: id_key,
        rekey: id_rekey,
        values: columns_values,
        renamed,
        dropped,
        copied,
        weights: [3, 3, 1, 2],
    };
    setup(&schema, &shape, COLUMNS_TABLE, alter, &[COLUMNS_FILL]).await;
    let stats = migrate_shape(&schema, &shape, alter, extra, 4).await;
    eprintln!("{name}: {stats:?}");
    assert_same_as_mirror(&schema, shape.key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_columns_under_writes_gives_them_their_defaults() {
    column_change_under_writes(
        "shape_add_column",
        "ADD COLUMN extra VARCHAR(16) NOT NULL DEFAULT 'new', ADD COLUMN maybe INT NULL AFTER n",
        &[],
        &[],
        &[],
        &["id", "n", "s", "u", "gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_column_under_writes_keeps_every_other_column() {
    column_change_under_writes(
        "shape_drop_column",
        "DROP COLUMN gone",
        &[],
        &[],
        &["gone"],
        &["id", "n", "s", "u"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn widening_int_to_bigint_under_writes_keeps_every_value() {
    column_change_under_writes(
        "shape_widen_int",
        "MODIFY n BIGINT NOT NULL",
        &[],
        &[],
        &[],
        &["id", "n", "s", "u", "gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changing_varchar_to_text_under_writes_keeps_every_value() {
    column_change_under_writes(
        "shape_varchar_text",
        "MODIFY u TEXT CHARACTER SET utf8mb4",
        &[],
        &[],
        &[],
        &["id", "n", "s", "u", "gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn converting_latin1_to_utf8mb4_under_writes_keeps_every_character() {
    column_change_under_writes(
        "shape_latin1_utf8",
        "MODIFY s VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL",
        &[],
        &[],
        &[],
        &["id", "n", "s", "u", "gone"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renamed_column_carries_its_data_under_writes() {
    column_change_under_writes(
        "shape_rename_column",
        "CHANGE u title VARCHAR(64) CHARACTER SET utf8mb4",
        &["--approve-renamed-columns"],
        &[("u", "title")],
        &[],
        &["id", "n", "s", "title", "gone"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. A table written only while it is copied
// ---------------------------------------------------------------------------------------------

fn fresh_id_key(r: &mut Rng) -> Vec<String> {
    vec![(1 + r.below(20_000)).to_string()]
}

fn fresh_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("a", int_literal(r)),
        ("b", format!("'w{}'", r.below(1000))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_written_only_while_the_table_is_copied_all_arrive() {
    for start_rows in [0u64, 50] {
        let schema = harness::fresh_schema(&format!("shape_fresh_{start_rows}")).await;
        let shape = Shape {
            key: &["id"],
            random_key: fresh_id_key,
            rekey: |r, _| fresh_id_key(r),
            values: fresh_values,
            renamed: &[],
            dropped: &[],
            copied: &["id", "a", "b"],
            weights: [8, 1, 1, 1],
        };
        let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
        let insert = format!(
            "INSERT INTO t (id, a, b) SELECT seq * 5, seq, 'start' FROM seq_1_to_{start_rows}"
        );
        let fill: Vec<&str> = if start_rows == 0 {
            vec![]
        } else {
            vec![insert.as_str()]
        };
        setup(
            &schema,
            &shape,
            "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b VARCHAR(32) NOT NULL) ENGINE=InnoDB",
            alter,
            &fill,
        )
        .await;
        // The copy is held back by the throttle flag file while the writers fill the table.
        let flag = tempfile::NamedTempFile::new().unwrap();
        let throttle = format!("--throttle-flag-file={}", flag.path().display());
        let wraith = Running::start(&migrate_args(&schema, "t", alter, &[&throttle]));
        wait_for_table(&schema, "_t_gho", Duration::from_secs(30)).await;
        let w = KeyedWriters::start(&schema, &shape, 6, Duration::ZERO).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(flag);
        let out = wraith.finish(Duration::from_secs(120)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (stats, _) = w.stop().await;
        assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
        assert!(
            stats.errors.is_empty(),
            "writers saw errors: {:?}",
            stats.errors
        );
        assert!(stats.commits > 200, "the writers barely wrote ({stats:?})");
        eprintln!("written while copied (from {start_rows} rows): {stats:?}");
        assert_same_as_mirror(&schema, shape.key).await;
    }
}

async fn wait_for_table(schema: &str, table: &str, limit: Duration) {
    let started = Instant::now();
    while !tables(&servers().primary, schema)
        .await
        .iter()
        .any(|t| t == table)
    {
        assert!(
            started.elapsed() < limit,
            "{table} did not appear within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 7. The binlog connection killed mid-copy
// ---------------------------------------------------------------------------------------------

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| c.to_string()).collect()
}

/// Creates SMALL's `t` with `rows` rows and its mirror altered with `alter`.
async fn setup_small(schema: &str, alter: &str, rows: u64) {
    let mut statements = vec![
        SMALL.to_string(),
        "CREATE TABLE mirror LIKE t".into(),
        format!("ALTER TABLE mirror {alter}"),
    ];
    if rows > 0 {
        statements.push(format!(
            "INSERT INTO t (a, b, c) SELECT seq % 1000000, CONCAT('w', seq % 1000), \
             '2026-01-01 00:00:00.000' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
        ));
    }
    statements.push("INSERT INTO mirror (id, a, b, c) SELECT id, a, b, c FROM t".into());
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    harness::primary_sql(schema, &statements).await;
}

fn small_workload(schema: &str, max_id: u64) -> Workload {
    Workload {
        schema: schema.to_string(),
        table: "t".into(),
        mirror: "mirror".into(),
        copied_columns: names(&["id", "a", "b", "c"]),
        values: small_values,
        max_id,
    }
}

/// The ports of `pid`'s TCP connections to `port` (the local end of each).
fn local_ports_to(pid: u32, port: u16) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.push(inode.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !inodes.iter().any(|i| i == f[9]) {
                continue;
            }
            let port_of = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port_of(f[2]) == Some(port) {
                if let Some(local) = port_of(f[1]) {
                    ports.push(local);
                }
            }
        }
    }
    ports
}

/// The processlist id of wraith's (`pid`'s) binlog dump connection on the replica, if any.
async fn binlog_dump_thread(replica: &mut Conn, pid: u32) -> Option<u64> {
    let ports = local_ports_to(pid, servers().replica.port);
    let dumps: Vec<(u64, String)> = replica
        .query(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .unwrap();
    dumps.into_iter().find_map(|(id, host)| {
        let port: u16 = host.rsplit(':').next()?.parse().ok()?;
        ports.contains(&port).then_some(id)
    })
}

/// Waits until wraith (`pid`) has a binlog dump connection other than `not`.
async fn wait_for_binlog_dump(replica: &mut Conn, pid: u32, not: Option<u64>) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(id) = binlog_dump_thread(replica, pid).await {
            if Some(id) != not {
                return id;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wraith has no (new) binlog dump connection on the replica after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count_rows(schema: &str, table: &str) -> u64 {
    let mut c = servers().primary.conn().await;
    c.query_first(format!("SELECT COUNT(*) FROM `{schema}`.`{table}`"))
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_binlog_connection_twice_mid_copy_loses_nothing() {
    let schema = harness::fresh_schema("shape_kill_binlog").await;
    let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
    let rows = 200_000;
    setup_small(&schema, alter, rows).await;
    let w = Writers::start(
        &servers().primary,
        small_workload(&schema, rows),
        4,
        Duration::from_millis(2),
    )
    .await;
    // The cut-over waits for the postpone flag file, so both kills land before it. The copy is
    // fast (200k rows take about a second here), so it is held by the throttle flag file while
    // wraith reconnects after the first kill, and released just before the second.
    let flags = tempfile::tempdir().unwrap();
    let postpone = flags.path().join("postpone");
    let throttle = flags.path().join("throttle");
    std::fs::write(&postpone, "").unwrap();
    let wraith = Running::start(&migrate_args(
        &schema,
        "t",
        alter,
        &[
            "--chunk-size=200",
            &format!("--postpone-cut-over-flag-file={}", postpone.display()),
            &format!("--throttle-flag-file={}", throttle.display()),
        ],
    ));
    let pid = wraith.pid();
    let mut replica = servers().replica.conn().await;
    let mut copied_at_kill = Vec::new();

    // First kill: while the copy runs.
    let first = wait_for_binlog_dump(&mut replica, pid, None).await;
    let started = Instant::now();
    while count_rows(&schema, "_t_gho").await < 5_000 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the copy did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    copied_at_kill.push(count_rows(&schema, "_t_gho").await);
    replica.query_drop(format!("KILL {first}")).await.unwrap();
    std::fs::write(&throttle, "").unwrap();

    // Second kill: once wraith streams again, just after the copy resumes.
    let second = wait_for_binlog_dump(&mut replica, pid, Some(first)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::remove_file(&throttle).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    copied_at_kill.push(count_rows(&schema, "_t_gho").await);
    replica.query_drop(format!("KILL {second}")).await.unwrap();

    // wraith reads the binlog again after the second kill.
    wait_for_binlog_dump(&mut replica, pid, Some(second)).await;
    eprintln!("binlog connection killed with {copied_at_kill:?} of {rows} rows in the ghost table");
    std::fs::remove_file(&postpone).unwrap();
    let out = wraith.finish(Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = w.stop().await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    assert!(
        copied_at_kill.iter().all(|&n| n < rows * 9 / 10),
        "a kill came after the copy (ghost rows at each kill: {copied_at_kill:?}); make the table larger"
    );
    sync_replica().await;
    for endpoint in [&servers().primary, &servers().replica] {
        assert_eq!(
            differing_rows(
                endpoint,
                &schema,
                "t",
                "mirror",
                &names(&["id", "a", "b", "c", "d"])
            )
            .await,
            0,
            "t differs from the mirror on {}:{}",
            endpoint.host,
            endpoint.port
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. The writers' stall at cut-over
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cut_over_under_writers_causes_no_writer_error_and_reports_the_longest_stall() {
    let schema = harness::fresh_schema("shape_cut_over_stall").await;
    let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
    setup_small(&schema, alter, 5_000).await;
    let w = Writers::start(
        &servers().primary,
        small_workload(&schema, 5_000),
        6,
        Duration::ZERO,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let out = run_to_end(&migrate_args(&schema, "t", alter, &[])).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = w.stop().await;
    let log = stderr(&out);
    assert!(out.status.success(), "wraith failed:\n{log}");
    eprintln!(
        "cut-over stall: the longest writer statement took {:?} ({} commits, {} conflicts, migration {took:?})\n{}",
        stats.longest_statement,
        stats.commits,
        stats.conflicts,
        log.lines()
            .filter(|l| l.contains("cut-over") || l.contains("swapped"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    sync_replica().await;
    for endpoint in [&servers().primary, &servers().replica] {
        assert_eq!(
            differing_rows(
                endpoint,
                &schema,
                "t",
                "mirror",
                &names(&["id", "a", "b", "c", "d"])
            )
            .await,
            0,
            "t differs from the mirror on {}:{}",
            endpoint.host,
            endpoint.port
        );
    }
}
