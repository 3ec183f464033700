//! An application writing to a table while wraith migrates it, and the mirror that says what the
//! table must hold afterwards.
//!
//! In: a [`Workload`] that makes transactions (a [`Shape`]: how rows are addressed and changed),
//! and a schema holding `t` (or the table the workload names: [`Workload::table`]) and `mirror`,
//! a copy of `t` altered natively before the run and holding the same rows.
//! Out: [`WriterStats`]: every commit and every deadlock with the instant it happened, the
//! errors, the longest statement; and a [`Timeline`] of the migration seen from the server.
//! Invariant: the mirror is independent of the table under test. Every change is the same
//! statement with the same values on `t` and on `mirror`, in one transaction. Values are made by
//! the writer; only an auto-increment id is read back, from the insert's own result. Nothing is
//! ever read from `t`, so a value wraith got wrong can never reach the mirror: after the swap an
//! update that sets one column leaves every other column as wraith wrote it in `t`, and as the
//! application wrote it in the mirror.
//!
//! A transaction's first write to `t` holds the table's metadata lock until it commits, so all its
//! statements see the same `t`, old or new. A writer that finds a renamed or dropped column gone
//! knows the swap has happened and uses the new names from then on.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use wraith::mysql::sql::{qualified, quote_ident};

use crate::harness::Endpoint;

/// No writer statement may take longer than this in any test: the cut-over's lock is bounded by
/// `--cut-over-lock-timeout-seconds` (3 s by default), and copy chunks hold row locks for
/// milliseconds. Writers' own lock waits give up after [`WRITER_LOCK_WAIT_SECONDS`], so a writer
/// held longer fails instead of waiting.
pub const STATEMENT_BOUND: Duration = Duration::from_secs(6);
pub const WRITER_LOCK_WAIT_SECONDS: u64 = 10;

/// Commits every "under writes" test must see between the ghost table's creation and the start
/// of the cut-over: a wraith that blocked writers for its whole copy cannot reach it.
pub const MIN_COMMITS_DURING_MIGRATION: usize = 20;

/// While the row copy surely runs, each half of it (of at least this length; no parts for a
/// shorter copy) must see a commit: a copy that holds the writers back gets none until it ends.
pub const COPY_SLICE: Duration = Duration::from_secs(1);

/// The end of the row copy left out of the copy-window check.
const RELEASE_MARGIN: Duration = Duration::from_millis(50);

/// The usual pace of a writer: at most 100 transactions a second, so that the writers of two
/// tests running side by side stay within what the test replica applies on 2 cores (tests with
/// six or eight writers pace them at twice this, and the fault matrices' sixteen at eight times:
/// a replica that lags past `--max-lag-millis` holds every run throttled until the test gives up).
pub const PACE: Duration = Duration::from_millis(10);

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
    /// A DATETIME(3) literal (the writer's stand-in for `NOW(3)`, which differs per statement).
    pub fn datetime3(&mut self) -> String {
        format!(
            "'2026-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
            1 + self.below(12),
            1 + self.below(28),
            self.below(24),
            self.below(60),
            self.below(60),
            self.below(1000)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

/// One change of a transaction.
pub enum Step {
    /// The same change on `t` and on the mirror (`None`: nothing to do on that table, for
    /// example an update of a column the ALTER drops).
    Both {
        t: Option<String>,
        mirror: Option<String>,
        /// A duplicate key is the application's own doing (a key moved onto a random key).
        may_collide: bool,
    },
    /// A statement on the mirror only: it locks or reads the truth, never `t`.
    Mirror(String),
    /// An insert whose `id_column` the server generates: run on `t`; then the mirror gets the
    /// same values with the id read back from the insert's result.
    InsertAuto {
        t: String,
        id_column: &'static str,
        mirror_columns: Vec<&'static str>,
        values: Vec<String>,
    },
}

/// What a writer knows while it makes a transaction.
pub struct WriterState {
    pub writer: u64,
    /// This writer met the new column names: `t` is the migrated table.
    pub swapped: bool,
    next_unique: u64,
}

impl WriterState {
    /// A number no other writer of the run produces (for keys a row moves to).
    pub fn unique(&mut self) -> u64 {
        self.next_unique += 1;
        self.next_unique
    }
}

/// Makes the writers' transactions.
pub trait Workload: Send + Sync + 'static {
    fn transaction(&self, rng: &mut Rng, w: &mut WriterState) -> Vec<Step>;
    /// The ALTER renames or drops a column the writers set: "unknown column" on `t` means the
    /// swap has happened.
    fn changes_names(&self) -> bool {
        false
    }
    /// The table under test (the mirror is always `mirror`).
    fn table(&self) -> &'static str {
        "t"
    }
}

/// Which table a statement is for, and so which names its columns have.
#[derive(Clone, Copy)]
enum Table {
    T { swapped: bool },
    Mirror,
}

impl Table {
    fn after_alter(self) -> bool {
        matches!(self, Table::Mirror | Table::T { swapped: true })
    }
}

type KeyFn = Arc<dyn Fn(&mut Rng) -> Vec<String> + Send + Sync>;

/// A table written by random upserts, updates, key changes and deletes, addressed by a key.
#[derive(Clone)]
pub struct Shape {
    /// The table under test (`t` unless set with [`Shape::on`]).
    pub table: &'static str,
    /// The columns writers address rows by: a unique key of `t` before and after the ALTER.
    pub key: &'static [&'static str],
    /// `key[0]` is AUTO_INCREMENT: inserts leave it to the server and read it back.
    pub auto_increment: bool,
    /// A random key: one SQL literal per key column.
    pub random_key: KeyFn,
    /// The key a row moves to, from its old key and a number unique to this writer; and whether
    /// that key may already be taken (then a duplicate-key error is the application's own).
    pub rekey: fn(&mut Rng, old: &[String], unique: u64) -> Vec<String>,
    pub rekey_may_collide: bool,
    /// Random assignments to non-key columns, named as before the ALTER.
    pub values: fn(&mut Rng) -> Vec<(&'static str, String)>,
    /// Columns the ALTER renames, (old, new).
    pub renamed: &'static [(&'static str, &'static str)],
    /// Columns the ALTER drops.
    pub dropped: &'static [&'static str],
    /// Relative weights of: insert (or upsert), update, key-changing update, delete.
    pub weights: [u64; 4],
}

impl Shape {
    /// A table keyed by an AUTO_INCREMENT `id` whose ids run up to `max_id`: rows move to ids no
    /// other writer uses, so key changes never collide. They are counted down from 2^62, so the
    /// AUTO_INCREMENT counter, which a moved row raises above the moved-to id, never reaches
    /// another writer's next one.
    pub fn by_id(max_id: u64, values: fn(&mut Rng) -> Vec<(&'static str, String)>) -> Shape {
        Shape {
            table: "t",
            key: &["id"],
            auto_increment: true,
            random_key: Arc::new(move |r: &mut Rng| vec![(1 + r.below(max_id + 200)).to_string()]),
            rekey: |_, _, unique| vec![((1u64 << 62) - unique).to_string()],
            rekey_may_collide: false,
            values,
            renamed: &[],
            dropped: &[],
            weights: [4, 3, 1, 2],
        }
    }

    /// The same writers on the table named `table` instead of `t`.
    pub fn on(mut self, table: &'static str) -> Shape {
        self.table = table;
        self
    }

    /// `table`'s name, quoted.
    fn name(&self, table: Table) -> String {
        quote_ident(match table {
            Table::T { .. } => self.table,
            Table::Mirror => "mirror",
        })
    }

    /// The name of column `name` (named as before the ALTER) in `table`; `None` if dropped.
    fn column(&self, name: &'static str, table: Table) -> Option<&'static str> {
        if !table.after_alter() {
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

    fn sets(&self, values: &[(&'static str, String)], table: Table) -> Vec<(&'static str, String)> {
        values
            .iter()
            .filter_map(|(c, v)| self.column(c, table).map(|c| (c, v.clone())))
            .collect()
    }

    fn key_is(&self, key: &[String]) -> String {
        self.key
            .iter()
            .zip(key)
            .map(|(c, v)| equals(c, v))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `INSERT IGNORE`, `INSERT .. ON DUPLICATE KEY UPDATE` or `REPLACE` (`kind` 0, 1, 2) of
    /// `key` with `values` into `table`.
    fn upsert(
        &self,
        table: Table,
        kind: u64,
        key: &[String],
        values: &[(&'static str, String)],
    ) -> String {
        let sets = self.sets(values, table);
        let names = quoted(self.key.iter().copied().chain(sets.iter().map(|s| s.0)));
        let literals: Vec<&str> = key
            .iter()
            .map(String::as_str)
            .chain(sets.iter().map(|s| s.1.as_str()))
            .collect();
        let literals = literals.join(", ");
        let name = self.name(table);
        match kind {
            1 if !sets.is_empty() => {
                let update: Vec<String> = sets
                    .iter()
                    .map(|(c, _)| equals(c, &format!("VALUES({})", quote_ident(c))))
                    .collect();
                format!(
                    "INSERT INTO {name} ({names}) VALUES ({literals}) ON DUPLICATE KEY UPDATE {}",
                    update.join(", ")
                )
            }
            2 => format!("REPLACE INTO {name} ({names}) VALUES ({literals})"),
            _ => format!("INSERT IGNORE INTO {name} ({names}) VALUES ({literals})"),
        }
    }

    fn update(
        &self,
        table: Table,
        values: &[(&'static str, String)],
        key: &[String],
    ) -> Option<String> {
        let sets = self.sets(values, table);
        if sets.is_empty() {
            return None;
        }
        let sets: Vec<String> = sets.iter().map(|(c, v)| equals(c, v)).collect();
        Some(format!(
            "UPDATE {} SET {} WHERE {}",
            self.name(table),
            sets.join(", "),
            self.key_is(key)
        ))
    }

    fn pick_op(&self, rng: &mut Rng) -> usize {
        let mut pick = rng.below(self.weights.iter().sum());
        self.weights
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap()
    }
}

impl Workload for Shape {
    /// One to three random changes, each on `t` and the same on the mirror.
    fn transaction(&self, rng: &mut Rng, w: &mut WriterState) -> Vec<Step> {
        let t = Table::T { swapped: w.swapped };
        let m = Table::Mirror;
        let mut steps = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let key = (self.random_key)(rng);
            let step = match self.pick_op(rng) {
                0 if self.auto_increment => {
                    let values = (self.values)(rng);
                    let in_t = self.sets(&values, t);
                    let in_mirror = self.sets(&values, m);
                    Step::InsertAuto {
                        t: format!(
                            "INSERT INTO {} ({}) VALUES ({})",
                            self.name(t),
                            quoted(in_t.iter().map(|s| s.0)),
                            in_t.iter()
                                .map(|s| s.1.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        id_column: self.key[0],
                        mirror_columns: in_mirror.iter().map(|s| s.0).collect(),
                        values: in_mirror.into_iter().map(|s| s.1).collect(),
                    }
                }
                0 => {
                    let values = (self.values)(rng);
                    let kind = rng.below(3);
                    Step::Both {
                        t: Some(self.upsert(t, kind, &key, &values)),
                        mirror: Some(self.upsert(m, kind, &key, &values)),
                        may_collide: false,
                    }
                }
                1 => {
                    let values = (self.values)(rng);
                    Step::Both {
                        t: self.update(t, &values, &key),
                        mirror: self.update(m, &values, &key),
                        may_collide: false,
                    }
                }
                2 => {
                    let new_key = (self.rekey)(rng, &key, w.unique());
                    let sets: Vec<String> = self
                        .key
                        .iter()
                        .zip(&new_key)
                        .map(|(c, v)| equals(c, v))
                        .collect();
                    let on = |table: Table| {
                        format!(
                            "UPDATE {} SET {} WHERE {}",
                            self.name(table),
                            sets.join(", "),
                            self.key_is(&key)
                        )
                    };
                    Step::Both {
                        t: Some(on(t)),
                        mirror: Some(on(m)),
                        may_collide: self.rekey_may_collide,
                    }
                }
                _ => Step::Both {
                    t: Some(format!(
                        "DELETE FROM {} WHERE {}",
                        self.name(t),
                        self.key_is(&key)
                    )),
                    mirror: Some(format!(
                        "DELETE FROM {} WHERE {}",
                        self.name(m),
                        self.key_is(&key)
                    )),
                    may_collide: false,
                },
            };
            steps.push(step);
        }
        steps
    }

    fn changes_names(&self) -> bool {
        !self.renamed.is_empty() || !self.dropped.is_empty()
    }

    fn table(&self) -> &'static str {
        self.table
    }
}

/// `names`, each quoted, separated by commas.
pub fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.map(quote_ident).collect::<Vec<_>>().join(", ")
}

/// `column = value`, the column quoted.
fn equals(column: &str, value: &str) -> String {
    format!("{} = {value}", quote_ident(column))
}

// ---------------------------------------------------------------------------------------------
// Running writers
// ---------------------------------------------------------------------------------------------

/// What the writers did.
#[derive(Debug, Default, Clone)]
pub struct WriterStats {
    /// When each committed transaction's COMMIT returned.
    pub commits: Vec<Instant>,
    pub rollbacks: u64,
    /// Deadlocks: when each came back and on which statement. The application's writers can
    /// deadlock each other and wraith's copy; never the cut-over.
    pub deadlocks: Vec<(Instant, String)>,
    /// Duplicate keys the application caused itself (a key moved onto a random taken key).
    pub collisions: u64,
    /// Any other error: a failure of the migration seen by the application.
    pub errors: Vec<String>,
    pub longest_statement: Duration,
    /// How many writers met the new column names of a renaming ALTER.
    pub saw_swap: usize,
}

impl WriterStats {
    fn merge(&mut self, other: WriterStats) {
        self.commits.extend(other.commits);
        self.rollbacks += other.rollbacks;
        self.deadlocks.extend(other.deadlocks);
        self.collisions += other.collisions;
        self.errors.extend(other.errors);
        self.longest_statement = self.longest_statement.max(other.longest_statement);
        self.saw_swap += other.saw_swap;
    }

    /// Commits that returned strictly between `from` and `to`.
    pub fn commits_between(&self, from: Instant, to: Instant) -> usize {
        self.commits
            .iter()
            .filter(|c| **c > from && **c < to)
            .count()
    }
}

pub struct Writers {
    stop: Arc<AtomicBool>,
    /// Transactions committed so far, by all writers.
    committed: Arc<AtomicU64>,
    handles: Vec<tokio::task::JoinHandle<WriterStats>>,
}

impl Writers {
    /// Starts `count` writers on `schema` of `endpoint`, each starting a transaction at most
    /// every `pace` (zero: as fast as it can). A pace keeps the write load within what the
    /// replica applies on a small machine while other tests run: writers the replica cannot keep
    /// up with make wraith throttle on replication lag, rightly, for as long as they write.
    pub async fn start(
        endpoint: &Endpoint,
        schema: &str,
        workload: Arc<dyn Workload>,
        count: usize,
        pace: Duration,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for w in 0..count {
            let mut conn = endpoint.conn().await;
            conn.query_drop(format!(
                "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', \
                 SESSION innodb_lock_wait_timeout = {WRITER_LOCK_WAIT_SECONDS}, \
                 SESSION lock_wait_timeout = {WRITER_LOCK_WAIT_SECONDS}"
            ))
            .await
            .unwrap();
            conn.query_drop(format!("USE {}", quote_ident(schema)))
                .await
                .unwrap();
            let (stop, committed, workload) = (stop.clone(), committed.clone(), workload.clone());
            handles.push(tokio::spawn(async move {
                write(conn, w as u64, workload, stop, committed, pace).await
            }));
        }
        Writers {
            stop,
            committed,
            handles,
        }
    }

    /// Waits until the writers have committed `n` more transactions; false if they did not
    /// within `limit`.
    pub async fn wait_for_commits(&self, n: u64, limit: Duration) -> bool {
        let target = self.committed.load(Ordering::Relaxed) + n;
        let started = Instant::now();
        while self.committed.load(Ordering::Relaxed) < target {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
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

/// Why a transaction did not commit.
enum Failed {
    /// Rolled back on purpose, or after a deadlock, a collision or the swap (already recorded).
    Expected,
    Error(String),
}

async fn write(
    mut conn: Conn,
    writer: u64,
    workload: Arc<dyn Workload>,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    pace: Duration,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut rng = Rng::new(writer + 1);
    let mut state = WriterState {
        writer,
        swapped: false,
        next_unique: 100_000_000 * (writer + 1),
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let rollback = rng.below(10) == 0;
        let steps = workload.transaction(&mut rng, &mut state);
        match run_transaction(
            &mut conn, &steps, rollback, &mut state, &*workload, &mut stats,
        )
        .await
        {
            Ok(()) if rollback => stats.rollbacks += 1,
            Ok(()) => {
                stats.commits.push(Instant::now());
                committed.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failed::Expected) => {}
            Err(Failed::Error(e)) => stats.errors.push(e),
        }
        tokio::time::sleep_until((started + pace).into()).await;
    }
    stats.saw_swap = usize::from(state.swapped);
    stats
}

async fn run_transaction(
    conn: &mut Conn,
    steps: &[Step],
    rollback: bool,
    state: &mut WriterState,
    workload: &dyn Workload,
    stats: &mut WriterStats,
) -> Result<(), Failed> {
    timed(conn, "START TRANSACTION", stats)
        .await
        .map_err(|e| Failed::Error(format!("START TRANSACTION: {e}")))?;
    for step in steps {
        let result = match step {
            Step::Both {
                t,
                mirror,
                may_collide,
            } => {
                let mut r = Ok(());
                for (s, on_t) in [(t, true), (mirror, false)] {
                    if let Some(s) = s {
                        r = timed(conn, s, stats)
                            .await
                            .map_err(|e| (s.clone(), e, on_t, *may_collide));
                        if r.is_err() {
                            break;
                        }
                    }
                }
                r
            }
            Step::Mirror(s) => timed(conn, s, stats)
                .await
                .map_err(|e| (s.clone(), e, false, false)),
            Step::InsertAuto {
                t,
                id_column,
                mirror_columns,
                values,
            } => match timed(conn, t, stats).await {
                Err(e) => Err((t.clone(), e, true, false)),
                Ok(()) => {
                    let id = conn.last_insert_id().expect("an auto-increment id");
                    let s = format!(
                        "INSERT INTO mirror ({}) VALUES ({id}{}{})",
                        quoted(std::iter::once(*id_column).chain(mirror_columns.iter().copied())),
                        if values.is_empty() { "" } else { ", " },
                        values.join(", ")
                    );
                    timed(conn, &s, stats)
                        .await
                        .map_err(|e| (s, e, false, false))
                }
            },
        };
        if let Err((statement, e, on_t, may_collide)) = result {
            let _ = conn.query_drop("ROLLBACK").await;
            let code = match &e {
                mysql_async::Error::Server(se) => se.code,
                _ => 0,
            };
            return match code {
                1213 => {
                    stats.deadlocks.push((Instant::now(), statement));
                    Err(Failed::Expected)
                }
                1062 if may_collide => {
                    stats.collisions += 1;
                    Err(Failed::Expected)
                }
                // Unknown column: the table was swapped; write the new names from now on.
                1054 if on_t && workload.changes_names() && !state.swapped => {
                    state.swapped = true;
                    Err(Failed::Expected)
                }
                _ => Err(Failed::Error(format!("{statement}: {e}"))),
            };
        }
    }
    let end = if rollback { "ROLLBACK" } else { "COMMIT" };
    timed(conn, end, stats)
        .await
        .map_err(|e| Failed::Error(format!("{end}: {e}")))
}

/// Runs `statement`, keeping the longest time any statement took.
async fn timed(
    conn: &mut Conn,
    statement: &str,
    stats: &mut WriterStats,
) -> Result<(), mysql_async::Error> {
    let started = Instant::now();
    let result = conn.query_drop(statement).await;
    stats.longest_statement = stats.longest_statement.max(started.elapsed());
    result
}

// ---------------------------------------------------------------------------------------------
// The migration seen from the server
// ---------------------------------------------------------------------------------------------

/// When wraith's tables came and went in a schema, read from the server every few milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    /// The ghost table `_t_gho` was first seen.
    pub ghost_created: Option<Instant>,
    /// The cut-over began: the changelog's state was first seen to be the cut-over's, or `_t_del`
    /// (the two-step swap's renamed original) while `_t_gho` existed; one poll interval earlier,
    /// to be safe.
    pub cut_over_began: Option<Instant>,
    /// `_t_gho` was seen gone for good after it existed (swapped in, or dropped by a noop run).
    pub ghost_gone: Option<Instant>,
    /// A stretch of time inside the row copy: from the end of the first poll that read wraith's
    /// state `Copy` in its changelog to the start of the last one that did. The copy surely
    /// ran throughout it.
    pub surely_copying: Option<(Instant, Instant)>,
    /// The most rows seen in `_t_gho`, and of those the most with `id` above the watch's
    /// `fresh_above` (rows the applier wrote), when the watch counts rows.
    pub most_ghost_rows: u64,
    pub most_fresh_ghost_rows: u64,
}

const POLL: Duration = Duration::from_millis(10);

/// Watches a schema's tables until stopped: wraith's helper tables of `t` (or of the table named
/// with [`TableWatch::start_for`]).
pub struct TableWatch {
    stop: Arc<AtomicBool>,
    timeline: Arc<Mutex<Timeline>>,
    handle: tokio::task::JoinHandle<()>,
}

impl TableWatch {
    pub async fn start(endpoint: &Endpoint, schema: &str) -> TableWatch {
        Self::watch(endpoint, schema, "t", None).await
    }

    /// Watches the helper tables of `table` instead of `t`'s.
    pub async fn start_for(endpoint: &Endpoint, schema: &str, table: &str) -> TableWatch {
        Self::watch(endpoint, schema, table, None).await
    }

    /// Also counts `_t_gho`'s rows at each poll, and its rows with `id > fresh_above`.
    pub async fn start_counting(
        endpoint: &Endpoint,
        schema: &str,
        fresh_above: Option<u64>,
    ) -> TableWatch {
        Self::watch(endpoint, schema, "t", fresh_above).await
    }

    async fn watch(
        endpoint: &Endpoint,
        schema: &str,
        table: &str,
        fresh_above: Option<u64>,
    ) -> TableWatch {
        let mut conn = endpoint.conn().await;
        let stop = Arc::new(AtomicBool::new(false));
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let (s, tl) = (stop.clone(), timeline.clone());
        let [ghost_name, old_name, changelog_name] =
            ["gho", "del", "ghc"].map(|suffix| format!("_{table}_{suffix}"));
        let list = format!("SHOW TABLES FROM {}", quote_ident(schema));
        let state = format!(
            "SELECT value FROM {} WHERE hint = 'state'",
            qualified(schema, &changelog_name)
        );
        let ghost_rows = qualified(schema, &ghost_name);
        let handle = tokio::spawn(async move {
            // Polls once more after being told to stop, so the last state is seen.
            loop {
                let stopping = s.load(Ordering::Relaxed);
                let polled = Instant::now();
                let names: Vec<String> = conn.query(&list).await.unwrap();
                let now = Instant::now();
                let ghost = names.contains(&ghost_name);
                let old = names.contains(&old_name);
                let state_now = match names.contains(&changelog_name) {
                    true => conn.query_first::<String, _>(&state).await.ok().flatten(),
                    false => None,
                };
                let copying = state_now.as_deref() == Some("Copy");
                // The cut-over's state, or its marker (a checksum's snapshot writes one too).
                let cutting = state_now.as_deref().is_some_and(|s| {
                    s == "CutOver"
                        || (s.starts_with("AllEventsUpToLockProcessed:") && !s.contains("checksum"))
                });
                let state_read = Instant::now();
                let counts = match (ghost, fresh_above) {
                    (true, Some(above)) => conn
                        .query_first::<(u64, Option<u64>), _>(format!(
                            "SELECT COUNT(*), SUM(id > {above}) FROM {ghost_rows}"
                        ))
                        .await
                        .ok()
                        .flatten(),
                    _ => None,
                };
                {
                    let mut t = tl.lock().unwrap();
                    if copying {
                        t.surely_copying = Some(match t.surely_copying {
                            None => (state_read, polled),
                            Some((from, _)) => (from, polled),
                        });
                    }
                    if ghost && t.ghost_created.is_none() {
                        t.ghost_created = Some(now);
                    }
                    if ((ghost && old) || cutting) && t.cut_over_began.is_none() {
                        t.cut_over_began = Some(polled - POLL);
                    }
                    // The ghost table vanishes for a moment while the server ALTERs it (a
                    // copying ALTER renames a rebuilt table into place): it is gone when it
                    // stays gone.
                    if ghost {
                        t.ghost_gone = None;
                    } else if t.ghost_created.is_some() && t.ghost_gone.is_none() {
                        t.ghost_gone = Some(now);
                    }
                    if let Some((rows, fresh)) = counts {
                        t.most_ghost_rows = t.most_ghost_rows.max(rows);
                        t.most_fresh_ghost_rows = t.most_fresh_ghost_rows.max(fresh.unwrap_or(0));
                    }
                }
                if stopping {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        });
        TableWatch {
            stop,
            timeline,
            handle,
        }
    }

    pub async fn stop(self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("table watch panicked");
        let t = self.timeline.lock().unwrap().clone();
        t
    }
}

/// The proof that the application wrote through the migration and was never harmed by it:
/// no writer error; at least `min_commits` commits between the ghost table's creation and the
/// start of the cut-over (or the ghost's removal), and commits in each half of the row copy
/// ([`COPY_SLICE`]); no deadlock from the start of the cut-over to
/// shortly after the swap; no statement longer than [`STATEMENT_BOUND`].
pub fn assert_wrote_through(stats: &WriterStats, timeline: &Timeline, min_commits: usize) {
    assert!(
        stats.errors.is_empty(),
        "writers saw errors: {:?}",
        stats.errors
    );
    let created = timeline
        .ghost_created
        .expect("the ghost table was never seen: wraith did not migrate");
    let end = timeline
        .cut_over_began
        .or(timeline.ghost_gone)
        .expect("the ghost table never went away");
    let during = stats.commits_between(created, end);
    assert!(
        during >= min_commits,
        "only {during} commits between the ghost table's creation and the cut-over \
         ({} in all, over {:?} of migration): the writers did not write through the migration",
        stats.commits.len(),
        end - created
    );
    if let Some((from, last_seen)) = timeline.surely_copying {
        // Writers a copy held back commit the moment it ends, before its end is seen: leave
        // that moment out.
        let to = last_seen
            .checked_sub(RELEASE_MARGIN)
            .unwrap_or(from)
            .max(from);
        // Commits all through the copy, not only at its end: each half of it has some. (Not
        // finer: the copy's shared locks stall writers for a few hundred milliseconds under
        // load, a known cost, but a copy must never hold them back for half its time.)
        let slices = ((to - from).as_millis() / COPY_SLICE.as_millis()).min(2) as u32;
        for i in 0..slices {
            let (a, b) = (
                from + (to - from) * i / slices,
                from + (to - from) * (i + 1) / slices,
            );
            assert!(
                stats.commits_between(a, b) > 0,
                "no commit in part {} of {slices} ({:?}) of the {:?} row copy: the writers were \
                 held back while wraith copied",
                i + 1,
                b - a,
                to - from
            );
        }
    }
    if let (Some(began), Some(gone)) = (timeline.cut_over_began, timeline.ghost_gone) {
        let until = gone + Duration::from_millis(500);
        let in_swap: Vec<&String> = stats
            .deadlocks
            .iter()
            .filter(|(at, _)| *at >= began && *at <= until)
            .map(|(_, s)| s)
            .collect();
        assert!(
            in_swap.is_empty(),
            "{} deadlocks between the cut-over's start and 0.5 s after the swap: {in_swap:?}",
            in_swap.len()
        );
    }
    assert!(
        stats.longest_statement < STATEMENT_BOUND,
        "a writer statement took {:?} (bound {STATEMENT_BOUND:?})",
        stats.longest_statement
    );
}

/// Runs `migration` (wraith, started by the caller's future) while `count` writers write
/// `workload` to `schema` on the primary, watching its tables: the writers have committed before
/// it starts and commit again after it ends (after a swap, to the new table). Returns what
/// `migration` returned, what the writers did and when the tables came and went.
pub async fn under_writes<T>(
    schema: &str,
    workload: Arc<dyn Workload>,
    count: usize,
    pace: Duration,
    migration: impl std::future::Future<Output = T>,
) -> (T, WriterStats, Timeline) {
    let primary = &crate::harness::servers().primary;
    let watch = TableWatch::start_for(primary, schema, workload.table()).await;
    let writers = Writers::start(primary, schema, workload, count, pace).await;
    assert!(
        writers.wait_for_commits(20, Duration::from_secs(60)).await,
        "the writers did not start committing"
    );
    let out = migration.await;
    // Checked by the caller's assertions on the writers' errors and wraith's outcome.
    let _ = writers.wait_for_commits(50, Duration::from_secs(30)).await;
    let stats = writers.stop().await;
    (out, stats, watch.stop().await)
}

impl WriterStats {
    /// One line for the test's log.
    pub fn summary(&self) -> String {
        format!(
            "{} commits, {} rollbacks, {} deadlocks, {} key collisions, {} errors, longest statement {:?}",
            self.commits.len(),
            self.rollbacks,
            self.deadlocks.len(),
            self.collisions,
            self.errors.len(),
            self.longest_statement
        )
    }
}
