//! `wraith demo`: a migration on throw-away servers, to see wraith work in a minute.
//!
//! In: [`DemoArgs`]. Out: a MariaDB primary and replica on free ports of 127.0.0.1 (`sandbox`), a
//! `demo.orders` table filled with rows, and a live migration of it (`--execute`) run through the
//! same code path as the command line, reading the replica's binlog and writing the primary, while
//! a built-in application keeps inserting, updating and deleting orders. Every write also goes,
//! in the same transaction, to `demo.orders_mirror`, altered natively beforehand; at the end the
//! migrated table is compared with the mirror row by row. Everything started is stopped and
//! removed when the demo ends (or on Ctrl-C).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::cli::{self, DemoArgs};
use crate::{config, migration, sandbox};

const ALTER: &str = "ADD COLUMN note VARCHAR(64) NOT NULL DEFAULT '', MODIFY amount DECIMAL(14,2) NOT NULL, ADD INDEX created_idx (created_at)";
/// The columns the application writes (in both tables).
const COLUMNS: &str = "id, customer_id, amount, status, created_at";
/// Every column of the migrated table, compared at the end.
const ALL_COLUMNS: [&str; 6] = [
    "id",
    "customer_id",
    "amount",
    "status",
    "created_at",
    "note",
];

/// A small application: random inserts, updates, key changes and deletes on `orders`, each
/// mirrored into `orders_mirror` in the same transaction. Returns the errors it saw.
async fn application(
    mut c: mysql_async::Conn,
    writer: u64,
    max_id: u64,
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(writer + 1) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut new_id = 1_000_000_000 * (writer + 1);
    while !stop.load(Ordering::Relaxed) {
        let id = 1 + next() % max_id;
        let ops = match next() % 4 {
            0 => vec![
                format!("INSERT INTO orders (customer_id, amount, status, created_at) VALUES ({}, {}.{:02}, 'new', NOW(3))", next() % 9973, next() % 10000, next() % 100),
                format!("INSERT INTO orders_mirror ({COLUMNS}) SELECT {COLUMNS} FROM orders WHERE id = LAST_INSERT_ID()"),
            ],
            1 => vec![
                format!("UPDATE orders SET status = ELT(1 + {} % 4, 'new','paid','shipped','cancelled'), amount = amount + 1 WHERE id = {id}", next()),
                format!("REPLACE INTO orders_mirror ({COLUMNS}) SELECT {COLUMNS} FROM orders WHERE id = {id}"),
            ],
            2 => {
                new_id += 1;
                vec![
                    format!("UPDATE orders SET id = {new_id} WHERE id = {id}"),
                    format!("DELETE FROM orders_mirror WHERE id = {id}"),
                    format!("INSERT INTO orders_mirror ({COLUMNS}) SELECT {COLUMNS} FROM orders WHERE id = {new_id}"),
                ]
            }
            _ => vec![format!("DELETE FROM orders WHERE id = {id}"), format!("DELETE FROM orders_mirror WHERE id = {id}")],
        };
        let text = format!("START TRANSACTION; {}; COMMIT", ops.join("; "));
        match c.query_drop(text).await {
            Ok(()) => {
                writes.fetch_add(1, Ordering::Relaxed);
            }
            // The application's own conflicts (deadlocks, a moved key colliding with an
            // AUTO_INCREMENT value): rolled back, as an application would.
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1062 | 1205 | 1213) => {
                let _ = c.query_drop("ROLLBACK").await;
            }
            Err(e) => {
                let _ = c.query_drop("ROLLBACK").await;
                errors.push(e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    errors
}

pub async fn run(args: DemoArgs, cancel: CancellationToken) -> Result<()> {
    let spinner =
        ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg}")?);
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner.set_message("starting a MariaDB primary and replica on 127.0.0.1 ...");
    let started = Instant::now();
    let pair = sandbox::Pair::start("demo")
        .await
        .context("starting the demo servers")?;
    spinner.println(format!(
        "servers up in {:.1}s: primary 127.0.0.1:{}, replica 127.0.0.1:{} (user root, no password)",
        started.elapsed().as_secs_f64(),
        pair.primary.port,
        pair.replica.port
    ));

    spinner.set_message(format!("creating demo.orders with {} rows ...", args.rows));
    let mut conn = pair.primary.conn().await?;
    conn.query_drop("CREATE DATABASE demo").await?;
    conn.query_drop("USE demo").await?;
    conn.query_drop(
        "CREATE TABLE demo.orders (\n  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n  customer_id INT NOT NULL,\n  amount DECIMAL(10,2) NOT NULL,\n  status ENUM('new','paid','shipped','cancelled') NOT NULL,\n  created_at DATETIME(3) NOT NULL,\n  KEY customer_idx (customer_id)\n) ENGINE=InnoDB",
    )
    .await?;
    conn.query_drop(format!(
        "INSERT INTO demo.orders (customer_id, amount, status, created_at) \
         SELECT seq % 9973, (seq * 7919 % 100000) / 100, ELT(1 + seq % 4, 'new','paid','shipped','cancelled'), \
         TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_{}",
        args.rows.max(1)
    ))
    .await?;
    conn.query_drop("CREATE TABLE orders_mirror LIKE orders")
        .await?;
    conn.query_drop(format!("ALTER TABLE orders_mirror {ALTER}"))
        .await?;
    conn.query_drop(format!(
        "INSERT INTO orders_mirror ({COLUMNS}) SELECT {COLUMNS} FROM orders"
    ))
    .await?;
    pair.sync().await?;
    spinner.finish_and_clear();
    println!(
        "demo.orders: {} rows, replicated; demo.orders_mirror: the same rows, altered natively",
        args.rows
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut app = Vec::new();
    for w in 0..2u64 {
        let mut c = pair.primary.conn().await?;
        c.query_drop("USE demo").await?;
        let (stop, writes, max_id) = (stop.clone(), writes.clone(), args.rows.max(1));
        app.push(tokio::spawn(async move {
            application(c, w, max_id, stop, writes).await
        }));
    }
    println!(
        "an application is now writing to demo.orders (inserts, updates, deletes, key changes)"
    );

    let argv = [
        "wraith".to_string(),
        "--host=127.0.0.1".into(),
        format!("--port={}", pair.replica.port),
        "--user=root".into(),
        "--database=demo".into(),
        "--table=orders".into(),
        format!("--alter={ALTER}"),
        "--execute".into(),
        "--chunk-size=2000".into(),
        "--verbose".into(),
    ];
    println!("running: {}", shell_words(&argv));
    let cfg = config::build(cli::parse(argv)?, || Ok(String::new()))?;
    let outcome = migration::run(&cfg, cancel.clone()).await;
    // The application keeps writing briefly after the swap: those writes land in the new table.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut app_errors = Vec::new();
    for task in app {
        app_errors.extend(task.await?);
    }
    let report = outcome.map_err(|f| anyhow::anyhow!("{}\n{}", f.error, f.aftermath()))?;
    pair.sync().await?;
    let differing: u64 = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM orders o LEFT JOIN orders_mirror m ON o.id = m.id WHERE m.id IS NULL OR NOT ({same}) \
             UNION ALL SELECT COUNT(*) FROM orders_mirror m LEFT JOIN orders o ON o.id = m.id WHERE o.id IS NULL",
            same = ALL_COLUMNS.iter().map(|c| format!("o.{c} <=> m.{c} AND BINARY o.{c} <=> BINARY m.{c}")).collect::<Vec<_>>().join(" AND ")
        ))
        .await?
        .unwrap_or(0);
    let total: u64 = conn
        .query_first("SELECT COUNT(*) FROM orders")
        .await?
        .unwrap_or(0);
    println!(
        "\nmigrated demo.orders on {} (binlog read from replica {}, written on primary {}):\n  key: {} ({}); {} columns copied; added: {}\n  {} rows copied in {:.1}s, {} binlog row events applied\n  writers blocked at cut-over: {:.3}s\n  the application made {} writes during the run, with {} errors\n  verification: {} rows in demo.orders, {}",
        report.flavor,
        report.inspected,
        report.primary,
        report.plan.key.name,
        report.plan.key.columns.join(", "),
        report.plan.columns.len(),
        report.plan.added.join(", "),
        report.rows_copied,
        report.copy_time.as_secs_f64(),
        report.events_applied,
        report.locked_for.unwrap_or_default().as_secs_f64(),
        writes.load(Ordering::Relaxed),
        app_errors.len(),
        total,
        if differing == 0 {
            "identical to the natively altered mirror, row for row".to_string()
        } else {
            format!("{differing} ROWS DIFFER from the natively altered mirror")
        }
    );
    for e in app_errors.iter().take(5) {
        println!("  application error: {e}");
    }
    if differing != 0 || !app_errors.is_empty() {
        anyhow::bail!("the demo migration did not verify");
    }
    if args.keep {
        println!(
            "\nservers kept: mysql -h127.0.0.1 -P{} -uroot demo  (Ctrl-C stops them and removes their files)",
            pair.primary.port
        );
        cancel.cancelled().await;
    }
    drop(pair);
    println!("demo servers stopped; their temporary directories are removed");
    Ok(())
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.contains(' ') || a.contains('\'') || a.contains('(') {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
