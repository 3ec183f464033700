//! An application writing to a table while wraith migrates it.
//!
//! Each writer runs random inserts, updates (some changing the primary key), deletes, multi-row
//! transactions and rollbacks on `t`, and in the same transaction makes the same change to a
//! mirror table that was altered natively beforehand, by copying the row from `t` with
//! `INSERT ... SELECT`. Whatever the migration does, `t` must end up equal to the mirror.
//! Writers record every error and the longest time any statement took (the cut-over stall).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::harness::Endpoint;

/// What the writers did.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    pub commits: u64,
    pub rollbacks: u64,
    /// Deadlocks and duplicate keys between writers: the application's own conflicts, retried.
    pub conflicts: u64,
    /// Any other error: a failure of the migration seen by the application.
    pub errors: Vec<String>,
    pub longest_statement: Duration,
}

impl WriterStats {
    fn merge(&mut self, other: WriterStats) {
        self.commits += other.commits;
        self.rollbacks += other.rollbacks;
        self.conflicts += other.conflicts;
        self.errors.extend(other.errors);
        self.longest_statement = self.longest_statement.max(other.longest_statement);
    }
}

/// How rows of the table are written: the columns the writers set and a value generator.
#[derive(Clone)]
pub struct Workload {
    pub schema: String,
    pub table: String,
    pub mirror: String,
    /// The columns copied to the mirror (present in the table before and after the ALTER).
    pub copied_columns: Vec<String>,
    /// Random `col = value` assignments for an insert or update.
    pub values: fn(&mut Rng) -> Vec<(String, String)>,
    /// The largest id in use when the writers start.
    pub max_id: u64,
}

/// A small deterministic random generator (xorshift).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<WriterStats>>,
}

impl Writers {
    pub async fn start(
        endpoint: &Endpoint,
        workload: Workload,
        count: usize,
        pause: Duration,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for w in 0..count {
            let mut conn = endpoint.conn().await;
            conn.query_drop("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', SESSION innodb_lock_wait_timeout = 50").await.unwrap();
            conn.query_drop(format!("USE `{}`", workload.schema))
                .await
                .unwrap();
            let (stop, workload) = (stop.clone(), workload.clone());
            handles.push(tokio::spawn(async move {
                write(conn, w as u64, workload, stop, pause).await
            }));
        }
        Writers { stop, handles }
    }

    pub async fn stop(self) -> WriterStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = WriterStats::default();
        for h in self.handles {
            total.merge(h.await.expect("writer panicked"));
        }
        total
    }
}

async fn write(
    mut conn: Conn,
    writer: u64,
    w: Workload,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut rng = Rng::new(writer + 1);
    let cols = w
        .copied_columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut next_new_id = 100_000_000 * (writer + 1);
    while !stop.load(Ordering::Relaxed) {
        let ops = 1 + rng.below(3);
        let rollback = rng.below(10) == 0;
        let mut statements = vec!["START TRANSACTION".to_string()];
        for _ in 0..ops {
            let id = 1 + rng.below(w.max_id.max(1) + 200);
            match rng.below(10) {
                0..=3 => {
                    let values = (w.values)(&mut rng);
                    let names: Vec<String> = values.iter().map(|(c, _)| format!("`{c}`")).collect();
                    let vals: Vec<String> = values.into_iter().map(|(_, v)| v).collect();
                    statements.push(format!(
                        "INSERT INTO `{}` ({}) VALUES ({})",
                        w.table,
                        names.join(", "),
                        vals.join(", ")
                    ));
                    statements.push(format!(
                        "INSERT INTO `{}` ({cols}) SELECT {cols} FROM `{}` WHERE id = LAST_INSERT_ID()",
                        w.mirror, w.table
                    ));
                }
                4..=6 => {
                    let sets: Vec<String> = (w.values)(&mut rng)
                        .into_iter()
                        .map(|(c, v)| format!("`{c}` = {v}"))
                        .collect();
                    statements.push(format!(
                        "UPDATE `{}` SET {} WHERE id = {id}",
                        w.table,
                        sets.join(", ")
                    ));
                    statements.push(format!("DELETE FROM `{}` WHERE id = {id}", w.mirror));
                    statements.push(format!(
                        "INSERT INTO `{}` ({cols}) SELECT {cols} FROM `{}` WHERE id = {id}",
                        w.mirror, w.table
                    ));
                }
                7 => {
                    next_new_id += 1;
                    let new_id = next_new_id;
                    statements.push(format!(
                        "UPDATE `{}` SET id = {new_id} WHERE id = {id}",
                        w.table
                    ));
                    statements.push(format!("DELETE FROM `{}` WHERE id = {id}", w.mirror));
                    statements.push(format!(
                        "INSERT INTO `{}` ({cols}) SELECT {cols} FROM `{}` WHERE id = {new_id}",
                        w.mirror, w.table
                    ));
                }
                _ => {
                    statements.push(format!("DELETE FROM `{}` WHERE id = {id}", w.table));
                    statements.push(format!("DELETE FROM `{}` WHERE id = {id}", w.mirror));
                }
            }
        }
        statements.push(if rollback {
            "ROLLBACK".into()
        } else {
            "COMMIT".into()
        });
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

/// Rows that differ between `a` and `b` (matched on `id`): missing on either side, or any of
/// `columns` not identical (by value and by bytes). 0 means the tables hold the same rows.
pub async fn differing_rows(
    endpoint: &Endpoint,
    schema: &str,
    a: &str,
    b: &str,
    columns: &[String],
) -> u64 {
    let mut c = endpoint.conn().await;
    let same: Vec<String> = columns
        .iter()
        .map(|col| format!("x.`{col}` <=> y.`{col}` AND CAST(x.`{col}` AS BINARY) <=> CAST(y.`{col}` AS BINARY)"))
        .collect();
    let q = format!(
        "SELECT (SELECT COUNT(*) FROM `{schema}`.`{a}` x LEFT JOIN `{schema}`.`{b}` y ON x.id = y.id WHERE y.id IS NULL OR NOT ({same})) \
         + (SELECT COUNT(*) FROM `{schema}`.`{b}` y LEFT JOIN `{schema}`.`{a}` x ON x.id = y.id WHERE x.id IS NULL)",
        same = same.join(" AND ")
    );
    c.query_first::<u64, _>(q).await.unwrap().unwrap()
}
