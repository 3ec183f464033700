//! The parallel chunked row copier.
//!
//! In: the [`Plan`], the primary, the [`Knobs`] (chunk size and nice ratio, changeable while
//! running), the [`Gate`] that throttles it, the [`Watermark`] it starts above (empty, or a
//! resumed run's checkpoint), and the run's cancellation token. Out: every row that existed when
//! the copy began written to the ghost table, counts in [`Progress`], and the watermark moved
//! past every committed chunk (then marked done) for checkpoints. Invariant (docs/architecture.md, 2): the copy never
//! overwrites newer data: it writes with `INSERT IGNORE`, so a row the applier already wrote wins.
//! Any row skipped for another reason (a duplicate on a new unique key, a value that does not fit)
//! fails the copy with the server's warning, or is counted under `--allow-skipped-rows`: never a
//! silent loss. Every warning is seen: the server lists at most 65535 per statement but counts
//! them all (`@@warning_count`), and a chunk with more is copied again in smaller pieces.
//!
//! Workers share one [`Chunker`]: each takes the next range, copies it with
//! `INSERT IGNORE ... SELECT ...` and sleeps `--nice-ratio` times the chunk's duration afterwards,
//! or the gate's pace times it ([`Pacer`]: the primary's writes are slower than before the copy)
//! if that is longer. The copy sessions read committed, so with an exact key
//! ([`CopySpec::tombstones`]) a chunk reads its statement's snapshot without locking the
//! original's rows, and the keys the applier deleted while it read are deleted again after it
//! ([`tombstones`]: the only rows a snapshot could bring back); otherwise it reads with
//! `LOCK IN SHARE MODE` (a row is never copied from a half-committed state, and a change to a
//! copied row commits after the chunk), locking the rows read but not the gaps between them.
//! Either way a row changed after the chunk read it has a binlog event the applier writes
//! whatever the copy did.
//!
//! Rows whose key has a NULL in it (a nullable key under `--allow-nullable-unique-key`) are in no
//! key range, and no key tells them apart, so the applier cannot match a copied one with its
//! changes. They are copied last, in one transaction with a changelog row
//! ([`crate::changelog::NULL_KEY_ROWS_HINT`]): the copy's locking read waits for every
//! transaction that changed them and holds back every later one, so the changes before that row
//! in the binlog are in the copy and those after it are not. The applier leaves such rows alone
//! until it reads that row, and from then on matches them by their values
//! ([`crate::apply::ApplyPlan`]).

pub mod chunker;
pub mod deferred;
pub mod front;
pub mod tombstones;
pub mod watermark;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

pub use chunker::{Chunk, Chunker};
pub use front::CopyFront;
pub use tombstones::Tombstones;
pub use watermark::{CopyMark, Watermark};

use crate::control::Knobs;
use crate::inspect::Plan;
use crate::mysql::{self, sql, ConnectError, Credentials, Endpoint};
use crate::progress::Progress;
use crate::throttle::{pace, Gate, Pacer};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The first sentence is gh-ost's under --panic-on-warnings (`go/logic/migrator.go`,
    /// `iterateChunks`), with the warning as gh-ost lists it (`Warning: <message> (<code>)`), for
    /// scripts that grep it; wraith fails so whether or not that flag is given.
    #[error("ApplyIterationInsertQuery failed because of SQL warnings: [{0}]: copying rows skipped a row. The new table cannot hold this data as it is (a duplicate on a unique key the ALTER adds or changes: a new key, a shorter prefix, a collation that compares more loosely; or a value that does not fit); fix the data or the ALTER, or pass --allow-skipped-rows to drop such rows knowingly")]
    SkippedRow(String),
    #[error("copying rows failed: {0}")]
    Sql(#[from] mysql_async::Error),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cancelled")]
    Cancelled,
}

/// What the copier needs to know, fixed for the run.
#[derive(Debug, Clone)]
pub struct CopySpec {
    pub schema: String,
    pub original: String,
    pub ghost: String,
    pub original_columns: Vec<String>,
    pub ghost_columns: Vec<String>,
    pub index: String,
    pub key_columns: Vec<String>,
    /// Key columns that may hold NULL in the original table: rows with a NULL there are copied
    /// apart (`copy_null_keys`).
    pub nullable_key_columns: Vec<String>,
    /// The changelog table, where the copy of the rows with a NULL key is marked.
    pub changelog: String,
    /// Unique keys of the ghost table that the original table has too (same columns, prefixes and
    /// collations: [`Plan::shared_unique_keys`]). A
    /// duplicate on one of them is expected: on the shared key, the applier wrote the row first;
    /// on another, the copy read a row newer than one the applier has not updated yet, and the
    /// binlog event that gave the copied row its value follows (the original never held the
    /// value twice), so the applier writes it; a row whose change was left to the copy has no
    /// such event, and is read only once the batch that left it is written ([`CopyFront`],
    /// invariant 4). A duplicate on any other unique key (one the ALTER
    /// adds or changes) is a row the new table cannot hold.
    pub tolerated_keys: Vec<String>,
    /// `--allow-skipped-rows`: a skipped row is counted and logged instead of failing the copy.
    pub allow_skipped_rows: bool,
    pub workers: usize,
    pub strict: bool,
    /// `--chunk-target-millis`: chunks are resized after each one to take about this long
    /// ([`adapt_chunk_size`]).
    pub chunk_target: Option<Duration>,
    /// `--chunk-max-bytes`: no chunk holds more rows than this ([`chunker::rows_within`]).
    pub max_chunk_rows: Option<u64>,
    /// Some: chunks read their snapshot without shared locks, and the keys the applier deletes
    /// meanwhile are deleted again after each chunk ([`tombstones`]). None: `LOCK IN SHARE MODE`.
    pub tombstones: Option<Arc<Tombstones>>,
    /// Some: the chunker tells the applier which keys are still to be copied, whose changes it
    /// leaves to the copy ([`front`]).
    pub front: Option<Arc<CopyFront>>,
    /// Where to reconnect after a lost connection.
    pub primary: Endpoint,
    pub creds: Credentials,
}

impl CopySpec {
    /// A spec with one worker and strict mode; set those fields as needed.
    pub fn new(
        plan: &Plan,
        schema: &str,
        original: &str,
        ghost: &str,
        primary: Endpoint,
        creds: Credentials,
    ) -> CopySpec {
        let tolerated_keys = plan
            .shared_unique_keys()
            .into_iter()
            .map(|(_, g)| g.name.clone())
            .collect();
        CopySpec {
            schema: schema.to_string(),
            original: original.to_string(),
            ghost: ghost.to_string(),
            original_columns: plan.columns.iter().map(|m| m.original.clone()).collect(),
            ghost_columns: plan.columns.iter().map(|m| m.ghost.clone()).collect(),
            index: plan.key.name.clone(),
            key_columns: plan.key.columns.clone(),
            nullable_key_columns: plan
                .key
                .columns
                .iter()
                .filter(|c| plan.original.column(c).is_none_or(|c| c.nullable))
                .cloned()
                .collect(),
            changelog: format!("_{original}_ghc"),
            tolerated_keys,
            allow_skipped_rows: false,
            workers: 1,
            strict: true,
            chunk_target: None,
            max_chunk_rows: None,
            tombstones: None,
            front: None,
            primary,
            creds,
        }
    }
}

/// Copies every row above `watermark`'s key (every row, for a watermark that starts empty;
/// those above a resumed run's checkpoint), moving the watermark as chunks commit; returns when
/// done, on the first error, or when cancelled.
pub async fn run(
    spec: Arc<CopySpec>,
    watermark: Arc<Watermark>,
    knobs: Arc<Knobs>,
    gate: Gate,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), CopyError> {
    // Whatever ends the copy, the applier applies every change from then on.
    let _ended = CopyEnded(spec.clone());
    let mut conn = writer_conn(&spec.primary, &spec.creds, spec.strict).await?;
    let mut chunker = Chunker::new(
        &mut conn,
        &spec.schema,
        &spec.original,
        &spec.index,
        &spec.key_columns,
        &spec.nullable_key_columns,
        knobs.chunk_size_handle(),
    )
    .await?;
    chunker.cap_rows(spec.max_chunk_rows);
    if let Some(after) = watermark.mark().through {
        chunker.start_after(after);
    }
    if let Some(front) = &spec.front {
        chunker.report_to(front.clone());
    }
    pace_baseline(gate.pacer(), &cancel).await;
    let chunker = Arc::new(Mutex::new(chunker));
    let mut tasks = tokio::task::JoinSet::new();
    // Worker 0 keeps the connection that read the key range; the others get their own.
    let mut first = Some(conn);
    for worker in 0..spec.workers.max(1) {
        let conn = match first.take() {
            Some(c) => c,
            None => writer_conn(&spec.primary, &spec.creds, spec.strict).await?,
        };
        let (spec, chunker, watermark, knobs, gate, progress, cancel) = (
            spec.clone(),
            chunker.clone(),
            watermark.clone(),
            knobs.clone(),
            gate.clone(),
            progress.clone(),
            cancel.clone(),
        );
        tasks.spawn(work(
            worker, conn, spec, chunker, watermark, knobs, gate, progress, cancel,
        ));
    }
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue, // aborted after another worker failed
        };
        if let Err(e) = outcome {
            if result.is_ok() {
                result = Err(e);
                // One failure stops the others.
                tasks.abort_all();
            }
        }
    }
    result?;
    if let Some(t) = &spec.tombstones {
        tracing::info!(
            "{} keys deleted while a chunk read its snapshot were deleted again after the chunk",
            t.handed_back()
        );
    }
    if let Some(front) = &spec.front {
        tracing::info!(
            "{} of the {} changes the applier met while the copy ran were to rows the copy had not reached yet: left to the copy instead of being written twice",
            front.left_out(),
            front.met()
        );
    }
    if !spec.nullable_key_columns.is_empty() {
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        let mut conn = writer_conn(&spec.primary, &spec.creds, spec.strict).await?;
        let (copied, skipped) = copy_null_keys(&mut conn, &spec).await?;
        tracing::info!("copied {copied} rows whose key holds a NULL");
        progress.rows_skipped.fetch_add(skipped, Ordering::Relaxed);
        progress.rows_copied.fetch_add(copied, Ordering::Relaxed);
    }
    watermark.done();
    Ok(())
}

/// Tells the front and the tombstones that the copy has ended, however it ends.
struct CopyEnded(Arc<CopySpec>);

impl Drop for CopyEnded {
    fn drop(&mut self) {
        if let Some(front) = &self.0.front {
            front.stop();
        }
        if let Some(t) = &self.0.tombstones {
            t.copy_over();
        }
    }
}

/// Copies the rows whose key holds a NULL and writes the changelog row that tells the applier
/// so, in one transaction (see the module's documentation); returns (rows copied, rows skipped).
async fn copy_null_keys(conn: &mut Conn, spec: &CopySpec) -> Result<(u64, u64), CopyError> {
    let copy = sql::copy_null_keys(
        &spec.schema,
        &spec.original,
        &spec.ghost,
        &spec.original_columns,
        &spec.ghost_columns,
        &spec.index,
        &spec.nullable_key_columns,
    );
    let marker = sql::changelog_upsert(
        &spec.schema,
        &spec.changelog,
        None,
        crate::changelog::NULL_KEY_ROWS_HINT,
        "copied",
    );
    let done = sql::changelog_count_hint(
        &spec.schema,
        &spec.changelog,
        crate::changelog::NULL_KEY_ROWS_HINT,
    );
    let mut attempt = 0u64;
    loop {
        let result = async {
            // After a lost connection the COMMIT may have happened: copying again would copy
            // every such row twice (nothing tells them apart).
            if attempt > 0 && conn.query_first::<u64, _>(&done).await?.unwrap_or(0) > 0 {
                tracing::warn!("the rows whose key holds a NULL were copied before the connection was lost; their count is unknown");
                return Ok((0, Vec::new(), 0));
            }
            // Gap locks (repeatable read) hold back rows that would get a NULL key meanwhile.
            conn.query_drop("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await?;
            conn.query_drop("START TRANSACTION").await?;
            conn.query_drop(&copy).await?;
            let copied = conn.affected_rows();
            let (warnings, total) = read_warnings(conn).await?;
            conn.query_drop(&marker).await?;
            conn.query_drop("COMMIT").await?;
            Ok::<_, mysql_async::Error>((copied, warnings, total))
        }
        .await;
        match result {
            Ok((copied, warnings, total)) => {
                let unlisted = total.saturating_sub(warnings.len() as u64);
                return Ok((copied, judge(spec, &warnings, unlisted)?));
            }
            Err(e) => {
                let _ = conn.query_drop("ROLLBACK").await;
                retry_or_fail(
                    conn,
                    spec,
                    e,
                    &mut attempt,
                    "copying the rows whose key holds a NULL",
                )
                .await?
            }
        }
    }
}

/// The next chunk size under `--chunk-target-millis`: the rows that would take `target` at the
/// pace of the chunk of `rows` rows that took `took`, moved halfway there (so at most halving at
/// once), at most doubling at once, and within gh-ost's 10 to 100000 rows.
pub fn adapt_chunk_size(rows: i64, took: Duration, target: Duration) -> i64 {
    let rows = rows.max(1) as f64;
    let ideal = rows * target.as_secs_f64() / took.as_secs_f64().max(1e-4);
    let next = ((rows + ideal) / 2.0).min(rows * 2.0);
    (next.round() as i64).clamp(10, 100_000)
}

/// Takes the primary's write latency before the first chunk as the pacer's baseline, waiting
/// (up to two seconds) for the heartbeat to have timed [`pace::BASELINE_WANTED`] writes, and,
/// when the application writes the table meanwhile, (up to four) for
/// [`pace::BASELINE_WANTED_UNDER_WRITES`], whose quietest second counts.
async fn pace_baseline(pacer: &Pacer, cancel: &CancellationToken) {
    if !pacer.enabled() {
        return;
    }
    let started = Instant::now();
    let wait = async |wanted: usize, within: Duration| {
        while pacer.samples_before() < wanted
            && started.elapsed() < within
            && !cancel.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait(pace::BASELINE_WANTED, Duration::from_secs(2)).await;
    if pacer.application_writes() {
        wait(pace::BASELINE_WANTED_UNDER_WRITES, Duration::from_secs(4)).await;
    }
    match pacer.begin() {
        Some(baseline) => tracing::info!(
            "the primary's writes take {baseline:?} before the copy (median of the quietest {} of {} heartbeats); the copy slows down while they take longer than --pace-latency-ratio times that",
            pace::BASELINE_WANTED.min(pacer.samples_before()),
            pacer.samples_before()
        ),
        None => tracing::info!(
            "the copy is not paced by the primary's write latency: too few heartbeats were timed before it began"
        ),
    }
}

/// The warnings of the last statement as the server lists them (at most `max_error_count`), and
/// how many it had in all (`@@warning_count`, which has no such limit).
async fn read_warnings(
    conn: &mut Conn,
) -> Result<(Vec<(Vec<u8>, u32, Vec<u8>)>, u64), mysql_async::Error> {
    // The OK packet's count stops at 65535; it only says whether to look.
    if conn.get_warnings() == 0 {
        return Ok((Vec::new(), 0));
    }
    let warnings: Vec<(Vec<u8>, u32, Vec<u8>)> = conn.query("SHOW WARNINGS").await?;
    let total: Option<u64> = conn.query_first("SELECT @@warning_count").await?;
    let total = total.unwrap_or(0).max(warnings.len() as u64);
    Ok((warnings, total))
}

async fn writer_conn(
    primary: &Endpoint,
    creds: &Credentials,
    strict: bool,
) -> Result<Conn, CopyError> {
    let mut conn = mysql::connect(primary, creds).await?;
    conn.query_drop(sql::writer_session(strict)).await?;
    conn.query_drop("SET SESSION max_error_count = 65535")
        .await?;
    // Record locks only (see the module's documentation); the copy of the rows with a NULL key
    // sets repeatable read for its own transaction.
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await?;
    Ok(conn)
}

#[allow(clippy::too_many_arguments)]
async fn work(
    worker: usize,
    mut conn: Conn,
    spec: Arc<CopySpec>,
    chunker: Arc<Mutex<Chunker>>,
    watermark: Arc<Watermark>,
    knobs: Arc<Knobs>,
    gate: Gate,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(), CopyError> {
    let statements = ChunkStatements::new(&spec);
    loop {
        gate.wait_for_copy(worker, &cancel).await;
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
        let chunk = next_chunk(&mut conn, &spec, &chunker).await?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        if let Some(front) = &spec.front {
            // The batches that left rows of this chunk to it are written first (`front`,
            // invariant 4).
            tokio::select! {
                _ = front.settled() => {}
                _ = cancel.cancelled() => return Err(CopyError::Cancelled),
            }
        }
        let started = Instant::now();
        let rows = chunker
            .lock()
            .await
            .chunk_size
            .load(Ordering::Relaxed)
            .max(1) as u64;
        // Registered before the chunk's statement takes its snapshot.
        let in_flight = spec.tombstones.as_ref().map(|t| t.begin());
        let copied = copy_one(&mut conn, &spec, &statements, &chunk, rows).await;
        if let (Some(target), Ok(_)) = (spec.chunk_target, &copied) {
            let size = chunker.lock().await.chunk_size.clone();
            let next = adapt_chunk_size(rows as i64, started.elapsed(), target);
            size.store(next, Ordering::Relaxed);
        }
        if let (Some(t), Some(in_flight)) = (&spec.tombstones, in_flight) {
            if let Some(generation) = t.end(in_flight) {
                // Rows deleted while the chunk read may be back: done once deleted again.
                t.wait_applied(generation, &cancel).await;
                if cancel.is_cancelled() {
                    return Err(CopyError::Cancelled);
                }
            }
        }
        let (copied, skipped) = copied?;
        progress.rows_skipped.fetch_add(skipped, Ordering::Relaxed);
        progress.rows_copied.fetch_add(copied, Ordering::Relaxed);
        progress.chunks_copied.fetch_add(1, Ordering::Relaxed);
        watermark.finished(chunk.seq, chunk.hi);
        gate.rest_after_chunk(started.elapsed(), knobs.nice_ratio(), &progress, &cancel)
            .await;
        if cancel.is_cancelled() {
            return Err(CopyError::Cancelled);
        }
    }
}

/// The copy statements of a run: for the first chunk (its lower bound included) and the others,
/// and which key value each placeholder takes.
struct ChunkStatements {
    first: String,
    next: String,
    lo_order: Vec<usize>,
    hi_order: Vec<usize>,
}

impl ChunkStatements {
    fn new(spec: &CopySpec) -> ChunkStatements {
        let statement = |lo_inclusive| {
            sql::copy_chunk(
                &spec.schema,
                &spec.original,
                &spec.ghost,
                &spec.original_columns,
                &spec.ghost_columns,
                &spec.index,
                &spec.key_columns,
                &spec.nullable_key_columns,
                lo_inclusive,
                spec.tombstones.is_none(),
                crate::failpoint::copy_rows_condition(),
            )
        };
        let (first, lo_order, hi_order) = statement(true);
        let (next, ..) = statement(false);
        ChunkStatements {
            first,
            next,
            lo_order,
            hi_order,
        }
    }
}

/// The next chunk from the shared chunker, reconnecting after a lost connection.
async fn next_chunk(
    conn: &mut Conn,
    spec: &CopySpec,
    chunker: &Mutex<Chunker>,
) -> Result<Option<Chunk>, CopyError> {
    let mut attempt = 0u64;
    loop {
        let result = chunker.lock().await.next(conn).await;
        match result {
            Ok(chunk) => return Ok(chunk),
            Err(e) => {
                retry_or_fail(
                    conn,
                    spec,
                    e,
                    &mut attempt,
                    "reading the next chunk boundary",
                )
                .await?
            }
        }
    }
}

/// One run of a chunk's copy statement: rows written, the warnings the server listed, and how
/// many it had in all (`@@warning_count`: it lists at most `max_error_count`, 65535, but counts
/// every one).
struct Outcome {
    copied: u64,
    /// (level, code, message): a message quotes the row's values, which need not be UTF-8.
    warnings: Vec<(Vec<u8>, u32, Vec<u8>)>,
    total: u64,
}

/// Copies one chunk and judges its warnings; returns (rows copied, rows skipped). When the
/// chunk had more warnings than the server lists, the same range is copied again in smaller
/// pieces until every warning is seen: `INSERT IGNORE` of a key range is idempotent (rows
/// already written come back as duplicates on the shared key, tolerated), and a row it must
/// skip is skipped, and counted, again. A chunk that keeps deadlocking (with the applier's
/// transactions, which come again and again while a long statement runs) is copied in halves.
async fn copy_one(
    conn: &mut Conn,
    spec: &CopySpec,
    statements: &ChunkStatements,
    chunk: &Chunk,
    rows: u64,
) -> Result<(u64, u64), CopyError> {
    let outcome = match run_chunk(conn, spec, statements, chunk, rows > 1).await? {
        Ran::Done(outcome) => outcome,
        Ran::Contended => {
            let rows = rows / 2;
            tracing::info!(
                "chunk {} met a deadlock or a lock wait timeout {SPLIT_AFTER} times in a row: copying it in pieces of {rows} rows",
                chunk.seq
            );
            return copy_pieces(conn, spec, statements, chunk, rows).await;
        }
    };
    let listed = outcome.warnings.len() as u64;
    if outcome.total <= listed {
        return Ok((outcome.copied, judge(spec, &outcome.warnings, 0)?));
    }
    if rows <= 1 {
        // One row cannot have more warnings than the server lists; judge what it said.
        let unlisted = outcome.total - listed;
        return Ok((outcome.copied, judge(spec, &outcome.warnings, unlisted)?));
    }
    let rows = rows / 2;
    tracing::info!(
        "chunk {} had {} warnings, more than the server lists ({listed}): copying it again in pieces of {rows} rows to see them all",
        chunk.seq,
        outcome.total
    );
    let (copied, skipped) = copy_pieces(conn, spec, statements, chunk, rows).await?;
    Ok((outcome.copied + copied, skipped))
}

/// Copies `chunk` again in pieces of `rows` rows ([`copy_one`] each); returns (rows copied, rows
/// skipped).
async fn copy_pieces(
    conn: &mut Conn,
    spec: &CopySpec,
    statements: &ChunkStatements,
    chunk: &Chunk,
    rows: u64,
) -> Result<(u64, u64), CopyError> {
    let pieces = chunker::split(
        conn,
        &spec.schema,
        &spec.original,
        &spec.index,
        &spec.key_columns,
        &spec.nullable_key_columns,
        chunk,
        rows,
    )
    .await?;
    let (mut copied, mut skipped) = (0, 0);
    for piece in pieces {
        let (c, s) = Box::pin(copy_one(conn, spec, statements, &piece, rows)).await?;
        copied += c;
        skipped += s;
    }
    Ok((copied, skipped))
}

/// The rows `warnings` (plus `unlisted` warnings the server did not list) say were skipped:
/// every warning but a duplicate on a tolerated key. Fails on the first one unless
/// `--allow-skipped-rows`.
fn judge(
    spec: &CopySpec,
    warnings: &[(Vec<u8>, u32, Vec<u8>)],
    unlisted: u64,
) -> Result<u64, CopyError> {
    let mut skipped = 0;
    for (level, code, message) in warnings {
        let message = String::from_utf8_lossy(message);
        if expected_warning(*code, &message, &spec.tolerated_keys) {
            continue;
        }
        let what = format!("{}: {message} ({code})", String::from_utf8_lossy(level));
        if !spec.allow_skipped_rows {
            return Err(CopyError::SkippedRow(what));
        }
        if skipped < LOGGED_PER_CHUNK {
            tracing::warn!("copy skipped a row, allowed by --allow-skipped-rows: {what}");
        }
        skipped += 1;
    }
    if unlisted > 0 && !spec.allow_skipped_rows {
        return Err(CopyError::SkippedRow(format!(
            "{unlisted} warnings the server did not list"
        )));
    }
    skipped += unlisted;
    if skipped > LOGGED_PER_CHUNK {
        tracing::warn!(
            "copy skipped {} more rows of this chunk, allowed by --allow-skipped-rows",
            skipped - LOGGED_PER_CHUNK
        );
    }
    Ok(skipped)
}

/// Skipped rows logged one by one per chunk; the rest are counted.
const LOGGED_PER_CHUNK: u64 = 5;

/// How a chunk's statement ended.
enum Ran {
    Done(Outcome),
    /// It deadlocked [`SPLIT_AFTER`] times in a row: copy it in smaller pieces.
    Contended,
}

/// Deadlocks in a row after which a chunk that can be split is copied in halves instead.
const SPLIT_AFTER: u64 = 3;

/// Runs a chunk's copy statement and reads its warnings. Deadlocks are retried (up to
/// [`SPLIT_AFTER`] times when the chunk `may_split`: then [`Ran::Contended`]); after a lost
/// connection (during the copy or the warnings check) the connection is reopened and the whole
/// chunk copied again.
async fn run_chunk(
    conn: &mut Conn,
    spec: &CopySpec,
    statements: &ChunkStatements,
    chunk: &Chunk,
    may_split: bool,
) -> Result<Ran, CopyError> {
    let query = if chunk.lo_inclusive {
        &statements.first
    } else {
        &statements.next
    };
    let (mut attempt, mut deadlocks) = (0u64, 0u64);
    loop {
        let result = async {
            conn.exec_drop(
                query,
                chunk.params(&statements.lo_order, &statements.hi_order),
            )
            .await?;
            let copied = conn.affected_rows();
            let (warnings, total) = read_warnings(conn).await?;
            Ok::<_, mysql_async::Error>(Outcome {
                copied,
                warnings,
                total,
            })
        }
        .await;
        match result {
            Ok(outcome) => return Ok(Ran::Done(outcome)),
            Err(e) => {
                if mysql::failure(&e) == mysql::Failure::Transient {
                    deadlocks += 1;
                    if may_split && deadlocks >= SPLIT_AFTER {
                        return Ok(Ran::Contended);
                    }
                }
                retry_or_fail(
                    conn,
                    spec,
                    e,
                    &mut attempt,
                    &format!("copying chunk {}", chunk.seq),
                )
                .await?
            }
        }
    }
}

/// Decides what to do after a failed statement: wait and retry (deadlock), reconnect and retry
/// (lost connection), or give up.
async fn retry_or_fail(
    conn: &mut Conn,
    spec: &CopySpec,
    error: mysql_async::Error,
    attempt: &mut u64,
    what: &str,
) -> Result<(), CopyError> {
    *attempt += 1;
    match mysql::failure(&error) {
        _ if *attempt > RETRIES => Err(error.into()),
        mysql::Failure::Fatal => Err(error.into()),
        mysql::Failure::Transient => {
            tokio::time::sleep(Duration::from_millis(20 * *attempt)).await;
            Ok(())
        }
        mysql::Failure::ConnectionLost => {
            tracing::warn!(
                "copy connection lost while {what} ({error}); reconnecting and trying again"
            );
            tokio::time::sleep(Duration::from_millis(200 * *attempt)).await;
            match writer_conn(&spec.primary, &spec.creds, spec.strict).await {
                Ok(fresh) => {
                    *conn = fresh;
                    Ok(())
                }
                Err(e) if *attempt >= RETRIES => Err(e),
                Err(_) => Ok(()),
            }
        }
    }
}

/// Attempts at one chunk before giving up.
const RETRIES: u64 = 10;

/// Whether a warning of `INSERT IGNORE` is expected: a duplicate on one of `tolerated_keys`
/// (see [`CopySpec::tolerated_keys`]). Anything else means a row was skipped or changed.
fn expected_warning(code: u32, message: &str, tolerated_keys: &[String]) -> bool {
    if code != 1062 {
        return false;
    }
    // "Duplicate entry '5' for key 'PRIMARY'" (MariaDB, MySQL 5.7) or "... for key 't.PRIMARY'" (MySQL 8).
    let Some(key) = message
        .rsplit("for key '")
        .next()
        .and_then(|k| k.strip_suffix('\''))
    else {
        return false;
    };
    let key = key.rsplit('.').next().unwrap_or(key);
    tolerated_keys.iter().any(|k| k.eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use super::{adapt_chunk_size, expected_warning, judge, CopyError, CopySpec, Duration};

    fn spec() -> CopySpec {
        CopySpec {
            schema: "d".into(),
            original: "t".into(),
            ghost: "_t_gho".into(),
            original_columns: vec!["id".into(), "a".into()],
            ghost_columns: vec!["id".into(), "a".into()],
            index: "PRIMARY".into(),
            key_columns: vec!["id".into()],
            nullable_key_columns: vec![],
            changelog: "_t_ghc".into(),
            tolerated_keys: vec!["PRIMARY".into()],
            allow_skipped_rows: false,
            workers: 1,
            strict: true,
            chunk_target: None,
            max_chunk_rows: None,
            tombstones: None,
            front: None,
            primary: crate::mysql::Endpoint {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            creds: crate::mysql::Credentials {
                user: "root".into(),
                password: String::new(),
                charset: "utf8mb4".into(),
                tls: None,
                connect_timeout: std::time::Duration::from_secs(5),
            },
        }
    }

    #[test]
    fn chunk_sizes_move_halfway_towards_the_target_time_within_bounds() {
        let ms = Duration::from_millis;
        // 1000 rows in 10 ms: 10000 would take 100 ms; halfway is 5500, but at most doubled.
        assert_eq!(adapt_chunk_size(1000, ms(10), ms(100)), 2000);
        // 2000 rows in 80 ms: 2500 would take 100 ms; halfway: 2250.
        assert_eq!(adapt_chunk_size(2000, ms(80), ms(100)), 2250);
        // A slow chunk: halfway to the 100 rows that would take 100 ms.
        assert_eq!(adapt_chunk_size(2000, ms(2000), ms(100)), 1050);
        // Within 10 and 100000 rows.
        assert_eq!(adapt_chunk_size(12, ms(1000), ms(1)), 10);
        assert_eq!(adapt_chunk_size(90_000, ms(1), ms(500)), 100_000);
        // On target: unchanged.
        assert_eq!(adapt_chunk_size(1000, ms(100), ms(100)), 1000);
    }

    /// A row the copy skipped fails the run with gh-ost's words under --panic-on-warnings, the
    /// warning listed as gh-ost lists it, for scripts that grep them; wraith's explanation
    /// follows.
    #[test]
    fn a_skipped_row_fails_the_copy_with_gh_osts_words_for_warnings() {
        let warning = (
            b"Warning".to_vec(),
            1062,
            b"Duplicate entry '7' for key 'a_uidx'".to_vec(),
        );
        let e = judge(&spec(), &[warning], 0).unwrap_err();
        assert!(matches!(e, CopyError::SkippedRow(_)));
        let gh_ost = "ApplyIterationInsertQuery failed because of SQL warnings: [Warning: \
                      Duplicate entry '7' for key 'a_uidx' (1062)]";
        let message = e.to_string();
        assert!(
            message.starts_with(gh_ost) && message.contains("--allow-skipped-rows"),
            "{message}"
        );
    }

    #[test]
    fn only_duplicates_on_keys_both_tables_have_are_expected() {
        let keys = vec!["PRIMARY".to_string(), "email_uidx".to_string()];
        assert!(expected_warning(
            1062,
            "Duplicate entry '5' for key 'PRIMARY'",
            &keys
        ));
        assert!(expected_warning(
            1062,
            "Duplicate entry '5' for key '_t_gho.PRIMARY'",
            &keys
        ));
        assert!(expected_warning(
            1062,
            "Duplicate entry 'a@b' for key 'email_uidx'",
            &keys
        ));
        assert!(!expected_warning(
            1062,
            "Duplicate entry 'x' for key 'new_uidx'",
            &keys
        ));
        assert!(!expected_warning(
            1265,
            "Data truncated for column 'c' at row 3",
            &keys
        ));
    }
}
