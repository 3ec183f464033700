//! The binlog streamer and decoder against real servers.
//!
//! Values are written on the primary, streamed from the replica's binlog (as wraith reads it by
//! default), decoded, written back as SQL literals into a second table, and the two tables are
//! compared byte for byte by the server.

use std::time::Duration;

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;
use wraith::binlog::{
    BinlogPosition, Cell, ColumnInfo, RowEvent, RowKind, StreamConfig, StreamError, StreamItem,
    Streamer, WatchedTable,
};

use crate::harness::{self, Endpoint};

fn opts(e: &Endpoint) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(e.host.clone())
        .tcp_port(e.port)
        .user(Some(e.user.clone()))
        .pass(Some(e.password.clone()))
        .prefer_socket(false)
        .into()
}

/// The current end of `endpoint`'s binlog: where a stream started now begins.
async fn binlog_end(endpoint: &Endpoint) -> BinlogPosition {
    let flavor = endpoint.flavor().await;
    let mut c = endpoint.conn().await;
    let row: mysql_async::Row = c
        .query_first(flavor.binlog_status_sql())
        .await
        .unwrap()
        .expect("binary logging is on");
    BinlogPosition::new(
        row.get::<String, _>(0).unwrap(),
        row.get::<u64, _>(1).unwrap(),
    )
}

async fn watched(endpoint: &Endpoint, schema: &str, tables: &[&str]) -> Vec<WatchedTable> {
    let mut c = endpoint.conn().await;
    let mut out = Vec::new();
    for t in tables {
        out.push(WatchedTable {
            schema: schema.to_string(),
            table: t.to_string(),
            columns: wraith::inspect::TableSchema::read(&mut c, schema, t)
                .await
                .unwrap()
                .expect("table exists")
                .columns
                .into_iter()
                .map(|c| c.info)
                .collect(),
        });
    }
    out
}

/// Receives items until `done` says the collected row events are complete (or 30 s pass).
async fn collect_rows(
    streamer: &mut Streamer,
    mut done: impl FnMut(&[RowEvent]) -> bool,
) -> Vec<RowEvent> {
    let mut rows = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&rows) {
        let item = tokio::time::timeout_at(deadline, streamer.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {} row events so far", rows.len()))
            .expect("the streamer stopped early");
        if let StreamItem::Rows(r) = item {
            rows.push(r);
        }
    }
    rows
}

fn row_count(events: &[RowEvent]) -> usize {
    events.iter().map(|e| e.rows.len()).sum()
}

/// Applies decoded events to `schema`.`<table><suffix>` on `endpoint` the way an applier would:
/// inserts write the after image, updates replace the row by its key (column 0, `id`), deletes
/// delete by key. Every value goes through `Cell::sql_literal`.
async fn apply_events(
    endpoint: &Endpoint,
    schema: &str,
    suffix: &str,
    columns: &HashMap<String, Vec<ColumnInfo>>,
    events: &[RowEvent],
) {
    let mut c = endpoint.conn().await;
    c.query_drop("SET SESSION time_zone = '+00:00', sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        .await
        .unwrap();
    for e in events {
        let cols = &columns[&e.table];
        let target = format!("`{schema}`.`{}{suffix}`", e.table);
        let writable: Vec<usize> = (0..cols.len()).filter(|i| !cols[*i].generated).collect();
        let names: Vec<String> = writable
            .iter()
            .map(|i| format!("`{}`", cols[*i].name))
            .collect();
        for (before, after) in &e.rows {
            let mut statements = Vec::new();
            if let Some(before) = before {
                statements.push(format!(
                    "DELETE FROM {target} WHERE `{}` = {}",
                    cols[0].name,
                    before[0].sql_literal()
                ));
            }
            if let Some(after) = after {
                let values: Vec<String> =
                    writable.iter().map(|i| after[*i].sql_literal()).collect();
                statements.push(format!(
                    "INSERT INTO {target} ({}) VALUES ({})",
                    names.join(", "),
                    values.join(", ")
                ));
            }
            for sql in statements {
                c.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }
}

/// Rows of `a` and `b` (same columns, key `id`) that differ: `<=>` on every column catches what
/// the hex checksum cannot (FLOAT/DOUBLE bits), the checksum catches what `<=>` cannot
/// (case and padding under a collation).
async fn assert_same_rows(
    endpoint: &Endpoint,
    schema: &str,
    a: &str,
    b: &str,
    columns: &[ColumnInfo],
) {
    let left = harness::table_checksum(endpoint, schema, a).await;
    let right = harness::table_checksum(endpoint, schema, b).await;
    assert_eq!(left, right, "{a} and {b} hold different bytes");
    let mut c = endpoint.conn().await;
    let differs: Vec<String> = columns
        .iter()
        .map(|col| format!("NOT (x.`{0}` <=> y.`{0}`)", col.name))
        .collect();
    let bad: Option<u64> = c
        .query_first(format!(
            "SELECT COUNT(*) FROM `{schema}`.`{a}` x LEFT JOIN `{schema}`.`{b}` y USING (id) \
             WHERE {}",
            differs.join(" OR ")
        ))
        .await
        .unwrap();
    assert_eq!(bad, Some(0), "{a} and {b} differ in value");
}

/// The fixture SQL, split into statements.
fn fixture_statements() -> Vec<String> {
    include_str!("../../src/binlog/fixtures/mariadb-types.sql")
        .split("\n;;")
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Regenerates `src/binlog/fixtures/mariadb-10.11-types.{binlog,columns.tsv}` from a fresh
/// MariaDB server: `cargo test --test integration capture_mariadb_binlog_fixture -- --ignored`.
#[tokio::test]
#[ignore]
async fn capture_mariadb_binlog_fixture() {
    let Some(server) = harness::solo(wraith::sandbox::ServerSpec::new("binlog-fixture", 77)) else {
        return;
    };
    let mut c = server.conn().await;
    let start = binlog_end(&server).await;
    for stmt in fixture_statements() {
        c.query_drop(&stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    let end = binlog_end(&server).await;
    assert_eq!(
        start.file, end.file,
        "the fixture must fit in one binlog file"
    );
    let base: String = c
        .query_first("SELECT @@log_bin_basename")
        .await
        .unwrap()
        .unwrap();
    let dir = std::path::Path::new(&base).parent().unwrap().to_path_buf();
    let bytes = std::fs::read(dir.join(&end.file)).unwrap();
    let version: String = c.query_first("SELECT @@version").await.unwrap().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/binlog/fixtures");
    std::fs::write(
        fixtures.join("mariadb-10.11-types.binlog"),
        &bytes[..end.pos as usize],
    )
    .unwrap();
    let rows: Vec<mysql_async::Row> = c
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, \
             CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'fx' ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .unwrap();
    let mut tsv = format!("# {version}: information_schema.COLUMNS of schema fx\n");
    for row in rows {
        let fields: Vec<String> = (0..8)
            .map(|i| {
                row.get::<Option<String>, _>(i)
                    .flatten()
                    .unwrap_or_else(|| "\\N".into())
            })
            .collect();
        tsv.push_str(&fields.join("\t"));
        tsv.push('\n');
    }
    std::fs::write(fixtures.join("mariadb-10.11-types.columns.tsv"), tsv).unwrap();
}

fn stream_config(endpoint: &Endpoint, server_id: u32, start: BinlogPosition) -> StreamConfig {
    let mut config = StreamConfig::new(opts(endpoint), server_id, start);
    config.reconnect_delay = Duration::from_millis(200);
    config.heartbeat = Duration::from_secs(1);
    config
}

const FIXTURE_TABLES: [&str; 6] = ["ints", "nums", "bits", "strs", "times", "gen"];

/// The fixture statements for `schema`, without the CREATE DATABASE and the foreign table.
fn fixture_for(schema: &str) -> Vec<String> {
    fixture_statements()
        .into_iter()
        .filter(|s| !s.starts_with("CREATE DATABASE") && !s.contains("fx.other"))
        .map(|s| s.replace("fx.", &format!("`{schema}`.")))
        .collect()
}

#[tokio::test]
async fn every_type_round_trips_from_the_replica_binlog_into_a_copy_of_the_table() {
    let servers = harness::servers();
    let schema = harness::fresh_schema("binlog_round_trip").await;
    let statements = fixture_for(&schema);
    let (creates, changes): (Vec<String>, Vec<String>) = statements
        .into_iter()
        .partition(|s| s.starts_with("CREATE") || s.starts_with("SET"));
    let creates: Vec<&str> = creates.iter().map(String::as_str).collect();
    harness::primary_sql(&schema, &creates).await;
    let copies: Vec<String> = FIXTURE_TABLES
        .iter()
        .map(|t| format!("CREATE TABLE `{t}_copy` LIKE `{t}`"))
        .collect();
    harness::primary_sql(
        &schema,
        &copies.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    let start = binlog_end(&servers.replica).await;
    let tables = watched(&servers.replica, &schema, &FIXTURE_TABLES).await;
    let columns: HashMap<String, Vec<ColumnInfo>> = tables
        .iter()
        .map(|t| (t.table.clone(), t.columns.clone()))
        .collect();
    let cancel = CancellationToken::new();
    let mut streamer =
        Streamer::start(stream_config(&servers.replica, 4101, start), tables, cancel);

    let mut session = vec!["SET SESSION time_zone = '+00:00', sql_mode = 'NO_ENGINE_SUBSTITUTION'"];
    session.extend(
        changes
            .iter()
            .map(String::as_str)
            .filter(|s| !s.starts_with("SET")),
    );
    harness::primary_sql(&schema, &session).await;

    // 4+4+4+1 inserted rows per table (bits has 4 in two statements), 2 in gen, then
    // an update of one ints row, a delete of one, and an update of two strs rows.
    let expected = 4 * 5 + 2 + 1 + 1 + 2;
    let events = collect_rows(&mut streamer, |e| row_count(e) >= expected).await;
    assert_eq!(row_count(&events), expected);
    assert!(events.iter().all(|e| e.schema == schema));
    // Every transaction came from the primary, and says so in its GTID.
    let origin: String = servers
        .primary
        .conn()
        .await
        .query_first(servers.flavor.own_gtid_prefix_sql())
        .await
        .unwrap()
        .unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.gtid.as_deref().is_some_and(|g| g.starts_with(&origin))),
        "GTIDs not starting with {origin}: {:?}",
        events.iter().map(|e| &e.gtid).collect::<Vec<_>>()
    );

    apply_events(&servers.primary, &schema, "_copy", &columns, &events).await;
    for t in FIXTURE_TABLES {
        assert_same_rows(
            &servers.primary,
            &schema,
            t,
            &format!("{t}_copy"),
            &columns[t],
        )
        .await;
    }
    streamer.finish().await.unwrap();
}

#[tokio::test]
async fn rows_of_other_tables_are_skipped_and_commits_mark_transaction_ends() {
    let servers = harness::servers();
    let schema = harness::fresh_schema("binlog_skip").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE watched (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE ignored (id INT PRIMARY KEY, v INT)",
        ],
    )
    .await;
    let start = binlog_end(&servers.replica).await;
    let tables = watched(&servers.replica, &schema, &["watched"]).await;
    let mut streamer = Streamer::start(
        stream_config(&servers.replica, 4102, start.clone()),
        tables,
        CancellationToken::new(),
    );
    harness::primary_sql(
        &schema,
        &[
            "INSERT INTO ignored VALUES (1, 1), (2, 2)",
            "BEGIN",
            "INSERT INTO watched VALUES (1, 10)",
            "INSERT INTO ignored VALUES (3, 3)",
            "UPDATE watched SET v = 11 WHERE id = 1",
            "COMMIT",
            "DELETE FROM ignored",
            "DELETE FROM watched",
        ],
    )
    .await;

    let mut items = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut commits_after_rows = 0;
    let mut saw_rows = false;
    while commits_after_rows < 2 {
        let item = tokio::time::timeout_at(deadline, streamer.recv())
            .await
            .unwrap()
            .unwrap();
        match &item {
            StreamItem::Rows(_) => saw_rows = true,
            StreamItem::Commit(_) if saw_rows => {
                commits_after_rows += 1;
                saw_rows = false;
            }
            _ => {}
        }
        items.push(item);
    }
    let rows: Vec<&RowEvent> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Rows(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(rows.iter().all(|r| r.table == "watched"));
    let kinds: Vec<RowKind> = rows.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [RowKind::Insert, RowKind::Update, RowKind::Delete]);
    assert_eq!(rows[1].rows[0].1.as_ref().unwrap()[1], Cell::Int(11));
    // The insert and update share one transaction: one GTID, one commit after both.
    assert_eq!(rows[0].gtid, rows[1].gtid);
    assert_ne!(rows[1].gtid, rows[2].gtid);
    let positions: Vec<BinlogPosition> = items
        .iter()
        .map(|i| match i {
            StreamItem::Rows(r) => r.position.clone(),
            StreamItem::Commit(b) => b.position.clone(),
            StreamItem::Statement { position, .. } => position.clone(),
        })
        .collect();
    // (A statement and the commit after it share one position; DDL of other tests shows up.)
    assert!(
        positions.windows(2).all(|w| w[0] <= w[1]),
        "positions go forward: {positions:?}"
    );
    assert!(rows.windows(2).all(|w| w[0].position < w[1].position));
    assert!(positions[0] > start);
    let first_commit = items
        .iter()
        .find_map(|i| match i {
            StreamItem::Commit(b) if b.position > rows[1].position => Some(b.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        first_commit.xid.is_some(),
        "an InnoDB transaction ends with an XID event"
    );
    assert_eq!(first_commit.gtid, rows[0].gtid);
    streamer.finish().await.unwrap();
}

/// The ids in the after images (inserts) of `events`, in order.
fn inserted_ids(events: &[RowEvent]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e.kind == RowKind::Insert)
        .flat_map(|e| e.rows.iter())
        .map(|(_, after)| match after.as_ref().unwrap()[0] {
            Cell::Int(i) => i,
            ref other => panic!("id {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_killed_binlog_connection_resumes_without_losing_or_repeating_a_change() {
    let servers = harness::servers();
    let schema = harness::fresh_schema("binlog_kill").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(200))",
            // A user of its own, so the test can find its own dump thread on the replica.
            "CREATE USER IF NOT EXISTS 'wraith_kill'@'localhost' IDENTIFIED BY 'k'",
            "CREATE USER IF NOT EXISTS 'wraith_kill'@'127.0.0.1' IDENTIFIED BY 'k'",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'wraith_kill'@'localhost'",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'wraith_kill'@'127.0.0.1'",
        ],
    )
    .await;
    let start = binlog_end(&servers.replica).await;
    let tables = watched(&servers.replica, &schema, &["t"]).await;
    let streamer_endpoint = Endpoint {
        user: "wraith_kill".into(),
        password: "k".into(),
        ..servers.replica.clone()
    };
    let mut config = stream_config(&streamer_endpoint, 4103, start);
    config.channel_capacity = 4;
    let mut streamer = Streamer::start(config, tables, CancellationToken::new());

    // Transactions of 1 and of 3 rows (multi-event transactions: a kill can land inside one).
    const N: i64 = 600;
    let writer_schema = schema.clone();
    let writer = tokio::spawn(async move {
        let mut c = harness::servers().primary.conn().await;
        c.query_drop(format!("USE `{writer_schema}`"))
            .await
            .unwrap();
        let mut id = 1;
        while id <= N {
            if id % 2 == 0 && id + 2 <= N {
                c.query_drop("BEGIN").await.unwrap();
                for k in id..id + 3 {
                    c.query_drop(format!("INSERT INTO t VALUES ({k}, REPEAT('x', 150))"))
                        .await
                        .unwrap();
                }
                c.query_drop("COMMIT").await.unwrap();
                id += 3;
            } else {
                c.query_drop(format!("INSERT INTO t VALUES ({id}, 'y')"))
                    .await
                    .unwrap();
                id += 1;
            }
        }
    });

    let mut events = Vec::new();
    let mut kills = 0;
    let mut admin = servers.replica.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while inserted_ids(&events).len() < N as usize {
        let item = tokio::time::timeout_at(deadline, streamer.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} rows", inserted_ids(&events).len()))
            .expect("the streamer stopped");
        if let StreamItem::Rows(r) = item {
            events.push(r);
        }
        let seen = inserted_ids(&events).len();
        if (kills == 0 && seen >= 100) || (kills == 1 && seen >= 350) {
            let ids: Vec<u64> = admin
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE USER = 'wraith_kill' AND COMMAND LIKE 'Binlog Dump%'",
                )
                .await
                .unwrap();
            if let Some(id) = ids.first() {
                admin.query_drop(format!("KILL {id}")).await.unwrap();
                kills += 1;
            }
        }
    }
    writer.await.unwrap();
    assert_eq!(kills, 2, "the test killed the dump thread twice");
    let ids = inserted_ids(&events);
    assert_eq!(
        ids,
        (1..=N).collect::<Vec<_>>(),
        "every row exactly once, in order"
    );
    // And nothing more arrives.
    assert!(tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match streamer.recv().await {
                Some(StreamItem::Rows(r)) => break r,
                Some(_) => continue,
                None => std::future::pending().await,
            }
        }
    })
    .await
    .is_err());
    streamer.finish().await.unwrap();
}

#[tokio::test]
async fn compressed_mariadb_events_stop_the_stream_with_a_clear_error() {
    let Some(server) = harness::solo(
        wraith::sandbox::ServerSpec::new("binlog-compressed", 78)
            .arg("--log-bin-compress=ON")
            .arg("--log-bin-compress-min-len=10"),
    ) else {
        return;
    };
    let mut c = server.conn().await;
    c.query_drop("CREATE DATABASE IF NOT EXISTS z")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE IF NOT EXISTS z.t (id INT PRIMARY KEY, pad TEXT)")
        .await
        .unwrap();
    let start = binlog_end(&server).await;
    let tables = watched(&server, "z", &["t"]).await;
    let mut streamer = Streamer::start(
        stream_config(&server, 4104, start),
        tables,
        CancellationToken::new(),
    );
    c.query_drop("INSERT INTO z.t VALUES (1, REPEAT('compress me ', 100))")
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        while streamer.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the streamer must stop on a compressed event");
    let err = streamer.finish().await.unwrap_err();
    assert!(matches!(err, StreamError::Compressed { .. }), "{err}");
    assert!(err.to_string().contains("log_bin_compress=OFF"), "{err}");
}

#[tokio::test]
async fn a_connection_killed_inside_a_large_transaction_hands_out_its_rows_once() {
    let servers = harness::servers();
    let schema = harness::fresh_schema("binlog_kill_big").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, pad MEDIUMTEXT)",
            "CREATE USER IF NOT EXISTS 'wraith_kill_big'@'localhost' IDENTIFIED BY 'k'",
            "CREATE USER IF NOT EXISTS 'wraith_kill_big'@'127.0.0.1' IDENTIFIED BY 'k'",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'wraith_kill_big'@'localhost'",
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'wraith_kill_big'@'127.0.0.1'",
        ],
    )
    .await;
    let start = binlog_end(&servers.replica).await;
    let tables = watched(&servers.replica, &schema, &["t"]).await;
    let endpoint = Endpoint {
        user: "wraith_kill_big".into(),
        password: "k".into(),
        ..servers.replica.clone()
    };
    let mut config = stream_config(&endpoint, 4105, start);
    config.channel_capacity = 1;
    let mut streamer = Streamer::start(config, tables, CancellationToken::new());

    // One transaction of 1000 rows events of 16 KB each: far more than the socket buffers hold,
    // so a slow consumer keeps the server's dump thread in the middle of it.
    const N: i64 = 1000;
    let mut statements = vec!["BEGIN".to_string()];
    statements.extend((1..=N).map(|i| format!("INSERT INTO t VALUES ({i}, REPEAT('p', 16384))")));
    statements.push("COMMIT".into());
    harness::primary_sql(
        &schema,
        &statements.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    let mut events = Vec::new();
    let mut killed = false;
    let mut admin = servers.replica.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while inserted_ids(&events).len() < N as usize {
        let item = tokio::time::timeout_at(deadline, streamer.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} rows", inserted_ids(&events).len()))
            .expect("the streamer stopped");
        if let StreamItem::Rows(r) = item {
            events.push(r);
        }
        if !killed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !killed && events.len() >= 30 {
            let ids: Vec<u64> = admin
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE USER = 'wraith_kill_big' AND COMMAND LIKE 'Binlog Dump%'",
                )
                .await
                .unwrap();
            admin.query_drop(format!("KILL {}", ids[0])).await.unwrap();
            killed = true;
        }
    }
    assert_eq!(inserted_ids(&events), (1..=N).collect::<Vec<_>>());
    // The transaction's commit arrives once, after its last row.
    let commit = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match streamer.recv().await {
                Some(StreamItem::Commit(b)) => break b,
                Some(StreamItem::Rows(r)) => panic!("a row arrived twice: {:?}", r.position),
                Some(_) => continue,
                None => panic!("the streamer stopped"),
            }
        }
    })
    .await
    .unwrap();
    assert!(commit.position > events.last().unwrap().position);
    streamer.finish().await.unwrap();
}
