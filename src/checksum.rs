//! Comparing the ghost table with the original before the swap.
//!
//! In: the [`Plan`], the apply loop's [`Control`], [`LoopStatus`] and [`KeyLog`], and the primary.
//! Out: how many rows were compared ([`Compared`]), or [`ChecksumError::Differs`] naming up to
//! ten keys whose rows differ. Invariant (docs/architecture.md, 8): the run swaps only tables
//! whose every row, over the shared key and the compared columns, was found equal at some moment
//! after the key log started (a row changed since has its key in the log); no read view outlives
//! a chunk or a batch of keys, except in a snapshot; writers on the original are blocked only
//! while a snapshot's moment is fixed, never longer than `--cut-over-lock-timeout-seconds` allows
//! (and only briefly past it for the unlock).
//!
//! How (the caller, `crate::migration`, drives the steps; docs/architecture.md, "The checksum
//! before the swap", says why it proves what one snapshot proved):
//! 1. [`compare_all`] with [`Views::PerChunk`], once the apply loop logs the keys it writes
//!    ([`KeyLog`]): the key is walked in chunks read from `t`'s key index, the first and the last
//!    chunk open-ended (so a row the ghost table holds outside `t`'s key range is seen too); each
//!    chunk in a read view of its own, closed before the worker rests; for each chunk, `COUNT(*)`,
//!    `BIT_XOR` and `SUM` of the `CRC32` of each row's compared columns, on both tables. A chunk
//!    whose figures differ is compared row by row (`NOT EXISTS` both ways, every compared column's
//!    exact bytes with `<=>`): its differing rows are [suspects](Pass::suspects), since the
//!    applier may not have applied their last change yet.
//! 2. [`compare_suspects`]: the suspects again, once the applier has caught up, each batch in a
//!    view of its own; those that still differ, in a [`snapshot`]: `LOCK TABLES t WRITE` on a
//!    session with the cut-over's lock settings, taken as the cut-over takes its own
//!    ([`cutover::lock_when_quiet`]: not queued behind an open transaction where the server can
//!    refuse instead, not while the binlog lags); a marker written to the changelog and awaited
//!    through the binlog until every event before it is applied (the apply loop then holds the
//!    events after it); `START TRANSACTION WITH CONSISTENT SNAPSHOT` on N connections; unlock, and
//!    the loop applies what it held. Every snapshot sees `t` and `_t_gho` at the same logical
//!    moment: a row that differs there fails the checksum ([`suspects_verdict`]). A lock or drain
//!    that does not finish in time is released and the caller tries again later, as the cut-over
//!    does. Too many suspects ([`SUSPECT_LIMIT`]): [`compare_all`] again in a snapshot
//!    ([`Views::Snapshot`]).
//! 3. [`compare_keys`]: after a postponed cut-over, in a new snapshot, only the rows of the keys
//!    the apply loop wrote since step 1 began ([`KeyLog`]), row by row; a log that
//!    overflowed means steps 1 and 2 again. What the application changed while the cut-over was
//!    postponed is so verified again. Not seen: a change made to the ghost table behind wraith's
//!    back, after its row was compared, to a row nothing writes afterwards (only a full compare
//!    would see it, and would cost as much as the first).
//!
//! Which columns are compared: every mapped column whose value the copy carries over without
//! changing its text: the same type; an integer to an integer; text to text that is not `CHAR`
//! (compared in the new character set, converted as the copy converts it); a binary string to a
//! binary string that is not `BINARY`; an `ENUM` to an `ENUM` (by label). A column the ALTER
//! retypes otherwise (a DECIMAL's scale, a temporal precision, FLOAT to DOUBLE, ...) changes its
//! value on purpose: it is not compared, and the log names it. When the key's columns themselves
//! change type or collation, key ranges would not select the same rows in both tables, so the
//! whole table is compared as one chunk (in one read view), unless their ranges still select
//! alike (`ranges_alike`: integers of any width, as an `INT` key widened to `BIGINT UNSIGNED`,
//! the most common change of a key; text lengthened in the same collation).
//! With `--allow-skipped-rows`, a row of the original the ghost table lacks was dropped knowingly
//! and is not held against it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::apply::{Control, KeyLog, LoopStatus, Touched};
use crate::control::Knobs;
use crate::cutover::{self, CutOverError, CutOverSpec};
use crate::failpoint;
use crate::inspect::plan::Plan;
use crate::inspect::schema::Column;
use crate::mysql::{self, sql, ConnectError};
use crate::priority;
use crate::progress::Progress;
use crate::throttle::Gate;
use crate::verify;

/// How many differing keys a failed checksum names.
pub const NAMED_KEYS: usize = 10;

/// Keys compared per statement by [`compare_keys`].
const KEYS_PER_BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error("checksum: {step}: {source}")]
    Sql {
        step: &'static str,
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("checksum: {0}")]
    Timeout(String),
    #[error("checksum: the apply loop stopped")]
    LoopGone,
    #[error("checksum: {0}")]
    Other(String),
    #[error("the checksum before the swap found rows that differ between `{table}` and the ghost table `{ghost}`: {}{}. Nothing was swapped. The copy or the binlog apply lost or changed these rows (a bug in wraith: please report it with this log), or something else wrote to `{ghost}` during the migration. Run the migration again", keys.join(", "), if *more { ", and more" } else { "" })]
    Differs {
        table: String,
        ghost: String,
        /// The differing keys (`id=5`), at most [`NAMED_KEYS`]; or a key range whose rows differ
        /// where no single row could be named.
        keys: Vec<String>,
        more: bool,
    },
    #[error("cancelled")]
    Cancelled,
}

impl ChecksumError {
    /// A failure that another attempt, with a new lock and snapshot, may not meet.
    pub fn retry(&self) -> bool {
        matches!(
            self,
            ChecksumError::Sql { .. } | ChecksumError::Connect(_) | ChecksumError::Timeout(_)
        )
    }
}

impl From<CutOverError> for ChecksumError {
    fn from(e: CutOverError) -> Self {
        match e {
            CutOverError::Sql { step, source } => ChecksumError::Sql { step, source },
            CutOverError::Timeout(m) => ChecksumError::Timeout(m),
            CutOverError::Connect(e) => ChecksumError::Connect(e),
            CutOverError::LoopGone => ChecksumError::LoopGone,
            other => ChecksumError::Other(other.to_string()),
        }
    }
}

fn step(step: &'static str) -> impl FnOnce(mysql_async::Error) -> ChecksumError {
    move |source| ChecksumError::Sql { step, source }
}

/// A mapped column the checksum compares, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComparedColumn {
    pub original: String,
    original_type: String,
    pub ghost: String,
    ghost_type: String,
    /// The original's text converted to this character set (the ghost column's) first.
    convert_to: Option<String>,
    /// TEXT, BLOB or JSON: hashed as its CRC32 in the row's checksum.
    large: bool,
}

impl ComparedColumn {
    /// The bytes of the original's value, as the ghost table holds them.
    fn original_bytes(&self, alias: &str) -> String {
        self.convert_to
            .as_deref()
            .and_then(|cs| verify::converted_bytes(alias, &self.original, cs))
            .unwrap_or_else(|| verify::exact_bytes(alias, &self.original, &self.original_type))
    }

    fn ghost_bytes(&self, alias: &str) -> String {
        verify::exact_bytes(alias, &self.ghost, &self.ghost_type)
    }
}

const INTEGERS: [&str; 5] = ["tinyint", "smallint", "mediumint", "int", "bigint"];
const TEXTS: [&str; 6] = [
    "char",
    "varchar",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
];
const BINARIES: [&str; 6] = [
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
];
const LARGE: [&str; 7] = [
    "text",
    "mediumtext",
    "longtext",
    "blob",
    "mediumblob",
    "longblob",
    "json",
];

/// How the checksum compares `original`'s values with `ghost`'s, or `None` when the copy
/// changes them on purpose (see the module's documentation).
pub fn compared(original: &Column, ghost: &Column) -> Option<ComparedColumn> {
    let (o, g) = (original.data_type.as_str(), ghost.data_type.as_str());
    let same_charset = original.charset == ghost.charset;
    let text = |t: &str| TEXTS.contains(&t);
    let same_type = o == g && original.column_type == ghost.column_type && same_charset;
    let convert = if same_type || INTEGERS.contains(&o) && INTEGERS.contains(&g) {
        None
    } else if (text(o) || o == "enum") && text(g) && (g != "char" || o == "char")
        || (o == "enum" && g == "enum")
    {
        if same_charset {
            None
        } else {
            Some(ghost.charset.clone()?)
        }
    } else if BINARIES.contains(&o) && BINARIES.contains(&g) && g != "binary" {
        None
    } else {
        return None;
    };
    Some(ComparedColumn {
        original: original.name.clone(),
        original_type: o.to_string(),
        ghost: ghost.name.clone(),
        ghost_type: g.to_string(),
        convert_to: convert,
        large: LARGE.contains(&o) || LARGE.contains(&g),
    })
}

/// Whether a range of values of the key column `original` selects the same rows as the same
/// range of the ghost table's `ghost`: the copy carries each value over unchanged and both order
/// it alike. So for the same type, character set and collation; for integers of any width,
/// signed or not (an `INT` key widened to `BIGINT UNSIGNED`); for text lengthened or shortened
/// in the same character set and collation, never to `CHAR` (which drops trailing spaces); and
/// for binary strings, never to `BINARY` (which pads). A value the new type cannot hold changes,
/// and its row is found differing, as it should be.
fn ranges_alike(original: &Column, ghost: &Column) -> bool {
    let (o, g) = (original.data_type.as_str(), ghost.data_type.as_str());
    let same_text = original.charset == ghost.charset && original.collation == ghost.collation;
    let same = original.column_type == ghost.column_type && same_text;
    same || INTEGERS.contains(&o) && INTEGERS.contains(&g)
        || TEXTS.contains(&o) && TEXTS.contains(&g) && o != "char" && g != "char" && same_text
        || BINARIES.contains(&o) && BINARIES.contains(&g) && g != "binary"
}

/// What the checksum compares, fixed for the run.
#[derive(Debug, Clone)]
pub struct ChecksumSpec {
    /// The primary, the tables and the lock timeout (the cut-over's).
    pub lock: CutOverSpec,
    /// The shared key: its index and columns in the original table.
    pub index: String,
    pub key: Vec<String>,
    /// The same key in the ghost table.
    pub ghost_index: Option<String>,
    pub ghost_key: Vec<String>,
    pub key_nullable: bool,
    pub columns: Vec<ComparedColumn>,
    /// Mapped columns the ALTER retypes, not compared.
    pub skipped: Vec<String>,
    /// Key ranges select the same rows in both tables (the key columns are alike).
    pub chunked: bool,
    pub chunk_rows: u64,
    /// Snapshot connections, each comparing chunks in parallel.
    pub connections: usize,
    /// `--allow-skipped-rows`: rows of the original the ghost table lacks were dropped knowingly
    /// (by the copy or the applier); only rows both tables hold, and rows only the ghost table
    /// holds, are held against it.
    pub allow_missing: bool,
}

impl ChecksumSpec {
    pub fn new(plan: &Plan, lock: CutOverSpec, chunk_rows: u64, connections: usize) -> Self {
        let mut columns = Vec::new();
        let mut skipped = Vec::new();
        for m in &plan.columns {
            let pair = plan
                .original
                .column(&m.original)
                .zip(plan.ghost.column(&m.ghost));
            match pair.and_then(|(o, g)| compared(o, g)) {
                Some(c) => columns.push(c),
                None => skipped.push(m.original.clone()),
            }
        }
        let chunked = plan
            .key
            .columns
            .iter()
            .zip(&plan.ghost_key_columns)
            .all(
                |(o, g)| match (plan.original.column(o), plan.ghost.column(g)) {
                    (Some(o), Some(g)) => ranges_alike(o, g),
                    _ => false,
                },
            );
        let ghost_index = plan
            .shared_unique_keys()
            .into_iter()
            .find(|(o, _)| o.name == plan.key.name)
            .map(|(_, g)| g.name.clone());
        ChecksumSpec {
            lock,
            index: plan.key.name.clone(),
            key: plan.key.columns.clone(),
            ghost_index,
            ghost_key: plan.ghost_key_columns.clone(),
            key_nullable: plan.original.index_is_nullable(&plan.key),
            columns,
            skipped,
            chunked,
            chunk_rows: chunk_rows.max(1),
            connections: connections.max(1),
            allow_missing: false,
        }
    }

    fn table(&self) -> &str {
        &self.lock.table
    }

    fn ghost(&self) -> &str {
        &self.lock.ghost
    }

    fn schema(&self) -> &str {
        &self.lock.schema
    }

    /// "Row `x` of the original and row `y` of the ghost hold the same compared bytes."
    fn same(&self) -> String {
        if self.columns.is_empty() {
            return "TRUE".into();
        }
        self.columns
            .iter()
            .map(|c| format!("{} <=> {}", c.original_bytes("x"), c.ghost_bytes("y")))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn original_row(&self) -> String {
        let exprs: Vec<(String, bool)> = self
            .columns
            .iter()
            .map(|c| (c.original_bytes(""), c.large))
            .collect();
        sql::checksum_row(&exprs)
    }

    fn ghost_row(&self) -> String {
        let exprs: Vec<(String, bool)> = self
            .columns
            .iter()
            .map(|c| (c.ghost_bytes(""), c.large))
            .collect();
        sql::checksum_row(&exprs)
    }
}

/// Connections reading the two tables at one logical moment.
pub struct Snapshot {
    conns: Vec<Conn>,
    /// The keys the apply loop wrote between the previous snapshot and this one.
    pub touched: Touched,
    /// How long writers on the original table were blocked.
    pub locked_for: Duration,
    /// Where the marker's trip under that lock spent its time.
    pub trip: cutover::MarkerTrip,
    /// How the lock was taken.
    pub locked: cutover::Locked,
}

/// Takes the snapshot (step 2 of the module's documentation); with `take_keys`, the keys the
/// apply loop wrote since its log last started come with it ([`Snapshot::touched`]) and the log
/// starts again. On failure, nothing is locked and the apply loop applies again;
/// [`ChecksumError::retry`] says whether to try again.
pub async fn snapshot(
    spec: &ChecksumSpec,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    keylog: &KeyLog,
    take_keys: bool,
    token: &str,
    lag_low: &dyn Fn() -> bool,
) -> Result<Snapshot, ChecksumError> {
    // The writers will wait for this lock: it must not wait for the CPU.
    let _urgent = priority::Urgent::begin();
    let cut = &spec.lock;
    let mut conns = connections(spec).await?;
    let mut lock = cutover::lock_session(cut).await?;
    let mut marker = mysql::connect(&cut.primary, &cut.creds).await?;
    let ids = if failpoint::armed() {
        failpoint::Connections {
            lock: cutover::connection_id(&mut lock).await?,
            proof: cutover::connection_id(&mut marker).await?,
            ..Default::default()
        }
    } else {
        failpoint::Connections::default()
    };
    let locked = cutover::lock_when_quiet(&mut lock, cut, &[&cut.table], lag_low).await?;
    let started = locked.requested;
    let held = async {
        point("checksum:locked", spec, ids).await?;
        let until = started + cutover::marker_budget(cut.lock_timeout);
        let trip =
            cutover::drain_to_marker(cut, &mut marker, control, status, token, until).await?;
        point("checksum:drained", spec, ids).await?;
        for result in join_all(conns.iter_mut().map(|c| c.query_drop(sql::START_SNAPSHOT))).await {
            result.map_err(step("starting a consistent snapshot"))?;
        }
        // The loop holds every event after the marker: the log holds exactly the keys written
        // before this snapshot.
        let touched = if take_keys {
            keylog.take()
        } else {
            Touched::default()
        };
        Ok::<_, ChecksumError>((touched, trip))
    }
    .await;
    // Whatever happened: nothing stays locked (the lock dies with its connection if UNLOCK
    // cannot be sent) and the loop applies what it held.
    let _ = lock.query_drop("UNLOCK TABLES").await;
    drop(lock);
    let locked_for = started.elapsed();
    let resumed = control.send(Control::Apply).is_ok();
    let (touched, trip) = held?;
    if !resumed {
        return Err(ChecksumError::LoopGone);
    }
    Ok(Snapshot {
        conns,
        touched,
        locked_for,
        trip,
        locked,
    })
}

/// The comparing connections (`spec.connections`), each in a session whose reads are
/// repeatable within a transaction; none has a transaction open.
pub async fn connections(spec: &ChecksumSpec) -> Result<Vec<Conn>, ChecksumError> {
    let cut = &spec.lock;
    let mut conns = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let mut c = mysql::connect(&cut.primary, &cut.creds).await?;
        c.query_drop(sql::SNAPSHOT_SESSION)
            .await
            .map_err(step("setting up a snapshot connection"))?;
        conns.push(c);
    }
    Ok(conns)
}

impl Snapshot {
    /// The connections, each still in the snapshot's transaction.
    pub fn into_connections(self) -> Vec<Conn> {
        self.conns
    }
}

async fn point(
    name: &str,
    spec: &ChecksumSpec,
    ids: failpoint::Connections,
) -> Result<(), ChecksumError> {
    failpoint::hit(name, &spec.lock.primary, &spec.lock.creds, ids)
        .await
        .map_err(ChecksumError::Timeout)
}

/// What a comparison covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compared {
    /// Rows of the original table compared (for [`compare_keys`]: keys compared).
    pub rows: u64,
    pub chunks: u64,
    /// The time the workers rested between chunks (`--nice-ratio`, the copy's pace), summed.
    pub rested: Duration,
}

/// Which read view [`compare_all`]'s chunks are compared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Views {
    /// Each chunk in a view of its own, opened just before it and closed just after it: no read
    /// view outlives a chunk, so the server's purge is never held back for the whole compare
    /// (a view held for a whole checksum grew the primary's history list to 10,000 transactions
    /// in 23 s under the load bench; on a table of hundreds of millions of rows it would be held
    /// for hours). The applier is a little behind the original table, so a row may differ in its
    /// chunk's view only because a change to it is not applied yet: such rows are
    /// [suspects](Pass::suspects), to be compared again ([`compare_suspects`]), not failures.
    PerChunk,
    /// Every chunk in the view the connections already have (a [`Snapshot`]'s): a row that
    /// differs fails the checksum.
    Snapshot,
}

/// Opens a read view of its own on `conn` under [`Views::PerChunk`] (under [`Views::Snapshot`]
/// the connection is in its snapshot already).
async fn open_view(conn: &mut Conn, views: Views) -> Result<(), ChecksumError> {
    if views == Views::PerChunk {
        conn.query_drop(sql::START_SNAPSHOT)
            .await
            .map_err(step("opening a read view"))?;
    }
    Ok(())
}

/// Closes what [`open_view`] opened.
async fn close_view(conn: &mut Conn, views: Views) -> Result<(), ChecksumError> {
    if views == Views::PerChunk {
        conn.query_drop("COMMIT")
            .await
            .map_err(step("closing a read view"))?;
    }
    Ok(())
}

/// What one pass of [`compare_all`] found.
#[derive(Debug, Default)]
pub struct Pass {
    pub compared: Compared,
    /// ([`Views::PerChunk`]) Keys of rows that differed in their chunk's view (the original's key
    /// columns, as the server returned them).
    pub suspects: Vec<Vec<Value>>,
    /// There were more suspects than [`SUSPECT_LIMIT`]: `suspects` is empty and the tables
    /// must be compared again in one snapshot.
    pub overflowed: bool,
}

/// The most suspects a pass keeps before it gives up on comparing them again one by one.
pub const SUSPECT_LIMIT: usize = crate::apply::keylog::KEYLOG_LIMIT;

/// What the workers found so far.
#[derive(Default)]
struct Findings {
    keys: Vec<String>,
    more: bool,
    compared: Compared,
    suspects: Vec<Vec<Value>>,
    overflowed: bool,
}

impl Findings {
    fn suspect(&mut self, keys: impl IntoIterator<Item = Vec<Value>>) {
        if self.overflowed {
            return;
        }
        self.suspects.extend(keys);
        if self.suspects.len() > SUSPECT_LIMIT {
            self.overflowed = true;
            self.suspects = Vec::new();
        }
    }
}

/// The key range walked so far.
struct Walker {
    next_lo: Option<Vec<Value>>,
    done: bool,
}

/// One chunk: `lo < key <= hi`, a missing side open.
struct Range {
    lo: Option<Vec<Value>>,
    hi: Option<Vec<Value>>,
}

/// Compares the whole tables on `conns` (step 2 of the module's documentation), each chunk in
/// the view `views` says. As the copy does, waits on the throttle `gate` before each chunk and
/// rests after it (`--nice-ratio` from `knobs`, or the pace the primary's write latency asks
/// for): a checksum at full speed is a burst of reads the application would feel at the end of
/// a paced copy. Under [`Views::PerChunk`] no view is open while a worker waits or rests.
pub async fn compare_all(
    spec: &ChecksumSpec,
    conns: Vec<Conn>,
    views: Views,
    gate: &Gate,
    knobs: &Arc<Knobs>,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<Pass, ChecksumError> {
    let walker = Arc::new(tokio::sync::Mutex::new(Walker {
        next_lo: None,
        done: false,
    }));
    let findings = Arc::new(Mutex::new(Findings::default()));
    let enough = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (worker, conn) in conns.into_iter().enumerate() {
        let (spec, walker, findings, enough, gate, knobs, progress, cancel) = (
            spec.clone(),
            walker.clone(),
            findings.clone(),
            enough.clone(),
            gate.clone(),
            knobs.clone(),
            progress.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            let mut conn = conn;
            let result = async {
                loop {
                    gate.wait_for_copy(worker, &cancel).await;
                    if cancel.is_cancelled() {
                        return Err(ChecksumError::Cancelled);
                    }
                    if enough.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    open_view(&mut conn, views).await?;
                    let range = next_range(&spec, &mut conn, &walker).await?;
                    let Some(range) = range else {
                        return Ok(());
                    };
                    let started = Instant::now();
                    compare_range(
                        &spec, &mut conn, &range, views, &findings, &enough, &progress,
                    )
                    .await?;
                    close_view(&mut conn, views).await?;
                    crate::failpoint::sleep_after("checksum:chunk").await;
                    let rested = gate
                        .rest_after_chunk(started.elapsed(), knobs.nice_ratio(), &progress, &cancel)
                        .await;
                    crate::lock(&findings).compared.rested += rested;
                }
            }
            .await;
            let _ = conn.disconnect().await;
            result
        });
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        };
        if let Err(e) = outcome {
            if result.is_ok() {
                result = Err(e);
                tasks.abort_all();
            }
        }
    }
    result?;
    let findings = std::mem::take(&mut *crate::lock(&findings));
    let pass = Pass {
        compared: findings.compared,
        suspects: findings.suspects,
        overflowed: findings.overflowed,
    };
    verdict(spec, findings.keys, findings.more).map(|()| pass)
}

/// Fails with the differing keys found, if any.
fn verdict(spec: &ChecksumSpec, keys: Vec<String>, more: bool) -> Result<(), ChecksumError> {
    if keys.is_empty() {
        return Ok(());
    }
    Err(ChecksumError::Differs {
        table: spec.table().to_string(),
        ghost: spec.ghost().to_string(),
        keys,
        more,
    })
}

/// The next chunk, its upper boundary read (in the snapshot) from the original's key index.
async fn next_range(
    spec: &ChecksumSpec,
    conn: &mut Conn,
    walker: &tokio::sync::Mutex<Walker>,
) -> Result<Option<Range>, ChecksumError> {
    let mut w = walker.lock().await;
    if w.done {
        return Ok(None);
    }
    let lo = w.next_lo.clone();
    if !spec.chunked {
        w.done = true;
        return Ok(Some(Range { lo: None, hi: None }));
    }
    let (query, lo_order) = sql::key_after(
        spec.schema(),
        spec.table(),
        &spec.index,
        &spec.key,
        lo.is_some(),
        spec.chunk_rows,
    );
    let params = params(&lo_order, lo.as_deref(), &[], None);
    let end: Option<Row> = conn
        .exec_first(query, params)
        .await
        .map_err(step("reading the next chunk boundary"))?;
    let hi = end.map(Row::unwrap);
    match &hi {
        Some(hi) => w.next_lo = Some(hi.clone()),
        None => w.done = true,
    }
    Ok(Some(Range { lo, hi }))
}

fn params(
    lo_order: &[usize],
    lo: Option<&[Value]>,
    hi_order: &[usize],
    hi: Option<&[Value]>,
) -> Params {
    let mut values = Vec::new();
    if let Some(lo) = lo {
        values.extend(lo_order.iter().map(|&i| lo[i].clone()));
    }
    if let Some(hi) = hi {
        values.extend(hi_order.iter().map(|&i| hi[i].clone()));
    }
    positional(values)
}

fn positional(values: Vec<Value>) -> Params {
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

/// Compares one chunk by its figures, and row by row if they differ.
async fn compare_range(
    spec: &ChecksumSpec,
    conn: &mut Conn,
    range: &Range,
    views: Views,
    findings: &Mutex<Findings>,
    enough: &AtomicBool,
    progress: &Progress,
) -> Result<(), ChecksumError> {
    let (lo, hi) = (range.lo.as_deref(), range.hi.as_deref());
    let (t_range, lo_order, hi_order) = sql::key_range(&spec.key, lo.is_some(), hi.is_some());
    let (g_range, ..) = sql::key_range(&spec.ghost_key, lo.is_some(), hi.is_some());
    let p = || params(&lo_order, lo, &hi_order, hi);
    let figures = |table: &str, index: Option<&str>, row: &str, range: &str| {
        sql::checksum_rows(spec.schema(), table, index, row, range)
    };
    let original: Option<Row> = conn
        .exec_first(
            figures(
                spec.table(),
                spec.chunked.then_some(spec.index.as_str()),
                &spec.original_row(),
                &t_range,
            ),
            p(),
        )
        .await
        .map_err(step("checksumming a chunk of the original table"))?;
    let ghost: Option<Row> = conn
        .exec_first(
            figures(
                spec.ghost(),
                spec.ghost_index.as_deref().filter(|_| spec.chunked),
                &spec.ghost_row(),
                &g_range,
            ),
            p(),
        )
        .await
        .map_err(step("checksumming a chunk of the ghost table"))?;
    let (original, ghost) = (
        original.map(Row::unwrap).unwrap_or_default(),
        ghost.map(Row::unwrap).unwrap_or_default(),
    );
    let rows = original
        .first()
        .cloned()
        .and_then(|v| mysql_async::from_value_opt::<u64>(v).ok())
        .unwrap_or(0);
    progress.rows_checksummed.fetch_add(rows, Ordering::Relaxed);
    let mut keys = Vec::new();
    let mut suspects = Vec::new();
    if original != ghost {
        let limit = match views {
            Views::Snapshot => NAMED_KEYS + 1,
            Views::PerChunk => SUSPECT_LIMIT + 1,
        };
        let found = differing(spec, conn, &t_range, &g_range, p, limit).await?;
        // (With rows allowed to be missing, a missing row explains the figures.)
        if found.is_empty() && !spec.allow_missing {
            keys.push(format!(
                "the rows with keys {} (their checksums differ, though no single row was found)",
                describe_range(spec, range)
            ));
        }
        match views {
            Views::Snapshot => keys.extend(found.iter().map(|d| d.describe(spec))),
            Views::PerChunk => suspects.extend(found.into_iter().map(|d| d.key)),
        }
    }
    let mut f = crate::lock(findings);
    f.compared.rows += rows;
    f.compared.chunks += 1;
    f.suspect(suspects);
    add_keys(&mut f, keys, enough);
    Ok(())
}

fn add_keys(f: &mut Findings, keys: Vec<String>, enough: &AtomicBool) {
    for key in keys {
        if f.keys.len() < NAMED_KEYS {
            f.keys.push(key);
        } else {
            f.more = true;
        }
    }
    if f.keys.len() >= NAMED_KEYS {
        enough.store(true, Ordering::Relaxed);
    }
}

/// A row that differs between the tables, or that only one of them holds.
#[derive(Debug)]
pub struct Differing {
    /// Its key: the original's key columns, or the ghost's when only the ghost holds the row.
    pub key: Vec<Value>,
    only_in_ghost: bool,
}

impl Differing {
    fn describe(&self, spec: &ChecksumSpec) -> String {
        if self.only_in_ghost {
            format!(
                "{} (only in the ghost table)",
                describe_key(&spec.ghost_key, &self.key)
            )
        } else {
            describe_key(&spec.key, &self.key)
        }
    }
}

/// Rows matching the conditions that are missing from either table, or differ: up to `limit`
/// of each kind.
async fn differing(
    spec: &ChecksumSpec,
    conn: &mut Conn,
    t_where: &str,
    g_where: &str,
    params: impl Fn() -> Params,
    limit: usize,
) -> Result<Vec<Differing>, ChecksumError> {
    let same = spec.same();
    let in_t = sql::rows_not_in(
        spec.schema(),
        spec.table(),
        &spec.key,
        spec.ghost(),
        &spec.ghost_key,
        t_where,
        Some(&same),
        spec.allow_missing,
        limit as u64,
    );
    let rows: Vec<Row> = conn
        .exec(in_t, params())
        .await
        .map_err(step("finding the rows that differ"))?;
    let mut found: Vec<Differing> = rows
        .into_iter()
        .map(|r| Differing {
            key: r.unwrap(),
            only_in_ghost: false,
        })
        .collect();
    let in_ghost = sql::rows_not_in(
        spec.schema(),
        spec.ghost(),
        &spec.ghost_key,
        spec.table(),
        &spec.key,
        g_where,
        None,
        false,
        limit as u64,
    );
    let rows: Vec<Row> = conn
        .exec(in_ghost, params())
        .await
        .map_err(step("finding the rows only the ghost table holds"))?;
    found.extend(rows.into_iter().map(|r| Differing {
        key: r.unwrap(),
        only_in_ghost: true,
    }));
    Ok(found)
}

/// Compares, in `snapshot`, the rows of `keys` (SQL literals of the original's key columns),
/// row by row (step 3 of the module's documentation).
pub async fn compare_keys(
    spec: &ChecksumSpec,
    snapshot: Snapshot,
    keys: Vec<Vec<String>>,
    cancel: &CancellationToken,
) -> Result<Compared, ChecksumError> {
    let conditions = keys
        .chunks(KEYS_PER_BATCH)
        .map(|batch| {
            let t = sql::keys_condition(&spec.key, batch, spec.key_nullable);
            let g = sql::keys_condition(&spec.ghost_key, batch, spec.key_nullable);
            (t, g, Vec::new(), batch.len())
        })
        .collect();
    let (compared, found) =
        compare_conditions(spec, snapshot.conns, conditions, Views::Snapshot, cancel).await?;
    let keys = found.iter().take(NAMED_KEYS).map(|d| d.describe(spec));
    verdict(spec, keys.collect(), found.len() > NAMED_KEYS)?;
    Ok(compared)
}

/// Compares again the rows of `suspects` ([`Pass::suspects`]), in `views`: each batch of keys in
/// a view of its own ([`Views::PerChunk`]), or in the snapshot `conns` are in. Returns how many
/// were compared and those that still differ (all of them).
pub async fn compare_suspects(
    spec: &ChecksumSpec,
    conns: Vec<Conn>,
    suspects: Vec<Vec<Value>>,
    views: Views,
    cancel: &CancellationToken,
) -> Result<(Compared, Vec<Differing>), ChecksumError> {
    let conditions = suspects
        .chunks(KEYS_PER_BATCH)
        .map(|batch| {
            let t = sql::keys_placeholders(&spec.key, batch.len(), spec.key_nullable);
            let g = sql::keys_placeholders(&spec.ghost_key, batch.len(), spec.key_nullable);
            let values: Vec<Value> = batch.iter().flatten().cloned().collect();
            (t, g, values, batch.len())
        })
        .collect();
    compare_conditions(spec, conns, conditions, views, cancel).await
}

/// Fails, naming them, if rows still differ after [`compare_suspects`] in a snapshot.
pub fn suspects_verdict(spec: &ChecksumSpec, still: &[Differing]) -> Result<(), ChecksumError> {
    let keys = still.iter().take(NAMED_KEYS).map(|d| d.describe(spec));
    verdict(spec, keys.collect(), still.len() > NAMED_KEYS)
}

/// Rows differing under each of `conditions` (on the original, on the ghost, their parameters,
/// how many keys they name), on `conns` in parallel.
async fn compare_conditions(
    spec: &ChecksumSpec,
    conns: Vec<Conn>,
    conditions: Vec<(String, String, Vec<Value>, usize)>,
    views: Views,
    cancel: &CancellationToken,
) -> Result<(Compared, Vec<Differing>), ChecksumError> {
    let queue = Arc::new(Mutex::new(conditions));
    let found = Arc::new(Mutex::new((Compared::default(), Vec::new())));
    let workers = conns.into_iter().map(|mut conn| {
        let (queue, found) = (queue.clone(), found.clone());
        async move {
            let result = async {
                loop {
                    if cancel.is_cancelled() {
                        return Err(ChecksumError::Cancelled);
                    }
                    let next = crate::lock(&queue).pop();
                    let Some((t_where, g_where, values, n)) = next else {
                        return Ok(());
                    };
                    open_view(&mut conn, views).await?;
                    let limit = 2 * n + 1;
                    let p = || positional(values.clone());
                    let rows = differing(spec, &mut conn, &t_where, &g_where, p, limit).await?;
                    close_view(&mut conn, views).await?;
                    let mut f = crate::lock(&found);
                    f.0.rows += n as u64;
                    f.0.chunks += 1;
                    f.1.extend(rows);
                }
            }
            .await;
            let _ = conn.disconnect().await;
            result
        }
    });
    for result in join_all(workers).await {
        result?;
    }
    let found = std::mem::take(&mut *crate::lock(&found));
    Ok(found)
}

/// `id=5`, or `(a=1, b='x')` for a key of several columns.
fn describe_key(columns: &[String], values: &[Value]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{c}={}", describe_value(v)))
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", parts.join(", "))
    }
}

fn describe_range(spec: &ChecksumSpec, range: &Range) -> String {
    let side = |v: &Option<Vec<Value>>| {
        v.as_ref()
            .map_or("-".to_string(), |v| describe_key(&spec.key, v))
    };
    format!("after {} up to {}", side(&range.lo), side(&range.hi))
}

/// A value as a person reads it: numbers as they are, text quoted, other bytes in hex.
fn describe_value(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => format!("'{s}'"),
            _ => format!(
                "0x{}",
                b.iter().map(|x| format!("{x:02X}")).collect::<String>()
            ),
        },
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.as_sql(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, data_type: &str, column_type: &str, charset: Option<&str>) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            nullable: true,
            charset: charset.map(String::from),
            collation: None,
            generated: false,
            info: crate::binlog::ColumnInfo::from_information_schema(
                name,
                data_type,
                column_type,
                charset,
                None,
                None,
                "",
            ),
        }
    }

    #[test]
    fn key_ranges_select_alike_where_the_copy_keeps_each_value_and_its_order() {
        let c = |t: &str, ct: &str| column("id", t, ct, None);
        let s = |ct: &str, cs: &str| column("id", "varchar", ct, Some(cs));
        for (o, g) in [
            (c("int", "int(11)"), c("int", "int(11)")),
            (c("int", "int(11)"), c("bigint", "bigint(20) unsigned")),
            (c("smallint", "smallint(6) unsigned"), c("int", "int(11)")),
            (s("varchar(10)", "utf8mb4"), s("varchar(10)", "utf8mb4")),
            (s("varchar(10)", "utf8mb4"), s("varchar(64)", "utf8mb4")),
            (c("binary", "binary(4)"), c("varbinary", "varbinary(16)")),
        ] {
            assert!(ranges_alike(&o, &g), "{o:?} -> {g:?}");
        }
        let char10 = column("id", "char", "char(10)", Some("utf8mb4"));
        for (o, g) in [
            (c("int", "int(11)"), c("decimal", "decimal(20,0)")),
            (s("varchar(10)", "latin1"), s("varchar(10)", "utf8mb4")),
            (s("varchar(10)", "utf8mb4"), char10.clone()),
            (char10, s("varchar(10)", "utf8mb4")),
            (c("varbinary", "varbinary(4)"), c("binary", "binary(4)")),
            (c("int", "int(11)"), s("varchar(10)", "utf8mb4")),
        ] {
            assert!(!ranges_alike(&o, &g), "{o:?} -> {g:?}");
        }
    }

    #[test]
    fn columns_whose_text_the_copy_keeps_are_compared_and_retyped_ones_are_not() {
        let c = |t: &str, ct: &str| column("c", t, ct, None);
        let s = |t: &str, ct: &str, cs: &str| column("c", t, ct, Some(cs));
        // The same type, integers widened, text lengthened: bytes as they are.
        for (o, g) in [
            (c("decimal", "decimal(10,2)"), c("decimal", "decimal(10,2)")),
            (c("int", "int(11)"), c("bigint", "bigint(20) unsigned")),
            (
                s("varchar", "varchar(10)", "utf8mb4"),
                s("text", "text", "utf8mb4"),
            ),
            (c("varbinary", "varbinary(4)"), c("blob", "blob")),
            (
                s("enum", "enum('a')", "utf8mb4"),
                s("enum", "enum('a','b')", "utf8mb4"),
            ),
        ] {
            let m = compared(&o, &g).unwrap_or_else(|| panic!("{o:?} -> {g:?}"));
            assert_eq!(m.convert_to, None);
        }
        // A new character set: the original converted as the copy converts it.
        let m = compared(
            &s("varchar", "varchar(10)", "latin1"),
            &s("varchar", "varchar(10)", "utf8mb4"),
        )
        .unwrap();
        assert_eq!(m.convert_to.as_deref(), Some("utf8mb4"));
        assert_eq!(
            m.original_bytes("x"),
            "CAST(CONVERT(x.`c` USING utf8mb4) AS BINARY)"
        );
        // Values the copy changes on purpose (or pads): not compared.
        for (o, g) in [
            (c("decimal", "decimal(10,2)"), c("decimal", "decimal(10,4)")),
            (c("datetime", "datetime(3)"), c("datetime", "datetime(6)")),
            (c("float", "float"), c("double", "double")),
            (
                s("varchar", "varchar(10)", "utf8mb4"),
                s("char", "char(10)", "utf8mb4"),
            ),
            (c("varbinary", "varbinary(4)"), c("binary", "binary(4)")),
            (c("int", "int(11)"), s("varchar", "varchar(10)", "utf8mb4")),
            (
                s("set", "set('x','y')", "utf8mb4"),
                s("set", "set('y','x')", "utf8mb4"),
            ),
        ] {
            assert_eq!(compared(&o, &g), None, "{o:?} -> {g:?}");
        }
        assert!(
            compared(&c("json", "json"), &c("json", "json"))
                .unwrap()
                .large
        );
    }

    #[test]
    fn keys_are_described_for_people() {
        assert_eq!(describe_key(&["id".into()], &[Value::Int(5)]), "id=5");
        assert_eq!(
            describe_key(
                &["a".into(), "b".into()],
                &[Value::Bytes(b"x".to_vec()), Value::Bytes(vec![0, 255])]
            ),
            "(a='x', b=0x00FF)"
        );
    }
}
