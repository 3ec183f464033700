//! Table shapes and ALTERs beyond an auto-increment `id`, migrated under writes: composite and
//! case-insensitive keys, a table keyed only by a UNIQUE key, a primary key moved to another
//! unique key, column changes (add, drop, widen, retype, recharset, rename), a table written only
//! while it is copied, the binlog connection killed mid-copy, and the writers' stall at cut-over.
//!
//! Every test writes while wraith runs (`writers`: the same statements on `t` and on a mirror
//! altered natively, in the same transactions, addressing rows by any key) and compares the
//! result with the mirror, in definition and byte for byte, on the primary and the replica
//! (`compare`).

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use wraith::mysql::sql::{qualified, quote_ident};

use crate::compare::assert_migrated;
use crate::harness::{self, migrate_args, servers, stderr, sync_replica, tables, Running};
use crate::migrate::{small_values, SMALL};
use crate::writers::{
    assert_wrote_through, quoted, under_writes, Rng, Shape, TableWatch, Workload, WriterStats,
    Writers, MIN_COMMITS_DURING_MIGRATION, PACE,
};

// ---------------------------------------------------------------------------------------------
// Running wraith
// ---------------------------------------------------------------------------------------------

async fn run_to_end(args: &[String]) -> Output {
    harness::run_wraith(args).await
}

// ---------------------------------------------------------------------------------------------
// Setting up and migrating
// ---------------------------------------------------------------------------------------------

/// A shape's writers, for tables keyed by other than an AUTO_INCREMENT `id`.
#[allow(clippy::too_many_arguments)]
fn keyed(
    key: &'static [&'static str],
    random_key: fn(&mut Rng) -> Vec<String>,
    rekey: fn(&mut Rng, &[String], u64) -> Vec<String>,
    values: fn(&mut Rng) -> Vec<(&'static str, String)>,
    renamed: &'static [(&'static str, &'static str)],
    dropped: &'static [&'static str],
    weights: [u64; 4],
) -> Shape {
    Shape {
        table: "t",
        key,
        auto_increment: false,
        random_key: Arc::new(random_key),
        rekey,
        rekey_may_collide: true,
        values,
        renamed,
        dropped,
        weights,
    }
}

/// The column of `t` (before the ALTER) that the mirror's column `name` is filled from.
fn source_of(shape: &Shape, name: &'static str) -> &'static str {
    shape
        .renamed
        .iter()
        .find(|(_, new)| *new == name)
        .map_or(name, |(old, _)| old)
}

/// Creates `t` with `create`, fills it with `fill`, and creates the mirror: a copy of `t`
/// altered natively with `alter`, holding the same rows (its `copied` columns, named as after
/// the ALTER, filled from `t` before any migration starts).
async fn setup(
    schema: &str,
    shape: &Shape,
    copied: &[&'static str],
    create: &str,
    alter: &str,
    fill: &[&str],
) {
    let mut c = servers().primary.conn().await;
    c.query_drop(format!("USE {}", quote_ident(schema)))
        .await
        .unwrap();
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
        quoted(copied.iter().copied()),
        quoted(copied.iter().map(|c| source_of(shape, c)))
    ))
    .await
    .unwrap();
    sync_replica().await;
}

/// Runs wraith with `alter` while `writers` writers write `shape`; asserts that wraith succeeded
/// and that the writers wrote through the migration unharmed.
async fn migrate_shape(
    schema: &str,
    shape: &Shape,
    alter: &str,
    extra: &[&str],
    writers: usize,
) -> WriterStats {
    let args = migrate_args(schema, "t", alter, extra);
    let (out, stats, timeline) = under_writes(
        schema,
        Arc::new(shape.clone()),
        writers,
        PACE,
        run_to_end(&args),
    )
    .await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    if shape.changes_names() {
        assert_eq!(
            stats.saw_swap, writers,
            "every writer kept writing to the new table under its new column names"
        );
    }
    stats
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

fn composite_rekey(r: &mut Rng, old: &[String], _unique: u64) -> Vec<String> {
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
    let shape = keyed(
        &["a", "b"],
        composite_key,
        composite_rekey,
        composite_values,
        &[],
        &[],
        [3, 3, 2, 2],
    );
    let copied: &[&str] = &["a", "b", "v", "w"];
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 7, MODIFY w VARCHAR(64)";
    setup(
        &schema,
        &shape,
        copied,
        "CREATE TABLE t (a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, w VARCHAR(32), \
         PRIMARY KEY (a, b)) ENGINE=InnoDB",
        alter,
        &[&format!(
            "INSERT INTO t (a, b, v, w) SELECT seq % 400, CONCAT('b', seq DIV 400), seq, \
             CONCAT('w', seq) FROM {}",
            harness::seq(0, 19_999)
        )],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("composite key: {}", stats.summary());
    assert_migrated(&schema, shape.key).await;
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
fn ci_rekey(r: &mut Rng, old: &[String], _unique: u64) -> Vec<String> {
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
    let shape = keyed(&["k"], ci_key, ci_rekey, ci_values, &[], &[], [3, 2, 3, 2]);
    let copied: &[&str] = &["k", "v", "note"];
    let alter = "ADD COLUMN extra VARCHAR(8) NOT NULL DEFAULT 'x'";
    setup(
        &schema,
        &shape,
        copied,
        "CREATE TABLE t (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, \
         v INT NOT NULL, note VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci) ENGINE=InnoDB",
        alter,
        &[&format!(
            "INSERT INTO t (k, v, note) SELECT CONCAT(ELT(1 + seq % 8, 'key', 'KEY', 'Key', 'kEY', \
             'kEy', 'kéy', 'KÉY', 'kÉy'), seq), seq, 'Note' FROM {}",
            harness::seq(1, 5000)
        )],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("case-insensitive key: {}", stats.summary());
    assert_migrated(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Only a UNIQUE key
// ---------------------------------------------------------------------------------------------

fn u_key(r: &mut Rng) -> Vec<String> {
    vec![(1 + r.below(30_000)).to_string()]
}

fn u_rekey(r: &mut Rng, _old: &[String], _unique: u64) -> Vec<String> {
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
    let shape = keyed(&["u"], u_key, u_rekey, u_values, &[], &[], [3, 3, 2, 2]);
    let copied: &[&str] = &["u", "v", "w"];
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 1";
    setup(
        &schema,
        &shape,
        copied,
        "CREATE TABLE t (u BIGINT NOT NULL, v INT, w VARCHAR(32), UNIQUE KEY u_uk (u)) ENGINE=InnoDB",
        alter,
        &[&format!(
            "INSERT INTO t (u, v, w) SELECT seq * 2, seq, 'start' FROM {}",
            harness::seq(1, 10_000)
        )],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("unique key only: {}", stats.summary());
    assert_migrated(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 4. The primary key moves to another unique key
// ---------------------------------------------------------------------------------------------

fn code_key(r: &mut Rng) -> Vec<String> {
    vec![format!("'c{}'", 1 + r.below(12_000))]
}

fn code_rekey(r: &mut Rng, _old: &[String], _unique: u64) -> Vec<String> {
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
    let shape = keyed(
        &["code"],
        code_key,
        code_rekey,
        code_values,
        &[],
        &[],
        [3, 3, 2, 2],
    );
    let copied: &[&str] = &["id", "code", "v"];
    let alter = "DROP PRIMARY KEY, ADD PRIMARY KEY (code)";
    setup(
        &schema,
        &shape,
        copied,
        "CREATE TABLE t (id BIGINT NOT NULL, code VARCHAR(20) NOT NULL, v INT, \
         PRIMARY KEY (id), UNIQUE KEY code_uk (code)) ENGINE=InnoDB",
        alter,
        &[&format!(
            "INSERT INTO t (id, code, v) SELECT seq, CONCAT('c', seq), seq FROM {}",
            harness::seq(1, 10_000)
        )],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, &[], 4).await;
    eprintln!("primary key moved: {}", stats.summary());
    assert_migrated(&schema, shape.key).await;
}

// ---------------------------------------------------------------------------------------------
// 5. Column changes
// ---------------------------------------------------------------------------------------------

const COLUMNS_TABLE: &str = "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL, \
    s VARCHAR(64) CHARACTER SET latin1 NOT NULL, u VARCHAR(64) CHARACTER SET utf8mb4, gone INT) ENGINE=InnoDB";

/// 8000 rows for [`COLUMNS_TABLE`].
fn columns_fill() -> String {
    format!(
        "INSERT INTO t (id, n, s, u, gone) SELECT seq, CAST(seq AS SIGNED) * 1000 - 2000000000, \
         ELT(1 + seq % 4, 'café', 'naïve', 'Ø', 'plain'), ELT(1 + seq % 4, 'héllo', '😀 𝄞', NULL, ''), \
         seq FROM {}",
        harness::seq(1, 8000)
    )
}

fn id_key(r: &mut Rng) -> Vec<String> {
    vec![(1 + r.below(9_000)).to_string()]
}

fn id_rekey(r: &mut Rng, _old: &[String], _unique: u64) -> Vec<String> {
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
    let shape = keyed(
        &["id"],
        id_key,
        id_rekey,
        columns_values,
        renamed,
        dropped,
        [3, 3, 1, 2],
    );
    setup(
        &schema,
        &shape,
        copied,
        COLUMNS_TABLE,
        alter,
        &[&columns_fill()],
    )
    .await;
    let stats = migrate_shape(&schema, &shape, alter, extra, 4).await;
    eprintln!("{name}: {}", stats.summary());
    assert_migrated(&schema, shape.key).await;
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
        let shape = keyed(
            &["id"],
            fresh_id_key,
            |r, _, _| fresh_id_key(r),
            fresh_values,
            &[],
            &[],
            [8, 1, 1, 1],
        );
        let copied: &[&str] = &["id", "a", "b"];
        let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
        let insert = format!(
            "INSERT INTO t (id, a, b) SELECT seq * 5, seq, 'start' FROM {}",
            harness::seq(1, start_rows)
        );
        let fill: Vec<&str> = if start_rows == 0 {
            vec![]
        } else {
            vec![insert.as_str()]
        };
        setup(
            &schema,
            &shape,
            copied,
            "CREATE TABLE t (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b VARCHAR(32) NOT NULL) ENGINE=InnoDB",
            alter,
            &fill,
        )
        .await;
        // The copy is held back by the throttle flag file while the writers fill the table.
        let primary = &servers().primary;
        let watch = TableWatch::start(primary, &schema).await;
        let flag = tempfile::NamedTempFile::new().unwrap();
        let throttle = format!("--throttle-flag-file={}", flag.path().display());
        let wraith = Running::start(&migrate_args(&schema, "t", alter, &[&throttle]));
        wait_for_table(&schema, "_t_gho", Duration::from_secs(30)).await;
        let w = Writers::start(primary, &schema, Arc::new(shape), 6, PACE * 2).await;
        assert!(
            w.wait_for_commits(300, Duration::from_secs(60)).await,
            "the writers did not commit 300 transactions while the copy was held"
        );
        drop(flag);
        let out = wraith.finish(Duration::from_secs(120)).await;
        let _ = w.wait_for_commits(50, Duration::from_secs(30)).await;
        let stats = w.stop().await;
        let timeline = watch.stop().await;
        assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
        assert_wrote_through(&stats, &timeline, 300);
        eprintln!(
            "written while copied (from {start_rows} rows): {}",
            stats.summary()
        );
        assert_migrated(&schema, &["id"]).await;
    }
}

async fn wait_for_table(schema: &str, table: &str, limit: Duration) {
    harness::eventually(&format!("{table} to appear"), limit, async || {
        tables(&servers().primary, schema)
            .await
            .iter()
            .any(|t| t == table)
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. The binlog connection killed mid-copy
// ---------------------------------------------------------------------------------------------

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
             '2026-01-01 00:00:00.000' + INTERVAL seq SECOND FROM {}",
            harness::seq(1, rows)
        ));
    }
    statements.push("INSERT INTO mirror (id, a, b, c) SELECT id, a, b, c FROM t".into());
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    harness::primary_sql(schema, &statements).await;
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
    c.query_first(format!("SELECT COUNT(*) FROM {}", qualified(schema, table)))
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Waits until `table` holds at least `n` rows (at most 60 s).
async fn wait_for_rows(schema: &str, table: &str, n: u64) {
    harness::eventually(
        &format!("{table} to hold {n} rows"),
        Duration::from_secs(60),
        async || count_rows(schema, table).await >= n,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_binlog_connection_twice_mid_copy_loses_nothing() {
    let schema = harness::fresh_schema("shape_kill_binlog").await;
    let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
    let rows = 200_000;
    setup_small(&schema, alter, rows).await;
    // The cut-over waits for the postpone flag file, so both kills land before it. The copy is
    // fast (200k rows take about a second here), so it is held by the throttle flag file while
    // wraith reconnects after the first kill, and released just before the second.
    let flags = tempfile::tempdir().unwrap();
    let postpone = flags.path().join("postpone");
    let throttle = flags.path().join("throttle");
    std::fs::write(&postpone, "").unwrap();
    let args = migrate_args(
        &schema,
        "t",
        alter,
        &[
            "--chunk-size=200",
            &format!("--postpone-cut-over-flag-file={}", postpone.display()),
            &format!("--throttle-flag-file={}", throttle.display()),
        ],
    );
    let kills = async {
        let wraith = Running::start(&args);
        let pid = wraith.pid();
        let mut replica = servers().replica.conn().await;
        let mut copied_at_kill = Vec::new();

        // First kill: while the copy runs.
        let first = wait_for_binlog_dump(&mut replica, pid, None).await;
        wait_for_rows(&schema, "_t_gho", 5_000).await;
        copied_at_kill.push(count_rows(&schema, "_t_gho").await);
        replica.query_drop(format!("KILL {first}")).await.unwrap();
        std::fs::write(&throttle, "").unwrap();

        // Second kill: once wraith streams again, just after the copy has resumed.
        let second = wait_for_binlog_dump(&mut replica, pid, Some(first)).await;
        let held = count_rows(&schema, "_t_gho").await;
        std::fs::remove_file(&throttle).unwrap();
        wait_for_rows(&schema, "_t_gho", held + 1_000).await;
        copied_at_kill.push(count_rows(&schema, "_t_gho").await);
        replica.query_drop(format!("KILL {second}")).await.unwrap();

        // wraith reads the binlog again after the second kill.
        wait_for_binlog_dump(&mut replica, pid, Some(second)).await;
        eprintln!(
            "binlog connection killed with {copied_at_kill:?} of {rows} rows in the ghost table"
        );
        std::fs::remove_file(&postpone).unwrap();
        (
            copied_at_kill,
            wraith.finish(Duration::from_secs(180)).await,
        )
    };
    let ((copied_at_kill, out), stats, timeline) = under_writes(
        &schema,
        Arc::new(Shape::by_id(rows, small_values)),
        4,
        PACE,
        kills,
    )
    .await;
    assert!(out.status.success(), "wraith failed:\n{}", stderr(&out));
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    assert!(
        copied_at_kill.iter().all(|&n| n < rows * 9 / 10),
        "a kill came after the copy (ghost rows at each kill: {copied_at_kill:?}); make the table larger"
    );
    assert_migrated(&schema, &["id"]).await;
}

// ---------------------------------------------------------------------------------------------
// 8. The writers' stall at cut-over
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cut_over_under_writers_causes_no_writer_error_and_stalls_them_briefly() {
    let schema = harness::fresh_schema("shape_cut_over_stall").await;
    let alter = "ADD COLUMN d INT NOT NULL DEFAULT 0";
    setup_small(&schema, alter, 5_000).await;
    let started = Instant::now();
    let args = migrate_args(&schema, "t", alter, &[]);
    let (out, stats, timeline) = under_writes(
        &schema,
        Arc::new(Shape::by_id(5_000, small_values)),
        6,
        PACE * 2,
        run_to_end(&args),
    )
    .await;
    let took = started.elapsed();
    let log = stderr(&out);
    assert!(out.status.success(), "wraith failed:\n{log}");
    eprintln!(
        "cut-over stall: {} (migration {took:?})\n{}",
        stats.summary(),
        log.lines()
            .filter(|l| l.contains("cut-over") || l.contains("swapped"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // No writer error, no deadlock in the swap, no statement past the bound.
    assert_wrote_through(&stats, &timeline, MIN_COMMITS_DURING_MIGRATION);
    assert_migrated(&schema, &["id"]).await;
}
