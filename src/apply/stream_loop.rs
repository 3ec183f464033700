//! The loop between the binlog stream and the applier.
//!
//! In: the [`Streamer`]'s items, the coordinator's [`Control`], and, while the copy reads
//! without shared locks, the keys to delete again after its chunks ([`Tombstones`], applied at
//! once even when the stream is quiet). Out: row events of the original
//! table applied in batches (through [`Applier`]), heartbeat lag and the binlog position in
//! [`Progress`] (a heartbeat counts as come back once the events read before it are applied, so
//! the lag is the trip to the ghost table, a batch's time included), and a [`LoopStatus`] the cut-over reads. Invariant (docs/architecture.md, 4): a cut-over
//! marker is reported applied only once every event before it has been applied; after it, events
//! of the original table are held, not applied, until the swap is seen in the binlog (held events
//! are writes the swap would lose) or the coordinator resumes after an aborted cut-over. DDL on
//! the original table by anyone else stops the migration. Tables are recognised by name as the
//! server compares names ([`NameCase`]), in statements as [`Statement`] reads them.
//!
//! Batches: while the stream is quiet, pending events are applied once the first of them has
//! waited [`LoopSpec::linger`] (`--apply-batch-millis`) for more, so that a trickle of the
//! application's transactions becomes a few larger ones on the ghost table (each of the
//! applier's commits costs the primary and the replica about what one of the application's
//! does); markers, the null-key copy's entry and deletes the copy hands back are applied at once,
//! and nothing waits from the moment a cut-over or a checksum's snapshot prepares its lock
//! ([`Control::ApplyNow`]) until it is done: what is pending is applied as soon as the
//! coordinator says so, so the ghost table and the replica are current when the lock is taken.
//!
//! Memory: a batch is sent once it holds [`LoopSpec::batch_size`] events (fifty times that while
//! a backlog waits or the window is on) or [`BATCH_BYTES`] of row images, whichever comes first; held events are bounded by [`LoopSpec::held_limit`]: past
//! it the loop says so ([`LoopStatus::held_over_limit`], the cut-over then aborts) and reads no
//! more of the binlog until the coordinator resumes or the run ends. When the applier records
//! where each batch ends ([`Applier::marks_applied`], `--revert`), a batch takes whole
//! transactions (with the position the last one ends at), and a transaction larger than those
//! bounds goes in parts, each recording how many of its rows events are applied
//! ([`AppliedAt`]; a run started from such a mark reads those again without applying them,
//! [`LoopSpec::applied_at_start`]); only the rows of an XA transaction, handed out at its commit
//! ([`RowEvent::from_prepare`]), are held whole until its end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{event_bytes, Applier, ApplyError, KeyLog, BATCH_BYTES};
use crate::binlog::{
    BinlogPosition, RowEvent, Statement, StreamError, StreamItem, Streamer, Touch,
};
use crate::changelog::Entry;
use crate::checkpoint::AppliedAt;
use crate::copy::Tombstones;
use crate::mysql::names::NameCase;
use crate::progress::Progress;
use crate::throttle::GateState;

/// What the coordinator tells the apply loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Apply everything as it comes.
    Apply,
    /// As [`Control::Apply`], without waiting for more events ([`LoopSpec::linger`]): a lock
    /// that waits for a marker is about to be taken, and the ghost table and the replica should
    /// be as current as they can be by then.
    ApplyNow,
    /// Apply up to the cut-over marker with this token, then hold events of the original table
    /// until the swap is seen (or [`Control::Apply`] resumes and applies what was held).
    ExpectMarker(String),
}

/// What the apply loop reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopStatus {
    /// The last expected marker whose preceding events are all applied.
    pub marker_applied: Option<String>,
    /// When that marker was read from the binlog (before the events pending then were applied):
    /// the cut-over's log splits the marker's trip there.
    pub marker_read_at: Option<std::time::Instant>,
    /// Row events of the original table seen after the marker and not applied.
    pub held_after_marker: usize,
    /// The swap (a RENAME of the original table) came through the binlog after the marker.
    pub rename_seen: bool,
    /// The held events passed [`LoopSpec::held_limit`]: the loop reads no more of the binlog
    /// until the cut-over is aborted (or the run ends), and a swap would lose them.
    pub held_over_limit: bool,
    /// Every event of the original table before this binlog position is applied (set by the
    /// data path to where it starts streaming, then moved at each applied batch). Written
    /// without waking the status's watchers: it is read by checkpoints, which poll.
    pub applied_through: Option<BinlogPosition>,
    /// Where the swap's RENAME ends in the binlog (set with `rename_seen`): from there on, events
    /// of the original table's name are the new table's (what `--revert` replays).
    pub swapped_at: Option<BinlogPosition>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("the binlog stream ended unexpectedly")]
    StreamEnded,
    #[error("the original table was changed by another statement during the migration ({0}); the ghost table no longer matches it. Start the migration again")]
    ForeignDdl(String),
    #[error("the transaction after {position} ended {missing} rows events of the table short of what an earlier run recorded having applied of it (the checkpoint table's row 3): this is not the binlog that run read. Run with --host naming the server the earlier run read")]
    MarkPastTransaction {
        position: BinlogPosition,
        missing: u64,
    },
}

/// Names the loop needs.
#[derive(Debug, Clone)]
pub struct LoopSpec {
    pub schema: String,
    pub original: String,
    pub changelog: String,
    /// How the streamed server compares names (its `lower_case_table_names`).
    pub names: NameCase,
    /// `--dml-batch-size`, shared with the `dml-batch-size=` command (read at each batch).
    pub batch_size: Arc<AtomicUsize>,
    /// Bytes of row images held after a cut-over marker ([`event_bytes`]) beyond which the
    /// loop stops reading ([`LoopStatus::held_over_limit`]).
    pub held_limit: usize,
    /// The throttle gate: nothing is read or applied while it is closed (outside a cut-over).
    pub gate: watch::Receiver<GateState>,
    /// How long the first pending event waits for more while the stream is quiet
    /// (`--apply-batch-millis`); zero applies whenever the stream is momentarily empty.
    pub linger: Duration,
    /// Rows events of the original table at the start of the stream that an earlier run already
    /// applied ([`AppliedAt::events`]: a `--revert` that stopped inside a large transaction):
    /// read again, not applied.
    pub applied_at_start: u64,
    /// `--backlog-nice-ratio`: how many times a full batch's time the loop rests after it while
    /// it drains a backlog (`Drain`).
    pub backlog_nice_ratio: f64,
}

/// A lag from which the loop is draining a backlog, not keeping up ([`Drain`]).
const BACKLOG_LAG: Duration = Duration::from_secs(1);

/// While resting, the lag must fall at least this many seconds a second, measured over
/// [`DRAIN_CHECK`]; else the backlog is drained at full speed until it is gone.
const DRAIN_MIN_FALL: f64 = 0.5;

/// How often a resting drain's fall is measured.
const DRAIN_CHECK: Duration = Duration::from_secs(2);

/// How a backlog is drained: after each full batch (a backlog waits) while the lag is at least
/// [`BACKLOG_LAG`], the loop rests `ratio` times the batch's time, so that catching up after a
/// throttle does not take the application's latency with it (at full speed, a 10 s backlog
/// drained in 2 to 5 s with the load bench's writers at a p95 of 123 to 167 ms, 11 to 15 times
/// their p95 before). It rests only while the lag falls by at least [`DRAIN_MIN_FALL`] seconds a
/// second: an applier that could not catch up resting stops resting until the backlog is gone
/// (the loop applies whenever the stream is momentarily empty). Never while a lock waits on the
/// loop ([`unlocked`]), nor while events are held after a marker.
#[derive(Debug, Default)]
struct Drain {
    ratio: f64,
    /// When the current measure began, and the lag then.
    since: Option<(Instant, Duration)>,
    /// Resting did not drain fast enough: full speed until this backlog is gone.
    off: bool,
}

impl Drain {
    /// How long to rest after a full batch that took `took`, with the lag at `lag` at `now`.
    fn rest(&mut self, took: Duration, lag: Duration, now: Instant) -> Duration {
        if self.off || self.ratio <= 0.0 || lag < BACKLOG_LAG {
            return Duration::ZERO;
        }
        match self.since {
            Some((since, before)) if now.duration_since(since) >= DRAIN_CHECK => {
                let fell = before.as_secs_f64() - lag.as_secs_f64();
                if fell < DRAIN_MIN_FALL * now.duration_since(since).as_secs_f64() {
                    tracing::info!(
                        "the binlog's lag fell {fell:.1}s in {:.1}s while the applier rested between batches (--backlog-nice-ratio): applying the backlog at full speed",
                        now.duration_since(since).as_secs_f64()
                    );
                    self.off = true;
                    return Duration::ZERO;
                }
                self.since = Some((now, lag));
            }
            Some(_) => {}
            None => self.since = Some((now, lag)),
        }
        took.mul_f64(self.ratio)
    }

    /// The stream is momentarily empty and the lag under [`BACKLOG_LAG`]: the backlog is gone,
    /// and the next one starts afresh.
    fn caught_up(&mut self) {
        self.since = None;
        self.off = false;
    }
}

/// No lock waits on the apply loop: the coordinator says [`Control::Apply`], or
/// [`Control::ApplyNow`] while it waits for the lag to fall before a lock (a backlog's drain may
/// rest then: the lock is taken only once the lag is under a second, where the drain rests no
/// more).
fn unlocked(control: &watch::Receiver<Control>) -> bool {
    matches!(*control.borrow(), Control::Apply | Control::ApplyNow)
}

/// Sleeps `rest`, in slices, until it is over, the run is cancelled or a lock waits on the loop
/// ([`unlocked`] no more: what waits must be applied at once). Reads the control without
/// marking it seen, so the loop still sees the change.
async fn rest_between_batches(
    rest: Duration,
    control: &watch::Receiver<Control>,
    cancel: &CancellationToken,
) {
    let until = Instant::now() + rest;
    while Instant::now() < until && unlocked(control) {
        let slice = until
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(10));
        tokio::select! {
            _ = tokio::time::sleep(slice) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// What [`LoopSpec::held_limit`] is unless set otherwise.
pub const HELD_LIMIT: usize = 64 << 20;

impl LoopSpec {
    /// `schema`.`table` (as the binlog names it) is the table named `name` here.
    fn is(&self, schema: &str, table: &str, name: &str) -> bool {
        self.names.same(schema, &self.schema) && self.names.same(table, name)
    }
}

/// Consumes the binlog stream: applies row events of the original table in batches, reads the
/// changelog (heartbeats, markers), and watches for DDL on the original table. Ends when the
/// swap is seen after a marker (Ok), on cancellation (Ok), or on the first error.
#[allow(clippy::too_many_arguments)]
pub async fn run_loop(
    mut streamer: Streamer,
    applier: Applier,
    spec: LoopSpec,
    progress: Arc<Progress>,
    mut control: watch::Receiver<Control>,
    status: watch::Sender<LoopStatus>,
    keylog: Arc<KeyLog>,
    cancel: CancellationToken,
) -> Result<(), LoopError> {
    let mut gate = spec.gate.clone();
    let mut gate_open = true;
    let tombstones = applier.tombstones().cloned();
    let mut sink = Sink {
        applier,
        progress: progress.clone(),
        keylog,
    };
    // The stream starts where a transaction begins, some of whose events may be applied.
    let mut pending = Pending {
        open_from: status.borrow().applied_through.clone(),
        open_applied: spec.applied_at_start,
        ..Pending::default()
    };
    let mut skip = Skip {
        left: spec.applied_at_start,
        of: spec.applied_at_start,
    };
    // Events of the original table seen after the cut-over marker and not applied.
    let mut held = Pending::default();
    // The marker token events are being held for, after it was applied.
    let mut holding: Option<String> = None;
    let mut control_open = true;
    // The end of the last transaction read: once what is pending is applied, so is everything
    // before it.
    let mut last_commit: Option<BinlogPosition> = None;
    // A heartbeat read while events before it were still to be applied, with its lag then and
    // when it was read: it counts as come back once they are applied (the lag is the trip to
    // the ghost table, not to the reader).
    let mut heard: Option<(Duration, Instant)> = None;
    let mut drain = Drain {
        ratio: spec.backlog_nice_ratio,
        ..Drain::default()
    };
    let result = loop {
        progress
            .backlog
            .store(streamer.backlog(), Ordering::Relaxed);
        // Holding no more: the binlog waits (in the server) until the cut-over is resumed.
        let reading = holding.is_none() || !held.over(spec.held_limit);
        // Throttled: nothing is read or applied, except during a cut-over (never throttled).
        let applying = *control.borrow() == Control::Apply;
        let paused = gate_open
            && holding.is_none()
            && applying
            && matches!(*gate.borrow_and_update(), GateState::Closed(_));
        // During a cut-over or a checksum's snapshot the original table is locked: no waiting.
        let linger = if applying {
            spec.linger
        } else {
            Duration::ZERO
        };
        let due = pending
            .since
            .filter(|_| sink.ready(&pending, false) > 0)
            .map(|since| since + linger);
        let item = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Ok(()),
            changed = gate.changed(), if paused => {
                gate_open = changed.is_ok();
                continue;
            }
            changed = control.changed(), if control_open => {
                if changed.is_err() {
                    control_open = false; // the coordinator is gone; keep applying
                    continue;
                }
                let now = control.borrow_and_update().clone();
                if let Some(token) = holding.take_if(|t| now != Control::ExpectMarker(t.clone())) {
                    // A checksum's snapshot taken, or an aborted cut-over (resumed, or retried
                    // with a new marker): apply what was held after marker `token`, then go on
                    // as before.
                    tracing::info!("released at marker {token}: applying the {} events held after it", held.events.len());
                    pending.append(std::mem::take(&mut held));
                    sink.flush(&mut pending).await?;
                    applied_through(&pending, &holding, &mut last_commit, &status, &mut heard, &progress);
                    status.send_modify(|s| { s.held_after_marker = 0; s.rename_seen = false; s.held_over_limit = false; });
                } else if holding.is_none() && now != Control::Apply {
                    // The table is locked and the marker on its way: apply what waits meanwhile.
                    sink.flush(&mut pending).await?;
                    applied_through(&pending, &holding, &mut last_commit, &status, &mut heard, &progress);
                }
                continue;
            }
            // A chunk copied without shared locks committed while rows were deleted: delete
            // them again now, with what is pending, rather than at the next event.
            _ = woken(tombstones.as_deref()), if holding.is_none() && !paused => {
                sink.flush_with_redeletes(&mut pending).await?;
                applied_through(&pending, &holding, &mut last_commit, &status, &mut heard, &progress);
                continue;
            }
            // The first pending event has waited long enough for more.
            _ = sleep_until(due), if due.is_some() && !paused => {
                sink.flush(&mut pending).await?;
                applied_through(&pending, &holding, &mut last_commit, &status, &mut heard, &progress);
                continue;
            }
            item = streamer.recv(), if reading && !paused => item,
        };
        let Some(item) = item else {
            break Err(match streamer.finish().await {
                Err(e) => LoopError::Stream(e),
                Ok(()) => LoopError::StreamEnded,
            });
        };
        match item {
            StreamItem::Rows(event) if spec.is(&event.schema, &event.table, &spec.original) => {
                if skip.event() {
                    // Applied by the run that recorded where this one starts.
                } else if holding.is_some() {
                    held.push(event);
                    let over = held.over(spec.held_limit);
                    if over {
                        tracing::warn!(
                            "{} events ({} bytes) of the original table came after the cut-over marker; holding no more: this cut-over cannot swap without losing them",
                            held.events.len(),
                            held.bytes
                        );
                    }
                    status.send_modify(|s| {
                        s.held_after_marker = held.events.len();
                        s.held_over_limit = over;
                    });
                } else {
                    pending.push(event);
                }
            }
            StreamItem::Rows(event) if spec.is(&event.schema, &event.table, &spec.changelog) => {
                for (_, after) in &event.rows {
                    match after.as_deref().and_then(Entry::read) {
                        // Counted come back at the end of this step if nothing waits before it.
                        Some(Entry::Heartbeat(lag)) => heard = Some((lag, Instant::now())),
                        Some(Entry::NullKeyRowsCopied) => {
                            // Changes before it are in the copy; those after it are not.
                            sink.flush(&mut pending).await?;
                            sink.applier.null_key_rows_copied();
                        }
                        Some(Entry::Marker(token))
                            if holding.is_none()
                                && *control.borrow() == Control::ExpectMarker(token.clone()) =>
                        {
                            let read_at = std::time::Instant::now();
                            sink.flush(&mut pending).await?;
                            holding = Some(token.clone());
                            held = Pending::default();
                            status.send_modify(|s| {
                                s.marker_applied = Some(token.clone());
                                s.marker_read_at = Some(read_at);
                                s.held_after_marker = 0;
                                s.rename_seen = false;
                                s.held_over_limit = false;
                            });
                        }
                        _ => {}
                    }
                }
            }
            StreamItem::Rows(_) => {}
            StreamItem::Statement {
                schema,
                query,
                sql_mode,
                position,
                ..
            } => {
                let statement = Statement::read(&query, sql_mode);
                match statement.touch(&schema, &spec.schema, &spec.original, spec.names) {
                    None | Some(Touch::Reads) => {}
                    // wraith's swap: the original renamed away after the marker.
                    Some(Touch::RenamesAway) if statement.tagged && holding.is_some() => {
                        status.send_modify(|s| {
                            s.rename_seen = true;
                            s.swapped_at = Some(position);
                        });
                        break Ok(());
                    }
                    Some(_) if statement.tagged => {}
                    Some(_) => {
                        break Err(LoopError::ForeignDdl(query.chars().take(200).collect()));
                    }
                }
            }
            StreamItem::Commit(boundary) => {
                let before_marked = match skip.commit() {
                    Ok(before) => before,
                    Err(missing) => {
                        break Err(LoopError::MarkPastTransaction {
                            position: pending.open_from.clone().unwrap_or(boundary.position),
                            missing,
                        })
                    }
                };
                progress.set_position(boundary.position.to_string());
                match holding {
                    Some(_) => held.commit(&boundary.position),
                    None => pending.commit(&boundary.position),
                }
                if before_marked {
                    // The transaction the mark is inside begins here, its first events applied.
                    pending.open_applied = skip.of;
                }
                last_commit = Some(boundary.position);
            }
        }
        // Small batches while the stream is quiet (low latency), larger ones under load or when
        // gathering events for a while.
        let batch_size = spec.batch_size.load(Ordering::Relaxed).max(1);
        let cap = if streamer.backlog() > batch_size || !linger.is_zero() {
            batch_size * 50
        } else {
            batch_size
        };
        let quiet =
            streamer.backlog() == 0 && pending.since.is_some_and(|since| since.elapsed() >= linger);
        let full = pending.events.len() >= cap || pending.bytes >= BATCH_BYTES;
        let started = Instant::now();
        if full || quiet {
            sink.flush_part(&mut pending, full).await?;
        }
        applied_through(
            &pending,
            &holding,
            &mut last_commit,
            &status,
            &mut heard,
            &progress,
        );
        if quiet && progress.lag() < BACKLOG_LAG {
            drain.caught_up();
        } else if full && holding.is_none() && unlocked(&control) {
            let rest = drain.rest(started.elapsed(), progress.lag(), Instant::now());
            if !rest.is_zero() {
                rest_between_batches(rest, &control, &cancel).await;
            }
        }
    };
    if result.is_ok() && holding.is_none() {
        sink.flush(&mut pending).await?;
    }
    result
}

/// Once nothing is pending, everything up to the last transaction read is applied, and so is
/// the last heartbeat read (`heard`), whose lag then counts until now (while events are held
/// after a marker, at once). Held events are not applied: the position stays where the holding
/// began.
fn applied_through(
    pending: &Pending,
    holding: &Option<String>,
    last_commit: &mut Option<BinlogPosition>,
    status: &watch::Sender<LoopStatus>,
    heard: &mut Option<(Duration, Instant)>,
    progress: &Progress,
) {
    if pending.events.is_empty() || holding.is_some() {
        if let Some((lag, read)) = heard.take() {
            progress.heartbeat_seen(lag + read.elapsed());
        }
    }
    if pending.events.is_empty() && holding.is_none() {
        if let Some(at) = last_commit.take() {
            status.send_if_modified(|s| {
                s.applied_through = Some(at);
                false
            });
        }
    }
}

/// Completes at `due`; never without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Completes when the copy has keys to delete again; never without a copy that reads without
/// shared locks.
async fn woken(tombstones: Option<&Tombstones>) {
    match tombstones {
        Some(t) => t.woken().await,
        None => std::future::pending().await,
    }
}

/// The events of the original table read since the last batch was applied (or, held after a
/// cut-over marker, not applied).
#[derive(Default)]
struct Pending {
    events: Vec<RowEvent>,
    /// Their size ([`event_bytes`]).
    bytes: usize,
    /// When the first of them was read.
    since: Option<Instant>,
    /// When the last of them was read: the batch's changes were in the primary's binlog by then,
    /// which a heartbeat sent afterwards proves visible ([`crate::changelog::Fence`]).
    read_last: Option<Instant>,
    /// How many of `events` belong to transactions whose end was read, and where the last
    /// transaction read ends.
    whole: usize,
    whole_through: Option<BinlogPosition>,
    /// Where the transaction whose end is not read yet begins: the end of the last transaction
    /// read (or where the stream started).
    open_from: Option<BinlogPosition>,
    /// How many of that transaction's events earlier batches applied.
    open_applied: u64,
    /// That transaction can only be applied whole: its rows were handed out at an XA commit
    /// ([`RowEvent::from_prepare`]), and reading again from `open_from` would not bring them back.
    open_whole_only: bool,
}

impl Pending {
    fn push(&mut self, event: RowEvent) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.read_last = Some(now);
        self.open_whole_only |= event.from_prepare;
        self.bytes += event_bytes(&event);
        self.events.push(event);
    }

    /// A transaction ends at `at`: every event so far is of whole transactions.
    fn commit(&mut self, at: &BinlogPosition) {
        self.whole = self.events.len();
        self.whole_through = Some(at.clone());
        self.open_from = Some(at.clone());
        self.open_applied = 0;
        self.open_whole_only = false;
    }

    /// `later`'s events, read after these, follow them.
    fn append(&mut self, later: Pending) {
        if let Some(at) = later.whole_through {
            self.whole = self.events.len() + later.whole;
            self.whole_through = Some(at);
            self.open_from = later.open_from;
            self.open_applied = later.open_applied;
            self.open_whole_only = later.open_whole_only;
        } else {
            self.open_whole_only |= later.open_whole_only;
        }
        self.since = self.since.or(later.since);
        self.read_last = later.read_last.or(self.read_last);
        self.bytes += later.bytes;
        self.events.extend(later.events);
    }

    /// The first `n` events were applied.
    fn applied(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.open_applied += n.saturating_sub(self.whole) as u64;
        self.events.drain(..n);
        self.bytes = self.events.iter().map(event_bytes).sum();
        self.since = (!self.events.is_empty()).then(Instant::now);
        self.whole = self.whole.saturating_sub(n);
        if self.whole == 0 {
            self.whole_through = None;
        }
    }

    /// Where a batch of the first `n` events ends: at the end of the last transaction in it, or,
    /// when it takes only events of the open transaction, that many into it. None when no
    /// position says it (a batch of whole and open events, which a marked applier never sends).
    fn through(&self, n: usize) -> Option<AppliedAt> {
        if n == self.whole {
            self.whole_through.clone().map(AppliedAt::at)
        } else if self.whole == 0 {
            self.open_from.clone().map(|position| AppliedAt {
                position,
                events: self.open_applied + n as u64,
            })
        } else {
            None
        }
    }

    /// Whether the open transaction may be applied in parts.
    fn divisible(&self) -> bool {
        self.open_from.is_some() && !self.open_whole_only
    }

    /// Past `limit` bytes: hold no more.
    fn over(&self, limit: usize) -> bool {
        self.bytes > limit
    }
}

/// The rows events of the original table that a run started inside a transaction
/// ([`LoopSpec::applied_at_start`]) reads again without applying them: the first `of` of the
/// first transaction that has any.
struct Skip {
    left: u64,
    of: u64,
}

impl Skip {
    /// An event of the original table is read: whether it is one to skip.
    fn event(&mut self) -> bool {
        let skip = self.left > 0;
        self.left = self.left.saturating_sub(1);
        skip
    }

    /// A transaction ends: `Ok(true)` if it ended before the one to skip in began (it had none of
    /// the table's events: another table's, or the changelog's); `Err(missing)` if that one ended
    /// before all of them were read.
    fn commit(&self) -> Result<bool, u64> {
        match (self.left, self.of) {
            (0, _) => Ok(false),
            (left, of) if left == of => Ok(true),
            (left, _) => Err(left),
        }
    }
}

/// Where batches go: the applier, then the key log (while it records) and the progress counters.
struct Sink {
    applier: Applier,
    progress: Arc<Progress>,
    keylog: Arc<KeyLog>,
}

impl Sink {
    async fn apply(
        &mut self,
        events: &[RowEvent],
        through: Option<&AppliedAt>,
        read_by: Instant,
    ) -> Result<(), ApplyError> {
        if events.is_empty() {
            return Ok(());
        }
        self.applier
            .apply(events, through, read_by.into_std())
            .await?;
        if self.keylog.recording() {
            self.keylog.record(self.applier.keys_of(events));
        }
        let rows: u64 = events.iter().map(|e| e.rows.len() as u64).sum();
        self.progress
            .events_applied
            .fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Applies what is pending with the keys to delete again after a chunk of the copy, even if
    /// nothing is pending.
    async fn flush_with_redeletes(&mut self, pending: &mut Pending) -> Result<(), ApplyError> {
        if pending.events.is_empty() {
            return self
                .applier
                .apply(&[], None, std::time::Instant::now())
                .await;
        }
        self.flush(pending).await
    }

    /// How many pending events the next batch takes: all of them, or, when the applier marks
    /// where each batch ends ([`Applier::marks_applied`]), those of whole transactions, or, if
    /// there are none and `split` (the pending events fill a batch), those of the open
    /// transaction when it may be applied in parts.
    fn ready(&self, pending: &Pending, split: bool) -> usize {
        if !self.applier.marks_applied() {
            pending.events.len()
        } else if pending.whole > 0 || !split || !pending.divisible() {
            pending.whole
        } else {
            pending.events.len()
        }
    }

    /// Applies what is [ready](Sink::ready) (not splitting a transaction), as one batch.
    async fn flush(&mut self, pending: &mut Pending) -> Result<(), ApplyError> {
        self.flush_part(pending, false).await
    }

    /// Applies what is [ready](Sink::ready), as one batch, and takes it out of `pending`.
    async fn flush_part(&mut self, pending: &mut Pending, split: bool) -> Result<(), ApplyError> {
        let n = self.ready(pending, split);
        if n == 0 {
            return Ok(());
        }
        crate::failpoint::panic_at("apply:batch");
        crate::failpoint::sleep_at("apply:batch", n).await;
        let through = pending.through(n);
        if self.applier.marks_applied() && n > pending.whole && pending.open_applied == 0 {
            tracing::info!(
                "a transaction of more than {n} rows events ({} bytes) on the table: applying it in parts, each recording how far into it it got",
                pending.bytes
            );
        }
        // Conservative: the last event read, whether or not this batch takes it.
        let read_by = pending.read_last.unwrap_or_else(Instant::now);
        self.apply(&pending.events[..n], through.as_ref(), read_by)
            .await?;
        pending.applied(n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::{BinlogPosition, Cell, RowKind};

    fn insert(bytes: usize) -> RowEvent {
        RowEvent {
            schema: "d".into(),
            table: "t".into(),
            kind: RowKind::Insert,
            rows: vec![(
                None,
                Some(vec![
                    Cell::Int(1),
                    Cell::Bytes {
                        bytes: vec![0; bytes],
                        charset: None,
                    },
                ]),
            )],
            position: BinlogPosition::new("bin.000001", 4),
            gtid: None,
            timestamp: 0,
            from_prepare: false,
        }
    }

    #[test]
    fn a_backlog_is_drained_resting_between_full_batches_while_the_lag_falls_fast_enough() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let mut drain = Drain {
            ratio: 1.0,
            ..Drain::default()
        };
        // Keeping up (under a second behind): no rest.
        assert_eq!(drain.rest(ms(40), ms(900), start), Duration::ZERO);
        // A backlog: a rest as long as the batch, while the lag falls 1 s a second.
        assert_eq!(drain.rest(ms(40), ms(10_000), start), ms(40));
        assert_eq!(drain.rest(ms(40), ms(9_000), start + ms(1_000)), ms(40));
        assert_eq!(drain.rest(ms(40), ms(8_000), start + ms(2_000)), ms(40));
        // Over the next two seconds it falls 0.6 s only: full speed until the backlog is gone.
        assert_eq!(
            drain.rest(ms(40), ms(7_400), start + ms(4_000)),
            Duration::ZERO
        );
        assert_eq!(
            drain.rest(ms(40), ms(5_000), start + ms(5_000)),
            Duration::ZERO
        );
        // The stream caught up: the next backlog is drained resting again.
        drain.caught_up();
        assert_eq!(drain.rest(ms(40), ms(3_000), start + ms(9_000)), ms(40));
        // A ratio of 0 never rests.
        let mut full_speed = Drain::default();
        assert_eq!(full_speed.rest(ms(40), ms(10_000), start), Duration::ZERO);
    }

    #[test]
    fn held_events_are_measured_in_bytes_and_bounded() {
        let mut held = Pending::default();
        held.push(insert(1000));
        held.push(insert(1000));
        assert!(held.bytes >= 2000);
        assert!(!held.over(10_000));
        held.push(insert(10_000));
        assert!(held.over(10_000));
        held.applied(3);
        assert!(!held.over(0) && held.events.is_empty() && held.since.is_none());
    }

    #[test]
    fn pending_events_know_which_of_them_end_a_transaction_and_where() {
        let (p1, p2) = (
            BinlogPosition::new("bin.000001", 100),
            BinlogPosition::new("bin.000001", 200),
        );
        let mut pending = Pending::default();
        pending.push(insert(10));
        assert_eq!((pending.whole, pending.whole_through.clone()), (0, None));
        pending.push(insert(10));
        pending.commit(&p1);
        pending.push(insert(10));
        assert_eq!(
            (pending.whole, pending.whole_through.clone()),
            (2, Some(p1))
        );
        // A batch of the two whole ones leaves the third, of a transaction still open.
        pending.applied(2);
        assert_eq!(pending.events.len(), 1);
        assert_eq!((pending.whole, pending.whole_through.clone()), (0, None));
        assert!(pending.since.is_some() && pending.bytes > 0);
        pending.commit(&p2);
        assert_eq!(
            (pending.whole, pending.whole_through.clone()),
            (1, Some(p2))
        );
    }

    #[test]
    fn a_transaction_too_large_for_a_batch_goes_in_parts_that_say_how_far_into_it_they_got() {
        let (p0, p1) = (
            BinlogPosition::new("bin.000001", 100),
            BinlogPosition::new("bin.000001", 900),
        );
        let into = |position: &BinlogPosition, events| AppliedAt {
            position: position.clone(),
            events,
        };
        // The stream starts where a transaction begins.
        let mut pending = Pending {
            open_from: Some(p0.clone()),
            ..Pending::default()
        };
        for _ in 0..3 {
            pending.push(insert(10));
        }
        assert!(pending.divisible());
        assert_eq!(pending.through(2), Some(into(&p0, 2)));
        pending.applied(2);
        pending.push(insert(10));
        assert_eq!(pending.through(2), Some(into(&p0, 4)));
        pending.applied(2);
        // Its end: the rest of it, and the batch ends where the transaction does.
        pending.push(insert(10));
        pending.commit(&p1);
        assert_eq!(pending.through(1), Some(AppliedAt::at(p1.clone())));
        pending.applied(1);
        // The next one counts from there.
        pending.push(insert(10));
        assert_eq!(pending.through(1), Some(into(&p1, 1)));
        // Whole transactions and part of the open one cannot be said by one position.
        pending.commit(&BinlogPosition::new("bin.000001", 1000));
        pending.push(insert(10));
        assert_eq!(pending.through(2), None);
    }

    #[test]
    fn a_run_started_inside_a_transaction_counts_on_from_the_events_already_applied() {
        let p0 = BinlogPosition::new("bin.000001", 100);
        let mut pending = Pending {
            open_from: Some(p0.clone()),
            open_applied: 5,
            ..Pending::default()
        };
        pending.push(insert(10));
        assert_eq!(
            pending.through(1),
            Some(AppliedAt {
                position: p0,
                events: 6
            })
        );
    }

    #[test]
    fn a_run_started_inside_a_transaction_skips_its_applied_events_and_no_others() {
        let mut skip = Skip { left: 2, of: 2 };
        // Transactions of other tables before it: nothing skipped yet.
        assert_eq!(skip.commit(), Ok(true));
        assert!(skip.event() && skip.event() && !skip.event());
        assert_eq!(skip.commit(), Ok(false));
        assert!(!skip.event());
        // The transaction ended short of the events the mark says were applied.
        let mut short = Skip { left: 3, of: 3 };
        assert!(short.event());
        assert_eq!(short.commit(), Err(2));
        // Started at a transaction's end: nothing to skip.
        let mut none = Skip { left: 0, of: 0 };
        assert_eq!(none.commit(), Ok(false));
        assert!(!none.event());
    }

    #[test]
    fn rows_handed_out_at_an_xa_commit_are_applied_whole() {
        let mut pending = Pending {
            open_from: Some(BinlogPosition::new("bin.000001", 100)),
            ..Pending::default()
        };
        pending.push(insert(10));
        let mut prepared = insert(10);
        prepared.from_prepare = true;
        pending.push(prepared);
        assert!(!pending.divisible());
        pending.commit(&BinlogPosition::new("bin.000001", 900));
        pending.applied(2);
        pending.push(insert(10));
        assert!(pending.divisible());
        // Held after a marker, then appended: its open transaction stays whole too.
        let mut held = Pending::default();
        let mut prepared = insert(10);
        prepared.from_prepare = true;
        held.push(prepared);
        pending.append(held);
        assert!(!pending.divisible());
    }

    #[test]
    fn events_held_after_a_marker_follow_those_pending_with_their_transactions_ends() {
        let (p1, p2) = (
            BinlogPosition::new("bin.000001", 100),
            BinlogPosition::new("bin.000002", 4),
        );
        let mut pending = Pending::default();
        pending.push(insert(10));
        let mut held = Pending::default();
        held.push(insert(10));
        held.commit(&p1);
        held.push(insert(10));
        held.push(insert(10));
        held.commit(&p2);
        held.push(insert(10));
        pending.append(held);
        assert_eq!(pending.events.len(), 5);
        assert_eq!(
            (pending.whole, pending.whole_through.clone()),
            (4, Some(p2))
        );
        // Nothing whole held: what was whole before stays.
        let mut held = Pending::default();
        held.push(insert(10));
        pending.append(held);
        assert_eq!((pending.events.len(), pending.whole), (6, 4));
    }
}
