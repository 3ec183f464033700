//! `wraith demo`: a migration on throw-away servers, to see wraith work in a minute.
//!
//! In: [`DemoArgs`]. Out: a MariaDB primary and replica on free ports of 127.0.0.1 (`sandbox`), a
//! `demo.orders` table filled with rows, and a migration of it run through the same code path as
//! the command line, reading the replica's binlog and writing the primary. Everything started is
//! stopped and removed when the demo ends (or on Ctrl-C).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;

use crate::cli::{self, DemoArgs};
use crate::{config, migration, sandbox};

const ALTER: &str = "ADD COLUMN note VARCHAR(64) NOT NULL DEFAULT '', MODIFY amount DECIMAL(14,2) NOT NULL, ADD INDEX created_idx (created_at)";

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
    pair.sync().await?;
    spinner.finish_and_clear();
    println!("demo.orders: {} rows, replicated", args.rows);

    let argv = [
        "wraith".to_string(),
        "--host=127.0.0.1".into(),
        format!("--port={}", pair.replica.port),
        "--user=root".into(),
        "--database=demo".into(),
        "--table=orders".into(),
        format!("--alter={ALTER}"),
        "--verbose".into(),
    ];
    println!("running: {}", shell_words(&argv));
    let cfg = config::build(cli::parse(argv)?, || Ok(String::new()))?;
    let report = migration::run(&cfg, cancel.clone())
        .await
        .map_err(|f| anyhow::anyhow!("{}\n{}", f.error, f.aftermath()))?;
    println!(
        "\nmigration planned on {} (read from replica {}, written on primary {}):\n  key: {} ({})\n  columns copied: {}\n  added: {}\n  about {} rows to copy\n  swapped: {}",
        report.flavor,
        report.inspected,
        report.primary,
        report.plan.key.name,
        report.plan.key.columns.join(", "),
        report.plan.columns.len(),
        report.plan.added.join(", "),
        report.row_estimate,
        if report.swapped { "yes" } else { "no (noop run: the live data path arrives with the next issue)" }
    );
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
