//! One migration, as a state machine: Validate → Prepare → Copy → CatchUp → Checksum → (Postpone,
//! then Checksum again for what changed) → CutOver → Cleanup.
//!
//! In: a validated [`Config`] and the one [`CancellationToken`] every task of the run listens to.
//! Out: a [`Report`] on success, or a [`MigrationError`] that says what happened and what was left
//! in the database. Invariants owned here: a failed preflight creates nothing; a run that stops
//! on error, on cancellation or as a noop drops the helper tables it created and leaves the
//! original table untouched; every state change is logged and written to the changelog table;
//! the tables are swapped only after the checksum found them equal (unless `--skip-checksum`,
//! which the log and the status line name).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::Control;
use crate::checkpoint::{self, AppliedAt, AppliedMark, Checkpoint, CheckpointError};
use crate::checksum::{self, ChecksumError, ChecksumSpec, Snapshot, Views};
use crate::config::{Config, CutOverMode};
use crate::control::{self, Controls, Knobs};
use crate::copy::{self, deferred, CopySpec, Watermark};
use crate::cutover::{self, CutOverError, CutOverSpec, Outcome};
use crate::datapath::{self, DataPath, PathError, Servers};
use crate::hooks::{Hook, HookError, Hooks};
use crate::inspect::{self, checks, plan, Facts, Plan, TableSchema};
use crate::metrics::Metrics;
use crate::mysql::names::NameCase;
use crate::mysql::{self, sql, topology, ConnectError, Credentials, Endpoint, Flavor};
use crate::progress::{ChecksumStatus, Progress};
use crate::table_lock::{self, LockError, TableLock};
use crate::throttle::GateState;
use crate::triggers;
use crate::verify;

/// The states of a migration, as written to the changelog's `state` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Validate,
    Prepare,
    Copy,
    /// The rows are copied; the applier catches up with the binlog.
    CatchUp,
    /// The ghost table is compared with the original (and again, for what changed, after a
    /// postponed cut-over).
    Checksum,
    Postpone,
    CutOver,
    Cleanup,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub inspected: Endpoint,
    pub primary: Endpoint,
    pub flavor: Flavor,
    /// How the columns were mapped (`None` when the ALTER ran with `ALGORITHM=INSTANT`).
    pub plan: Option<Plan>,
    /// `--attempt-instant-ddl` changed the table in place: nothing was copied or swapped.
    pub instant_ddl: bool,
    pub row_estimate: u64,
    /// The tables were swapped (false for a noop run).
    pub swapped: bool,
    pub rows_copied: u64,
    pub events_applied: u64,
    /// How long writers were blocked at cut-over (when swapped).
    pub locked_for: Option<Duration>,
    pub copy_time: Duration,
    /// How long the checksum before the swap took, lock and snapshot included (`None`: skipped).
    pub checksum_time: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("preflight failed:\n{}", .0.iter().map(|f| format!("  - [{}] {}", f.check, f.message)).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<checks::Failure>),
    #[error("the server rejected the ALTER on the ghost table: {0}")]
    AlterRejected(String),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("{context}: {source}")]
    Sql {
        context: String,
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Copy(#[from] copy::CopyError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Checksum(ChecksumError),
    #[error("cut-over: {0}")]
    Unresolved(String),
    #[error(transparent)]
    CutOver(#[from] CutOverError),
    #[error("cut-over failed {attempts} times (--default-retries); last error: {last}")]
    CutOverGaveUp { attempts: i64, last: CutOverError },
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Lock(#[from] Box<LockError>),
    #[error(transparent)]
    Control(#[from] control::ServerError),
    #[error("{0}")]
    Other(String),
    #[error("cancelled")]
    Cancelled,
    #[error("panic ({0}): the migration was stopped without cut-over")]
    Panic(String),
}

impl MigrationError {
    /// A stop that the apply loop's end explains: a cancellation, or a step that found the
    /// loop gone.
    fn is_loop_gone(&self) -> bool {
        matches!(
            self,
            MigrationError::Cancelled
                | MigrationError::Checksum(ChecksumError::LoopGone)
                | MigrationError::CutOver(CutOverError::LoopGone)
                | MigrationError::CutOverGaveUp {
                    last: CutOverError::LoopGone,
                    ..
                }
        )
    }
}

/// Rounds of comparing again, without a lock, the rows that differed in their chunk's view
/// before the ones still differing are compared in a snapshot (which locks the table briefly).
const SUSPECT_ROUNDS: usize = 3;

/// How long a round waits for the applier to apply what was committed before it.
const SUSPECT_WAIT: Duration = Duration::from_secs(10);

/// Marks the checksum as failed on the status line when `e` says rows differ.
fn differs(progress: &Progress, e: &MigrationError) {
    if matches!(e, MigrationError::Checksum(ChecksumError::Differs { .. })) {
        progress.set_checksum(ChecksumStatus::Differs);
    }
}

impl From<ChecksumError> for MigrationError {
    fn from(e: ChecksumError) -> Self {
        match e {
            ChecksumError::Cancelled => MigrationError::Cancelled,
            other => MigrationError::Checksum(other),
        }
    }
}

trait SqlContext<T> {
    fn context(self, what: impl Into<String>) -> Result<T, MigrationError>;
}

impl<T> SqlContext<T> for Result<T, mysql_async::Error> {
    fn context(self, what: impl Into<String>) -> Result<T, MigrationError> {
        self.map_err(|source| MigrationError::Sql {
            context: what.into(),
            source,
        })
    }
}

/// The failure and what the database holds afterwards; the last line of output.
#[derive(Debug)]
pub struct Failed {
    pub error: MigrationError,
    /// Helper tables still present after cleanup (kept on purpose, or not droppable).
    pub left_behind: Vec<String>,
    /// The tables had been swapped when the failure happened.
    pub swapped: bool,
    /// The tables are in a state wraith could not make whole (the error says which exist).
    pub unresolved: bool,
    /// The helper tables in `left_behind` were kept on purpose: a checkpoint was written, and
    /// `--resume` goes on from it.
    pub resumable: bool,
}

impl Failed {
    /// What the database holds after the failure, for the person at the terminal.
    pub fn aftermath(&self) -> String {
        if self.unresolved {
            return format!(
                "wraith could not make the tables whole, so it dropped nothing: the original table must be found and put back by hand (see the error below for which tables exist). Tables kept: {}.",
                if self.left_behind.is_empty() { "none".to_string() } else { self.left_behind.join(", ") }
            );
        }
        if self.swapped {
            return format!(
                "The tables WERE swapped: the table now holds the migrated data and the original is kept as the old table. Helper tables left: {}.",
                if self.left_behind.is_empty() { "none".to_string() } else { self.left_behind.join(", ") }
            );
        }
        if self.resumable {
            return format!(
                "The original table is untouched. Kept for --resume: {}. Run the same command with --resume to go on from the last checkpoint, or drop them to start over.",
                self.left_behind.join(", ")
            );
        }
        if self.left_behind.is_empty() {
            "The original table is untouched and no helper tables were left behind.".to_string()
        } else {
            format!(
                "The original table is untouched. Left behind: {} (could not be dropped; drop them by hand).",
                self.left_behind.join(", ")
            )
        }
    }
}

/// A run in progress: the connections it holds and what it has created so far.
struct Run<'a> {
    cfg: &'a Config,
    cancel: CancellationToken,
    inspected: Endpoint,
    primary: Endpoint,
    /// Connection to the primary (where helper tables live).
    pconn: Option<Conn>,
    /// Helper tables this run created (dropped on failure or noop).
    created: Vec<String>,
    /// The data path's background tasks, once started.
    path: Option<DataPath>,
    /// Set once the tables are swapped: from then on nothing may be dropped automatically.
    swapped: bool,
    /// The operator's controls (knobs, forced throttle, postponement, panic) and the progress.
    controls: Arc<Controls>,
    /// The control socket and TCP port, once the table lock is held.
    server: Option<control::Server>,
    /// The cut-over left the tables in a state wraith could not make whole: drop nothing.
    unresolved: bool,
    hooks: Hooks,
    /// One migration per table: held from before anything is created until the run ends.
    table_lock: Option<TableLock>,
    /// `--include-triggers`: the original's triggers, as the cut-over creates them on the ghost.
    triggers: Vec<triggers::GhostTrigger>,
    /// `--resume`: the checkpoint this run goes on from.
    resumed: Option<Checkpoint>,
    /// The ghost table's definition as the ALTER built it, when plain secondary indexes were
    /// dropped for the copy (`--defer-secondary-indexes`, or the resumed run's checkpoint): they
    /// are built after the copy, and the swap waits for this definition.
    deferred: Option<String>,
    /// Where the binlog is read from: `--resume`'s or `--revert`'s checkpoint (else the
    /// inspected server's current position).
    stream_from: Option<datapath::Start>,
    /// The inspected server's `@@server_id` (from the preflight's facts): checkpoints name it.
    server_id: u64,
    /// How the primary compares table names (from the preflight's facts): the cut-over's proof
    /// orders names as its metadata locks do.
    primary_names: NameCase,
    /// How far the copy has got, for checkpoints.
    watermark: Arc<Watermark>,
    /// `--chunk-max-bytes` in rows of the table's average length: no copy chunk holds more
    /// (the checksum's, ten times that).
    chunk_rows_cap: Option<u64>,
    /// A checkpoint has been written: on failure the helper tables are kept for `--resume`.
    checkpointed: Arc<AtomicBool>,
    /// Cleanup kept the helper tables for `--resume`.
    kept_for_resume: bool,
}

/// Runs the migration described by `cfg`.
pub async fn run(cfg: &Config, cancel: CancellationToken) -> Result<Report, Failed> {
    let controls = match Knobs::from_config(cfg) {
        Ok(knobs) => Arc::new(Controls::new(
            cfg,
            knobs,
            Arc::new(Progress::new(1000)),
            cancel.clone(),
        )),
        Err(e) => {
            return Err(Failed {
                error: MigrationError::Other(e.to_string()),
                left_behind: Vec::new(),
                swapped: false,
                unresolved: false,
                resumable: false,
            })
        }
    };
    let watching = cancel.child_token();
    let _stop_watching = watching.clone().drop_guard();
    tokio::spawn(control::watch_panic_file(controls.clone(), watching));
    let mut run = Run {
        cfg,
        cancel: cancel.clone(),
        inspected: Endpoint {
            host: cfg.flags.host.clone(),
            port: cfg.flags.port,
        },
        primary: Endpoint {
            host: cfg.flags.host.clone(),
            port: cfg.flags.port,
        },
        pconn: None,
        created: Vec::new(),
        path: None,
        swapped: false,
        controls: controls.clone(),
        server: None,
        unresolved: false,
        hooks: Hooks::new(cfg),
        table_lock: None,
        triggers: Vec::new(),
        resumed: None,
        deferred: None,
        stream_from: None,
        server_id: 0,
        primary_names: NameCase::Exact,
        watermark: Arc::new(Watermark::default()),
        chunk_rows_cap: None,
        checkpointed: Arc::new(AtomicBool::new(false)),
        kept_for_resume: false,
    };
    let started = Instant::now();
    // A panic anywhere in the steps still stops the tasks and cleans up.
    let outcome = match AssertUnwindSafe(run.steps()).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => Err(MigrationError::Other(format!(
            "wraith panicked ({}); this is a bug in wraith, please report it",
            datapath::panic_text(panic)
        ))),
    };
    let outcome = match (outcome, run.stop_path().await) {
        // The applier's failure is the cause of a cancellation it triggered, and of a step
        // that stopped because the applier was gone.
        (Err(e), Some(failure)) if e.is_loop_gone() => Err(failure),
        (outcome, _) => outcome,
    };
    // A panic (command or flag file) is the cause of the cancellation it made.
    let outcome = match (outcome, controls.panicked()) {
        (Err(e), Some(reason)) if e.is_loop_gone() => Err(MigrationError::Panic(reason)),
        (outcome, _) => outcome,
    };
    // Cleanup: a noop run and a failed run drop what they created.
    let left_behind = run.cleanup(outcome.is_err()).await;
    let outcome = match outcome {
        Ok(report) => run
            .hooks
            .run_with(
                Hook::Success,
                &[("GH_OST_INSTANT_DDL", report.instant_ddl.to_string())],
            )
            .await
            .map(|()| report)
            .map_err(MigrationError::from),
        failed => failed,
    };
    if outcome.is_err() {
        run.hooks.on_failure().await;
    }
    if let Some(lock) = run.table_lock.take() {
        lock.release().await;
    }
    match outcome {
        Ok(report) => {
            info!(
                elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
                swapped = report.swapped,
                "migration of {}.{} ended: {}",
                cfg.database,
                cfg.table,
                if report.swapped {
                    "swapped"
                } else {
                    "noop complete, nothing swapped"
                }
            );
            Ok(report)
        }
        Err(error) => {
            warn!(
                "migration of {}.{} ended: failed: {error}",
                cfg.database, cfg.table
            );
            Err(Failed {
                error,
                left_behind,
                swapped: run.swapped,
                unresolved: run.unresolved,
                resumable: run.kept_for_resume,
            })
        }
    }
}

impl Run<'_> {
    /// Enters `state`: logs it and, once the changelog table exists, records it there (hint
    /// `state`), as gh-ost does.
    async fn enter(&mut self, state: State) -> Result<(), MigrationError> {
        // Once swapped, a stop request changes nothing: the run only cleans up.
        if self.cancel.is_cancelled() && !self.swapped {
            return Err(MigrationError::Cancelled);
        }
        info!(state = %state, "{}", state_line(state));
        if self.created.contains(&self.cfg.changelog_table()) {
            self.write_state(state).await?;
        }
        Ok(())
    }

    async fn steps(&mut self) -> Result<Report, MigrationError> {
        let cfg = self.cfg;
        self.hooks.run(Hook::Startup).await?;
        // Opened before anything is touched: a metrics port in use stops the run here.
        let metrics = Metrics::bind(cfg)
            .await
            .map_err(|e| MigrationError::Other(e.to_string()))?;
        self.enter(State::Validate).await?;
        let (facts, mut iconn) = self.validate().await?;
        let flavor = facts.inspected.flavor.clone();
        self.server_id = u64::from(facts.inspected.server_id);
        self.primary_names = facts.primary.name_case;
        self.controls.set_servers(control::Servers {
            inspected: format!("{} ({})", self.inspected, facts.inspected.flavor),
            primary: format!("{} ({})", self.primary, facts.primary.flavor),
        });
        let original = facts.table.clone().expect("table-exists check passed");
        if cfg.flags.attempt_instant_ddl && !cfg.flags.revert && self.instant_ddl().await? {
            self.enter(State::Cleanup).await?;
            return Ok(Report {
                inspected: self.inspected.clone(),
                primary: self.primary.clone(),
                flavor,
                plan: None,
                instant_ddl: true,
                row_estimate: 0,
                swapped: false,
                rows_copied: 0,
                events_applied: 0,
                locked_for: None,
                copy_time: Duration::ZERO,
                checksum_time: None,
            });
        }
        let mut pconn = match self.pconn.take() {
            Some(c) => c,
            None => mysql::connect(&self.primary, &Credentials::primary(cfg)).await?,
        };

        self.enter(State::Prepare).await?;
        let plan = if cfg.flags.resume {
            self.prepare_resume(&mut pconn, &mut iconn, &original).await
        } else if cfg.flags.revert {
            self.prepare_revert(&mut pconn, &mut iconn, &original).await
        } else {
            self.prepare(&mut pconn, &original).await
        };
        self.pconn = Some(pconn);
        let plan = plan?;
        self.hooks.run(Hook::Validated).await?;
        let row_estimate = inspect::row_count(
            &mut iconn,
            &cfg.database,
            &cfg.table,
            cfg.flags.exact_rowcount,
        )
        .await
        .context("counting rows")?;
        if cfg.flags.exact_rowcount {
            let rows = ("GH_OST_ESTIMATED_ROWS", row_estimate.to_string());
            self.hooks.run_with(Hook::RowCountComplete, &[rows]).await?;
        }
        info!(
            "plan: key {} ({}); {} columns copied{}{}; about {row_estimate} rows",
            plan.key.name,
            plan.key.columns.join(", "),
            plan.columns.len(),
            list_suffix(", dropped: ", &plan.dropped),
            list_suffix(", added: ", &plan.added),
        );
        self.chunk_rows_cap = chunk_rows_cap(cfg, facts.avg_row_bytes);
        self.write_state(State::Prepare).await?;

        // Copy, with the binlog applied from a position taken before the first chunk is read.
        self.enter(State::Copy).await?;
        let progress = self.controls.progress.clone();
        progress
            .rows_estimate
            .store(row_estimate, Ordering::Relaxed);
        self.hooks.set_progress(&progress);
        if cfg.flags.skip_checksum {
            progress.set_checksum(ChecksumStatus::Skipped);
            info!("--skip-checksum: the ghost table will not be compared with the original before the swap");
        }
        let servers = Servers {
            inspected: &self.inspected,
            primary: &self.primary,
            flavor: &flavor,
            names: facts.inspected.name_case,
        };
        if let Some(resumed) = &self.resumed {
            progress
                .rows_copied
                .store(resumed.rows_copied, Ordering::Relaxed);
        }
        self.path = Some(
            DataPath::start(
                cfg,
                servers,
                &mut iconn,
                &plan,
                &self.controls,
                self.stream_from.clone(),
                &self.cancel,
            )
            .await?,
        );
        let (metrics_progress, gate) = (progress.clone(), self.controls.gate.clone());
        let checkpoints = self.checkpoint_sources();
        let writer = self.checkpoint_writer();
        if let Some(path) = self.path.as_mut() {
            path.attach(|stop| metrics.start(metrics_progress, gate, stop));
            if let Some(sources) = checkpoints {
                let every = Duration::from_secs(cfg.flags.checkpoint_seconds.max(1) as u64);
                path.attach(|stop| tokio::spawn(writer.run(sources, every, stop)));
            }
        }
        self.hooks.run(Hook::BeforeRowCopy).await?;
        let _status_hooks = self.hooks.status_every(cfg.flags.hooks_status_interval);
        progress.copy_started.get_or_init(Instant::now);
        self.copy(&plan, &progress).await?;
        let _ = progress.copy_finished.set(Instant::now());
        // A run interrupted from now on resumes without copying again.
        self.write_checkpoint().await;
        // Part of the copy's cost, so counted in its time.
        let built = self
            .build_deferred_indexes(&facts.primary.flavor, &progress)
            .await?;
        let copy_time = progress
            .copy_started
            .get()
            .map(|s| s.elapsed())
            .unwrap_or_default();
        info!(
            "row copy complete: {} rows in {} chunks in {:.1}s{}",
            progress.rows_copied.load(Ordering::Relaxed),
            progress.chunks_copied.load(Ordering::Relaxed),
            copy_time.as_secs_f64(),
            built.map_or(String::new(), |b| format!(
                " (the deferred secondary indexes built in the last {:.1}s)",
                b.as_secs_f64()
            ))
        );
        self.hooks.run(Hook::RowCopyComplete).await?;
        let skipped = progress.rows_skipped.load(Ordering::Relaxed);
        if skipped > 0 {
            warn!("{skipped} rows were skipped by the copy (--allow-skipped-rows): the new table does not have them");
        }
        self.enter(State::CatchUp).await?;
        self.wait_caught_up(&progress).await?;
        self.hooks.run(Hook::BeforeCutOver).await?;

        let spec = self.checksum_spec(&plan, &flavor);
        let mut checksum_time = None;
        if cfg.flags.skip_checksum {
            warn!("checksum skipped (--skip-checksum): the ghost table is not compared with the original before the swap");
        } else {
            self.enter(State::Checksum).await?;
            checksum_time = Some(self.checksum(&spec, &progress, copy_time).await?);
        }
        // The row work the application would feel is done: no more pacing.
        self.controls.gate.pacer().end();
        self.controls.progress.set_pacing(None);

        let mut locked_for = None;
        if cfg.execute() {
            let postponed = self.postpone(&progress).await?;
            if postponed && !cfg.flags.skip_checksum {
                self.enter(State::Checksum).await?;
                self.reverify(&spec, &progress).await?;
            }
            self.enter(State::CutOver).await?;
            progress.set_state("cutting over");
            let pconn = self.primary_conn().await?;
            let primary_flavor = Flavor::detect(pconn)
                .await
                .context("reading the primary's version")?;
            if cfg.cut_over == CutOverMode::Atomic {
                cutover::prepare(
                    pconn,
                    &primary_flavor,
                    cfg.flags.allow_setup_metadata_lock_instruments,
                )
                .await?;
            }
            if cfg.flags.test_on_replica {
                self.stop_replication(&primary_flavor).await?;
            }
            let swapped = self.cut_over(primary_flavor.clone()).await;
            if cfg.flags.test_on_replica {
                match &swapped {
                    Ok(_) => self.swap_back(&primary_flavor).await?,
                    Err(_) => self.start_replication(&primary_flavor).await,
                }
            }
            locked_for = Some(swapped?);
            if !cfg.flags.test_on_replica {
                self.after_swap().await?;
            }
            if cfg.flags.ok_to_drop_table && !cfg.flags.test_on_replica {
                let old = cfg.old_table();
                self.primary_conn()
                    .await?
                    .query_drop(sql::drop_table_if_exists(&cfg.database, &old))
                    .await
                    .context(format!("dropping {old}"))?;
            }
        } else {
            info!("noop run (no --execute): rows copied and binlog applied to {}, not swapping; dropping the helper tables", sql::quote_ident(&cfg.ghost_table()));
        }
        let dropped = progress.rows_skipped_by_apply.load(Ordering::Relaxed);
        if dropped > 0 {
            warn!("{dropped} rows were skipped by the applier (--allow-skipped-rows): changes made to the table during the migration that the new table does not have");
        }
        self.enter(State::Cleanup).await?;
        Ok(Report {
            inspected: self.inspected.clone(),
            primary: self.primary.clone(),
            flavor,
            plan: Some(plan),
            instant_ddl: false,
            row_estimate,
            swapped: self.swapped,
            rows_copied: progress.rows_copied.load(Ordering::Relaxed),
            events_applied: progress.events_applied.load(Ordering::Relaxed),
            locked_for,
            copy_time,
            checksum_time,
        })
    }

    async fn copy(&mut self, plan: &Plan, progress: &Arc<Progress>) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let mut spec = CopySpec::new(
            plan,
            &cfg.database,
            &cfg.table,
            &cfg.ghost_table(),
            self.primary.clone(),
            Credentials::primary(cfg),
        );
        spec.workers = cfg.flags.copy_workers as usize;
        spec.chunk_target = (cfg.flags.chunk_target_millis > 0)
            .then(|| Duration::from_millis(cfg.flags.chunk_target_millis));
        spec.max_chunk_rows = self.chunk_rows_cap;
        spec.strict = !cfg.flags.skip_strict_mode;
        spec.allow_skipped_rows = cfg.flags.allow_skipped_rows;
        spec.changelog = cfg.changelog_table();
        spec.tombstones = self.path.as_ref().and_then(|p| p.tombstones.clone());
        spec.front = self.path.as_ref().and_then(|p| p.front.clone());
        if cfg.flags.revert {
            info!("--revert: nothing to copy: the old table held every row at the swap, and the binlog since brings it up to date");
            self.watermark.done();
            return Ok(());
        }
        if let Some(resumed) = &self.resumed {
            if resumed.copy.done {
                info!("--resume: the interrupted run had copied every row; not copying again");
                self.watermark.done();
                return Ok(());
            }
            info!(
                "--resume: copying the rows above the checkpoint's key ({} rows were copied before)",
                resumed.rows_copied
            );
        }
        if spec.tombstones.is_some() {
            info!("copying chunks from their snapshots, without shared locks on the original's rows; rows deleted while a chunk reads are deleted again after it");
        } else {
            info!(
                "copying chunks with locking reads (LOCK IN SHARE MODE): {}",
                if cfg.flags.copy_with_shared_locks {
                    "--copy-with-shared-locks"
                } else if cfg.flags.checkpoint || cfg.flags.resume {
                    "a checkpointed run (--checkpoint, --resume) must not resume a chunk whose repeated deletes were lost with the run"
                } else {
                    "the key does not compare exactly (a case-insensitive string, say) or may hold NULLs, so keys deleted meanwhile cannot be matched"
                }
            );
        }
        let result = copy::run(
            Arc::new(spec),
            self.watermark.clone(),
            self.controls.knobs.clone(),
            self.controls.gate.clone(),
            progress.clone(),
            self.cancel.clone(),
        )
        .await;
        match result {
            Err(copy::CopyError::Cancelled) => Err(MigrationError::Cancelled),
            other => Ok(other?),
        }
    }

    /// How recent the last heartbeat read back must be for its lag to count as current: three
    /// heartbeat intervals, at least half a second.
    fn heartbeat_fresh(&self) -> Duration {
        Duration::from_millis((self.cfg.flags.heartbeat_interval_millis as u64 * 3).max(500))
    }

    /// Waits until the applier has caught up: empty backlog and a fresh heartbeat read back.
    /// Ends early when the run is cancelled (a failed or panicked applier cancels it too), and
    /// fails when no heartbeat has come back for [`STALLED_STREAM`].
    async fn wait_caught_up(&self, progress: &Progress) -> Result<(), MigrationError> {
        let fresh = self.heartbeat_fresh();
        let mut throttled_at: Option<Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                return Err(MigrationError::Cancelled);
            }
            // Close enough: the rest is drained under the cut-over lock, when writes are blocked.
            let backlog = progress.backlog.load(Ordering::Relaxed);
            let lag = progress.lag();
            let age = progress.heartbeat_age();
            if backlog < progress.backlog_capacity / 10
                && lag < Duration::from_secs(1)
                && age.is_some_and(|age| age < fresh)
            {
                return Ok(());
            }
            // A throttled apply loop reads nothing: the stream is not stuck while throttled.
            if matches!(self.controls.gate.state(), GateState::Closed(_)) {
                throttled_at = Some(Instant::now());
            }
            let waited = age.unwrap_or_else(|| progress.started.elapsed());
            if waited.min(throttled_at.map_or(Duration::MAX, |t| t.elapsed())) > STALLED_STREAM {
                return Err(self.stalled_stream());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// No heartbeat has come back for [`STALLED_STREAM`] while nothing throttled the run.
    fn stalled_stream(&self) -> MigrationError {
        MigrationError::Other(format!(
            "no heartbeat has come back through the binlog of {} for {} minutes: the binlog stream is stuck. Check that replication from the primary runs and that the binlog is written, then run the migration again",
            self.inspected,
            STALLED_STREAM.as_secs() / 60
        ))
    }

    /// `--attempt-instant-ddl`: the ALTER on the original table with `ALGORITHM=INSTANT`, as gh-ost
    /// tries it first. The server changes only the table's metadata, or refuses, and then the
    /// full migration runs. Its metadata lock waits at most --cut-over-lock-timeout-seconds (the
    /// application's statements on the table queue behind a waiting ALTER). Not in a noop run, and
    /// not when the ALTER names its own ALGORITHM or LOCK (the last one named would win). Returns
    /// whether the table was changed.
    async fn instant_ddl(&mut self) -> Result<bool, MigrationError> {
        let cfg = self.cfg;
        if !cfg.execute() {
            info!("noop run: not attempting ALGORITHM=INSTANT (--attempt-instant-ddl changes the table)");
            return Ok(false);
        }
        if cfg.alter.names_algorithm_or_lock {
            info!("the ALTER names its own ALGORITHM or LOCK: not attempting ALGORITHM=INSTANT");
            return Ok(false);
        }
        let mut ddl = mysql::connect_ddl(&self.primary, &Credentials::primary(cfg)).await?;
        let lock_timeout = Duration::from_secs(cfg.flags.cut_over_lock_timeout_seconds as u64);
        ddl.query_drop(sql::lock_session(lock_timeout))
            .await
            .context("setting up the instant ALTER's session")?;
        let statement = sql::alter_table(
            &cfg.database,
            &cfg.table,
            &format!("ALGORITHM=INSTANT, {}", cfg.alter.body),
        );
        let result = mysql::run_ddl(&mut ddl, &statement).await;
        let _ = ddl.disconnect().await;
        match result {
            Ok(()) => {
                info!(
                    "instant DDL: {} changed with ALGORITHM=INSTANT (--attempt-instant-ddl); nothing to copy or swap",
                    sql::qualified(&cfg.database, &cfg.table)
                );
                Ok(true)
            }
            Err(e) => {
                info!("ALGORITHM=INSTANT is not possible here ({e}); proceeding with the online migration");
                Ok(false)
            }
        }
    }

    /// `--test-on-replica`, before the cut-over: the `gh-ost-on-stop-replication` hook, then
    /// replication stopped (unless `--test-on-replica-skip-replica-stop`), so the replica's
    /// table holds still while it is swapped and swapped back.
    async fn stop_replication(&mut self, flavor: &Flavor) -> Result<(), MigrationError> {
        self.hooks.run(Hook::StopReplication).await?;
        if self.cfg.flags.test_on_replica_skip_replica_stop {
            warn!(
                "--test-on-replica-skip-replica-stop: replication is not stopped for the cut-over"
            );
            return Ok(());
        }
        info!(
            "--test-on-replica: stopping replication on {}",
            self.primary
        );
        self.primary_conn()
            .await?
            .query_drop(flavor.stop_replication_sql())
            .await
            .context("stopping replication (--test-on-replica)")
    }

    /// `--test-on-replica`, after a failed cut-over: replication started again, as gh-ost does
    /// (a failure is logged: the run has failed already).
    async fn start_replication(&mut self, flavor: &Flavor) {
        if let Err(e) = self.hooks.run(Hook::StartReplication).await {
            warn!("{e}");
        }
        if self.cfg.flags.test_on_replica_skip_replica_stop {
            return;
        }
        let started = match self.primary_conn().await {
            Ok(conn) => conn
                .query_drop(flavor.start_replication_sql())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = started {
            warn!(
                "--test-on-replica: could not start replication again on {} ({e}); run {} there",
                self.primary,
                flavor.start_replication_sql()
            );
        }
    }

    /// `--test-on-replica`, after the swap: swaps back at once (`t` is the original again, the
    /// migrated table stays at `_t_gho` for inspection) and leaves replication stopped.
    async fn swap_back(&mut self, flavor: &Flavor) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let (ghost, old) = (cfg.ghost_table(), cfg.old_table());
        self.primary_conn()
            .await?
            .query_drop(sql::rename_swap(&cfg.database, &cfg.table, &ghost, &old))
            .await
            .context("swapping the tables back (--test-on-replica)")?;
        info!(
            "--test-on-replica: swapped back: `{}` is the original table again and `{ghost}` holds the migrated one, for inspection. {}",
            cfg.table,
            if cfg.flags.test_on_replica_skip_replica_stop {
                "Replication was not stopped".to_string()
            } else {
                format!(
                    "Replication on {} is left stopped: inspect `{ghost}`, then run {} (and drop `{ghost}`)",
                    self.primary,
                    flavor.start_replication_sql()
                )
            }
        );
        Ok(())
    }

    /// Waits while the throttler holds the run, before a step that locks the original table
    /// (gh-ost does not cut over while throttled): the applier reads nothing meanwhile, so the
    /// step's marker could not come back and the lock would only block the application's writers
    /// until it timed out, again at every retry. The status line says `throttled, <reason>`.
    async fn wait_unthrottled(&self, step: &str) -> Result<(), MigrationError> {
        let (gate, progress) = (&self.controls.gate, &self.controls.progress);
        if let GateState::Closed(reason) = gate.state() {
            let shown = progress.state();
            info!("{step}: waiting while throttled ({reason})");
            progress.set_state(format!("throttled, {reason}"));
            gate.wait_for_copy(0, &self.cancel).await;
            progress.set_state(shown);
            if !self.cancel.is_cancelled() {
                info!("{step}: no longer throttled");
            }
        }
        if self.cancel.is_cancelled() {
            return Err(MigrationError::Cancelled);
        }
        Ok(())
    }

    /// Whether the binlog's lag is still low enough to lock over, after [`Run::wait_low_lag`]
    /// let a lock go at `accepted`: at most that or [`LOCK_LAG`], whichever is more (a steady lag
    /// it locked over anyway stays acceptable).
    fn lag_low(&self, accepted: Duration) -> impl Fn() -> bool + use<> {
        let progress = self.controls.progress.clone();
        let limit = accepted.max(LOCK_LAG);
        move || progress.lag() <= limit
    }

    /// Before a step that locks the original table and then waits for a marker to come back
    /// through the binlog (the checksum's snapshot, the cut-over): writers wait at least as long
    /// as the binlog's lag, so the lock is taken once the lag (the last heartbeat's trip, fresh)
    /// is at most [`LOCK_LAG`], waiting up to [`LOCK_LAG_WAIT`]
    /// for it; past that the lock is taken anyway, and the log says so, unless the lag is
    /// falling (a backlog the applier drains, which the lock would make the writers wait for;
    /// [`LOCK_LAG_DRAINING`]) or is at least the time the lock may wait for its marker
    /// ([`cutover::marker_budget`]: such a lock holds the writers for all of it, then fails):
    /// then it waits on, saying so every [`LOCK_LAG_WAIT`]. (Over one window the lag can look
    /// steady while the applier is busy with one large batch of a backlog: the second reason
    /// keeps such a backlog from being locked over.) Meanwhile the applier applies events as
    /// they come ([`Control::ApplyNow`]), without its batching window. Returns the lag it lets
    /// the lock go at.
    async fn wait_low_lag(&self, step: &str) -> Result<Duration, MigrationError> {
        let progress = &self.controls.progress;
        let fresh = self.heartbeat_fresh();
        // From now until the lock, events are applied as they come (no batching window). Once a
        // heartbeat read after this has come back, what the window held is applied too.
        if let Some(path) = &self.path {
            let window = path.control.send_replace(Control::ApplyNow) == Control::Apply
                && self.cfg.flags.apply_batch_millis > 0;
            let sent = Instant::now();
            let seen_since = || {
                progress
                    .heartbeat_age()
                    .is_some_and(|age| age < sent.elapsed())
            };
            if window {
                poll(&self.cancel, fresh, Duration::from_millis(5), seen_since).await?;
            }
        }
        // The lag is a heartbeat's whole trip, queued behind whatever waits to be applied.
        let low = || {
            progress.lag() <= LOCK_LAG && progress.heartbeat_age().is_some_and(|age| age < fresh)
        };
        if low() {
            return Ok(progress.lag());
        }
        // While no heartbeat comes back (the applier busy with one long batch of a backlog),
        // the last one's trip is not the lag: the next one's is longer.
        let interval = Duration::from_millis(self.cfg.flags.heartbeat_interval_millis as u64);
        let lag_now = || progress.lag_now(interval);
        let started = Instant::now();
        let mut before = lag_now();
        info!(
            "{step}: waiting for the binlog's lag ({:.3}s) to fall to {:.3}s before locking: writers would wait at least that long",
            before.as_secs_f64(),
            LOCK_LAG.as_secs_f64()
        );
        let budget = cutover::marker_budget(Duration::from_secs(
            self.cfg.flags.cut_over_lock_timeout_seconds as u64,
        ));
        // Since when the stream has been expected to bring heartbeats (not while throttled).
        let mut expecting = Instant::now();
        loop {
            if poll(&self.cancel, LOCK_LAG_WAIT, Duration::from_millis(10), low).await? {
                info!(
                    "{step}: the binlog's lag is {:.3}s after {:.1}s: locking",
                    progress.lag().as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
                return Ok(progress.lag());
            }
            let lag = lag_now();
            // A backlog being drained: the lag falls (by a tenth every LOCK_LAG_WAIT at least).
            let draining = lag < before.mul_f64(LOCK_LAG_DRAINING);
            let hopeless = lag >= budget;
            if !draining && !hopeless {
                warn!(
                    "{step}: the binlog's lag stayed above {:.3}s for {:.1}s and is not falling; locking anyway (lag {:.3}s)",
                    LOCK_LAG.as_secs_f64(),
                    started.elapsed().as_secs_f64(),
                    lag.as_secs_f64()
                );
                return Ok(lag);
            }
            if draining {
                info!(
                    "{step}: the binlog's lag is {:.3}s after {:.1}s (from {:.3}s): not locking while the applier catches up (writers would wait about that long)",
                    lag.as_secs_f64(),
                    started.elapsed().as_secs_f64(),
                    before.as_secs_f64()
                );
            } else {
                warn!(
                    "{step}: the binlog's lag is {:.3}s after {:.1}s (from {:.3}s), longer than the lock may wait for its marker ({:.1}s, --cut-over-lock-timeout-seconds): not locking, the writers would wait that long for nothing; waiting for the applier to catch up (throttle the application's writes, or read the binlog where it lags less)",
                    lag.as_secs_f64(),
                    started.elapsed().as_secs_f64(),
                    before.as_secs_f64(),
                    budget.as_secs_f64()
                );
            }
            before = lag;
            let unheard = progress
                .heartbeat_age()
                .unwrap_or(Duration::MAX)
                .min(expecting.elapsed());
            if unheard > STALLED_STREAM {
                return Err(self.stalled_stream());
            }
            // Throttled meanwhile (the applier reads nothing then): wait for the throttle, then
            // judge the lag afresh.
            if matches!(self.controls.gate.state(), GateState::Closed(_)) {
                self.wait_unthrottled(step).await?;
                expecting = Instant::now();
                before = lag_now();
            }
        }
    }

    /// Stays synced while the postpone flag file exists (set by flag or command), until it is
    /// removed or `unpostpone` comes. Returns whether it was postponed.
    async fn postpone(&mut self, progress: &Progress) -> Result<bool, MigrationError> {
        let controls = self.controls.clone();
        if !controls.cut_over_postponed() {
            return Ok(false);
        }
        self.enter(State::Postpone).await?;
        info!(
            "cut-over postponed while {} exists (or until the unpostpone command)",
            controls.knobs.postpone_flag_file()
        );
        controls.set_postponing(true);
        let _not_postponing = PostponingFlag(&controls);
        self.hooks.run(Hook::BeginPostponed).await?;
        progress.set_state("postponing cut-over");
        while controls.cut_over_postponed() {
            if self.cancel.is_cancelled() {
                return Err(MigrationError::Cancelled);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        info!("cut-over no longer postponed: cutting over");
        Ok(true)
    }

    /// What the checksum compares, and with how many connections.
    fn checksum_spec(&self, plan: &Plan, flavor: &Flavor) -> ChecksumSpec {
        let cfg = self.cfg;
        // Reading is cheaper than copying: chunks of ten copy chunks.
        let rows = (cfg.flags.chunk_size.max(1) as u64 * 10).clamp(100, 100_000);
        let rows = self.chunk_rows_cap.map_or(rows, |most| rows.min(most * 10));
        let mut spec = ChecksumSpec::new(
            plan,
            self.cut_over_spec(flavor.clone()),
            rows,
            cfg.flags.copy_workers.max(1) as usize,
        );
        spec.allow_missing = cfg.flags.allow_skipped_rows;
        spec
    }

    /// Fixes one logical moment of both tables (the checksum's brief lock), trying again after
    /// a lock or drain that did not finish in time, up to --default-retries. With `take_keys`,
    /// the snapshot brings the keys applied since the previous one ([`checksum::snapshot`]).
    async fn checksum_snapshot(
        &mut self,
        spec: &ChecksumSpec,
        take_keys: bool,
    ) -> Result<Snapshot, MigrationError> {
        let retries = self.cfg.flags.default_retries;
        let mut attempt = 0i64;
        loop {
            attempt += 1;
            self.wait_unthrottled("checksum").await?;
            let lag_low = self.lag_low(self.wait_low_lag("checksum").await?);
            let token = marker_token("checksum-");
            let path = self.path.as_mut().ok_or(MigrationError::Cancelled)?;
            let keylog = path.keylog.clone();
            let (control, status) = (&path.control, &mut path.status);
            let snapshot =
                checksum::snapshot(spec, control, status, &keylog, take_keys, &token, &lag_low);
            let error = match snapshot.await {
                Ok(snapshot) => {
                    let how = snapshot
                        .locked
                        .detail()
                        .map(|d| format!("; lock {d}"))
                        .unwrap_or_default();
                    info!(
                        "checksum: snapshot taken; the original table was locked for {:.3}s ({}{how})",
                        snapshot.locked_for.as_secs_f64(),
                        snapshot.trip
                    );
                    return Ok(snapshot);
                }
                Err(e) => e,
            };
            if let Some(failure) = path.failure().await {
                warn!("checksum: taking the snapshot failed: {error}");
                return Err(failure.into());
            }
            if !error.retry() || attempt >= retries {
                return Err(error.into());
            }
            warn!(
                "checksum: taking the snapshot failed (attempt {attempt}): {error}; retrying in 1s"
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.cancel.cancelled() => return Err(MigrationError::Cancelled),
            }
        }
    }

    /// [`checksum::compare_all`] on `conns` with the run's throttle, knobs and cancellation.
    async fn compare_all(
        &self,
        spec: &ChecksumSpec,
        conns: Vec<mysql_async::Conn>,
        views: Views,
        progress: &Arc<Progress>,
    ) -> Result<checksum::Pass, ChecksumError> {
        checksum::compare_all(
            spec,
            conns,
            views,
            &self.controls.gate,
            &self.controls.knobs,
            progress,
            &self.cancel,
        )
        .await
    }

    /// The whole tables compared ([`Self::compare_all`]), each chunk in a read view of its own, from a moment when the apply loop
    /// records the keys it writes: rows that differed in their chunk's view are compared again
    /// once the applier has caught up, and those that still differ, in a snapshot ([`Self::settle`]).
    /// Invariant (docs/architecture.md, 8): every row of both tables is found equal at one moment
    /// at or after the log started, and a row changed after that moment has its key in the log;
    /// so the tables are equal at the next snapshot once its logged keys are (the re-verify after
    /// a postponed cut-over).
    async fn compare_whole(
        &mut self,
        spec: &ChecksumSpec,
        progress: &Arc<Progress>,
    ) -> Result<checksum::Compared, MigrationError> {
        self.wait_unthrottled("checksum").await?;
        let path = self.path.as_ref().ok_or(MigrationError::Cancelled)?;
        // From here on, every key the applier writes is logged: a row found equal now and
        // changed later is compared again at the next snapshot.
        path.keylog.take();
        let conns = checksum::connections(spec).await?;
        let pass = self
            .compare_all(spec, conns, Views::PerChunk, progress)
            .await?;
        let mut compared = pass.compared;
        if pass.overflowed {
            info!(
                "checksum: more than {} rows differed in their chunks' views (the applier behind); comparing the whole tables again, in one snapshot",
                checksum::SUSPECT_LIMIT
            );
            progress.rows_checksummed.store(0, Ordering::Relaxed);
            let conns = self
                .checksum_snapshot(spec, false)
                .await?
                .into_connections();
            let again = self
                .compare_all(spec, conns, Views::Snapshot, progress)
                .await?;
            compared.rested += again.compared.rested;
            return Ok(compared);
        }
        self.settle(spec, pass.suspects).await?;
        Ok(compared)
    }

    /// Compares again the rows that differed in their chunk's view: up to [`SUSPECT_ROUNDS`]
    /// times, each once the applier has applied what was committed before it (rows whose last
    /// change was not applied yet then agree), each batch in a view of its own; rows that still
    /// differ (changed again meanwhile, or really different), in a snapshot, where any
    /// difference fails the checksum.
    async fn settle(
        &mut self,
        spec: &ChecksumSpec,
        mut suspects: Vec<Vec<mysql_async::Value>>,
    ) -> Result<(), MigrationError> {
        let first = suspects.len();
        for _ in 0..SUSPECT_ROUNDS {
            if suspects.is_empty() {
                break;
            }
            self.wait_unthrottled("checksum").await?;
            let asked = Instant::now();
            let progress = &self.controls.progress;
            poll(&self.cancel, SUSPECT_WAIT, Duration::from_millis(5), || {
                progress.heartbeat_written_after(asked)
            })
            .await?;
            let conns = checksum::connections(spec).await?;
            let (_, still) =
                checksum::compare_suspects(spec, conns, suspects, Views::PerChunk, &self.cancel)
                    .await?;
            suspects = still.into_iter().map(|d| d.key).collect();
        }
        if first > 0 {
            info!(
                "checksum: {first} row(s) differed in their chunk's view (changes not applied yet) and were compared again: {} still differ{}",
                suspects.len(),
                if suspects.is_empty() { "" } else { "; comparing them in a snapshot" }
            );
        }
        if suspects.is_empty() {
            return Ok(());
        }
        let snapshot = self.checksum_snapshot(spec, false).await?;
        let (_, still) = checksum::compare_suspects(
            spec,
            snapshot.into_connections(),
            suspects,
            Views::Snapshot,
            &self.cancel,
        )
        .await?;
        checksum::suspects_verdict(spec, &still)?;
        Ok(())
    }

    /// The checksum: the ghost table compared with the original, chunk by chunk
    /// ([`Self::compare_whole`]). Fails the run, naming the keys, if any row differs. Returns how
    /// long it took.
    async fn checksum(
        &mut self,
        spec: &ChecksumSpec,
        progress: &Arc<Progress>,
        copy_time: Duration,
    ) -> Result<Duration, MigrationError> {
        let started = Instant::now();
        info!(
            "checksum: comparing {} with {} over key {} ({} columns compared{})",
            sql::quote_ident(&spec.lock.ghost),
            sql::quote_ident(&spec.lock.table),
            spec.index,
            spec.columns.len(),
            list_suffix("; not compared, retyped by the ALTER: ", &spec.skipped),
        );
        if spec.allow_missing {
            info!("checksum: rows missing from the ghost table are allowed (--allow-skipped-rows)");
        }
        progress.set_state("checksumming");
        progress.set_checksum(ChecksumStatus::Comparing);
        let compared = self
            .compare_whole(spec, progress)
            .await
            .inspect_err(|e| differs(progress, e))?;
        let took = started.elapsed();
        progress.set_checksum(ChecksumStatus::Passed);
        progress.set_state("migrating");
        // A resumed run whose copy was done, or a revert, copied nothing: no ratio to give.
        let cost = if self.resumed.as_ref().is_some_and(|c| c.copy.done) || self.cfg.flags.revert {
            "no rows were copied in this run".to_string()
        } else {
            format!(
                "row copy: {:.2}s; the checksum cost {:.0}% of the copy time",
                copy_time.as_secs_f64(),
                took.as_secs_f64() * 100.0 / copy_time.as_secs_f64().max(1e-3)
            )
        };
        let rested = if compared.rested.is_zero() {
            String::new()
        } else {
            format!(
                ", its workers resting {:.2}s in all (--nice-ratio, or the copy's pace)",
                compared.rested.as_secs_f64()
            )
        };
        info!(
            "checksum passed: {} rows in {} chunks compared in {:.2}s{rested} ({cost})",
            compared.rows,
            compared.chunks,
            took.as_secs_f64(),
        );
        Ok(took)
    }

    /// After a postponed cut-over: compares again, in a new snapshot, the rows the applier wrote
    /// since the checksum began (or the previous snapshot); all of them if there were too many
    /// to list.
    async fn reverify(
        &mut self,
        spec: &ChecksumSpec,
        progress: &Arc<Progress>,
    ) -> Result<(), MigrationError> {
        let started = Instant::now();
        progress.set_checksum(ChecksumStatus::ReVerifying);
        let mut snapshot = self.checksum_snapshot(spec, true).await?;
        let touched = std::mem::take(&mut snapshot.touched);
        let rows = if touched.overflowed {
            drop(snapshot);
            progress.rows_checksummed.store(0, Ordering::Relaxed);
            info!(
                "checksum: more than {} rows changed while the cut-over was postponed; comparing the whole tables again",
                crate::apply::keylog::KEYLOG_LIMIT
            );
            self.compare_whole(spec, progress).await.map(|c| c.rows)
        } else {
            checksum::compare_keys(spec, snapshot, touched.keys, &self.cancel)
                .await
                .map(|c| c.rows)
                .map_err(MigrationError::from)
        };
        let rows = rows.inspect_err(|e| differs(progress, e))?;
        progress.set_checksum(ChecksumStatus::Passed);
        info!(
            "checksum: re-verified {rows} rows changed while the cut-over was postponed in {:.2}s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Runs the cut-over, retrying attempts that swapped nothing up to --default-retries. Every
    /// attempt ends in an [`Outcome`] read from the server; a swap marks the run swapped (the
    /// ghost table is then the table, never dropped), an unresolved one keeps every table.
    async fn cut_over(&mut self, flavor: Flavor) -> Result<Duration, MigrationError> {
        let cfg = self.cfg;
        let progress = self.controls.progress.clone();
        let spec = self.cut_over_spec(flavor);
        let mut attempt = 0i64;
        loop {
            attempt += 1;
            self.wait_unthrottled("cut-over").await?;
            let lag_low = self.lag_low(self.wait_low_lag("cut-over").await?);
            let token = marker_token("");
            let path = self.path.as_mut().ok_or(MigrationError::Cancelled)?;
            let (control, status) = (&path.control, &mut path.status);
            let atomic = cfg.cut_over == CutOverMode::Atomic;
            progress.cut_over_attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = cutover::attempt(&spec, atomic, control, status, &token, &lag_low).await;
            let (reason, retry) = match outcome {
                Outcome::Swapped { locked_for } => {
                    progress.swapped(locked_for);
                    self.mark_swapped();
                    return Ok(locked_for);
                }
                Outcome::SwappedUnproven(e) => {
                    self.mark_swapped();
                    return Err(MigrationError::CutOver(e));
                }
                Outcome::Unresolved(what) => {
                    self.unresolved = true;
                    return Err(MigrationError::Unresolved(what));
                }
                Outcome::NotSwapped { reason, retry } => (reason, retry),
            };
            if let Some(failure) = path.failure().await {
                warn!("cut-over attempt {attempt} failed: {reason}");
                return Err(failure.into());
            }
            if !retry {
                return Err(MigrationError::CutOver(reason));
            }
            if attempt >= cfg.flags.default_retries {
                return Err(MigrationError::CutOverGaveUp {
                    attempts: attempt,
                    last: reason,
                });
            }
            let pause = if cfg.flags.cut_over_exponential_backoff {
                Duration::from_secs(
                    (1u64 << attempt.min(16))
                        .min(cfg.flags.exponential_backoff_max_interval as u64),
                )
            } else {
                Duration::from_secs(1)
            };
            warn!(
                "cut-over attempt {attempt} failed: {reason}; retrying in {}s",
                pause.as_secs()
            );
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.cancel.cancelled() => return Err(MigrationError::Cancelled),
            }
        }
    }

    /// What the cut-over works on, on the primary.
    fn cut_over_spec(&self, flavor: Flavor) -> CutOverSpec {
        let cfg = self.cfg;
        CutOverSpec {
            primary: self.primary.clone(),
            creds: Credentials::primary(cfg),
            flavor,
            schema: cfg.database.clone(),
            table: cfg.table.clone(),
            ghost: cfg.ghost_table(),
            old: cfg.old_table(),
            changelog: cfg.changelog_table(),
            names: self.primary_names,
            lock_timeout: Duration::from_secs(cfg.flags.cut_over_lock_timeout_seconds as u64),
            triggers: self.triggers.clone(),
        }
    }

    /// Puts back a table an earlier run left missing halfway through a two-step cut-over.
    /// What the primary's tables look like once mended is what the inspected replica must show
    /// before the preflight reads it: waits (at most [`REPLICATED_WITHIN`]) until the replica
    /// has `t` again after it was renamed back.
    async fn recover_interrupted(
        &self,
        flavor: &Flavor,
        iconn: &mut Conn,
    ) -> Result<(), MigrationError> {
        let Some(what) = cutover::recover_interrupted(&self.cut_over_spec(flavor.clone())).await?
        else {
            return Ok(());
        };
        warn!("{what}");
        if self.primary == self.inspected {
            return Ok(());
        }
        let cfg = self.cfg;
        let waited = Instant::now();
        while waited.elapsed() < REPLICATED_WITHIN {
            let found: Option<u64> = iconn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&cfg.database, &cfg.table),
                )
                .await
                .context("looking for the table on the inspected server")?;
            if found.unwrap_or(0) > 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(MigrationError::Other(format!(
            "{} was renamed back on the primary, but {} has not shown it within {}s: check that replication runs, then run the migration again",
            sql::quote_ident(&cfg.table),
            self.inspected,
            REPLICATED_WITHIN.as_secs()
        )))
    }

    /// The tables are swapped: the ghost table is now the table and must never be dropped.
    fn mark_swapped(&mut self) {
        self.swapped = true;
        let ghost = self.cfg.ghost_table();
        self.created.retain(|t| *t != ghost);
    }

    /// Stops the data path's tasks; returns the apply loop's failure, if it had one.
    async fn stop_path(&mut self) -> Option<MigrationError> {
        let path = self.path.take()?;
        path.stop().await.map(MigrationError::from)
    }

    /// The run's connection to the primary, reopened when it was lost (a long copy or postpone
    /// past the server's `wait_timeout`, a restart, MySQL's idle disconnect).
    async fn primary_conn(&mut self) -> Result<&mut Conn, MigrationError> {
        let alive = match self.pconn.as_mut() {
            Some(conn) => conn.ping().await.is_ok(),
            None => false,
        };
        if !alive {
            if self.pconn.is_some() {
                info!(
                    "the connection to the primary {} was lost; reconnecting",
                    self.primary
                );
            }
            let conn = mysql::connect(&self.primary, &Credentials::primary(self.cfg)).await?;
            self.pconn = Some(conn);
        }
        self.pconn
            .as_mut()
            .ok_or_else(|| MigrationError::Other("no connection to the primary".into()))
    }

    /// Connects, finds the primary, gathers facts and runs the preflight checks.
    async fn validate(&mut self) -> Result<(Facts, Conn), MigrationError> {
        let cfg = self.cfg;
        for flag in &cfg.not_yet_acted_on {
            warn!("{}", flag.warning());
        }
        let creds = Credentials::inspected(cfg);
        let mut iconn = mysql::connect(&self.inspected, &creds).await?;
        let iflavor = Flavor::detect(&mut iconn)
            .await
            .context("reading the server version")?;
        info!("inspecting {} ({iflavor})", self.inspected);
        let status = topology::replica_status(&mut iconn, &iflavor)
            .await
            .context("reading replica status")?;
        let pcreds = Credentials::primary(cfg);
        if cfg.flags.migrate_on_replica || cfg.flags.test_on_replica {
            // gh-ost's --migrate-on-replica: the replica's own table is migrated and swapped.
            if status.is_none() {
                return Err(MigrationError::Other(format!(
                    "instructed to --test-on-replica or --migrate-on-replica, but the server we connect to doesn't seem to be a replica ({} shows no replication): connect to the replica whose table you mean to change",
                    self.inspected
                )));
            }
            info!(
                "{}: the table is migrated and swapped on the replica {} itself; the primary's table is not touched{}",
                if cfg.flags.test_on_replica { "--test-on-replica" } else { "--migrate-on-replica" },
                self.inspected,
                if cfg.flags.test_on_replica { " (and the swap is undone at once, for inspection)" } else { "" }
            );
            self.primary = self.inspected.clone();
        } else {
            self.primary = topology::resolve_primary(
                &self.inspected,
                status,
                cfg.flags.assume_master_host.as_deref(),
                cfg.flags.allow_on_master,
                cfg.flags.allow_master_master,
                |endpoint| {
                    let pcreds = pcreds.clone();
                    async move {
                        let mut c = mysql::connect(&endpoint, &pcreds).await.map_err(|e| {
                            mysql_async::Error::Other(Box::new(std::io::Error::other(
                                e.to_string(),
                            )))
                        })?;
                        let f = Flavor::detect(&mut c).await?;
                        topology::replica_status(&mut c, &f).await
                    }
                },
            )
            .await?;
        }
        self.hooks.set_hosts(&self.inspected, &self.primary);
        let lock = table_lock::take(&self.primary, &pcreds, &cfg.database, &cfg.table)
            .await
            .map_err(Box::new)?;
        self.table_lock = Some(lock);
        // Served once this run owns the table: a second run is refused by the lock first.
        self.server = Some(
            control::Server::start(self.controls.clone(), self.hooks.clone(), &self.cancel).await?,
        );
        if self.primary != self.inspected {
            info!(
                "primary is {}; the binlog is read from {}",
                self.primary, self.inspected
            );
            self.pconn = Some(mysql::connect(&self.primary, &pcreds).await?);
        }
        self.recover_interrupted(&iflavor, &mut iconn).await?;
        let primary_endpoint = self.primary.clone();
        let facts = inspect::gather(
            cfg,
            (&mut iconn, &self.inspected),
            self.pconn.as_mut().map(|c| (c, &primary_endpoint)),
        )
        .await
        .context("inspecting the servers")?;
        let failures = checks::run(checks::Phase::BeforeStart, &facts, cfg);
        if !failures.is_empty() {
            return Err(MigrationError::Preflight(failures));
        }
        info!("preflight passed ({} checks)", checks::CHECKS.len());
        Ok((facts, iconn))
    }

    /// Creates the ghost table with the ALTER applied, plans the copy, creates the changelog.
    async fn prepare(
        &mut self,
        pconn: &mut Conn,
        original: &TableSchema,
    ) -> Result<Plan, MigrationError> {
        let cfg = self.cfg;
        let db = cfg.database.as_str();
        let ghost = cfg.ghost_table();
        let changelog = cfg.changelog_table();
        if cfg.flags.initially_drop_ghost_table {
            for t in [&ghost, &changelog, &cfg.checkpoint_table()] {
                pconn
                    .query_drop(sql::drop_table_if_exists(db, t))
                    .await
                    .context(format!("dropping {t}"))?;
            }
        }
        if cfg.flags.initially_drop_old_table {
            let old = cfg.old_table();
            pconn
                .query_drop(sql::drop_table_if_exists(db, &old))
                .await
                .context(format!("dropping {old}"))?;
        }
        // The user's ALTER runs on a connection of its own: one prepared statement, in a session
        // that reads quotes as `inspect::alter` read them.
        let mut ddl = mysql::connect_ddl(&self.primary, &Credentials::primary(cfg)).await?;
        pconn
            .query_drop(sql::create_table_like(db, &ghost, &cfg.table))
            .await
            .context(format!("creating the ghost table {ghost}"))?;
        self.created.push(ghost.clone());
        let altered =
            mysql::run_ddl(&mut ddl, &sql::alter_table(db, &ghost, &cfg.alter.body)).await;
        let _ = ddl.disconnect().await;
        if let Err(e) = altered {
            return Err(MigrationError::AlterRejected(match e {
                mysql_async::Error::Server(s) => {
                    let hint = cfg.alter.rejection_hint(s.code);
                    let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
                    format!("{} (error {}){hint}", s.message, s.code)
                }
                other => other.to_string(),
            }));
        }
        let ghost_schema = TableSchema::read(pconn, db, &ghost)
            .await
            .context("reading the ghost table")?
            .ok_or_else(|| {
                MigrationError::AlterRejected("the ghost table vanished after the ALTER".into())
            })?;
        let plan = self.plan(pconn, original, &ghost_schema).await?;
        if cfg.flags.defer_secondary_indexes {
            self.defer_indexes().await?;
        }
        pconn
            .query_drop(sql::create_changelog(db, &changelog))
            .await
            .context(format!("creating the changelog table {changelog}"))?;
        self.created.push(changelog);
        if cfg.checkpointing() {
            let ghk = cfg.checkpoint_table();
            pconn
                .query_drop(sql::create_checkpoint(db, &ghk))
                .await
                .context(format!("creating the checkpoint table {ghk}"))?;
            self.created.push(ghk);
        }
        Ok(plan)
    }

    /// `--defer-secondary-indexes`: drops the empty ghost table's plain secondary indexes
    /// ([`deferred::deferrable`]) and keeps its definition, so that they are built after the copy.
    async fn defer_indexes(&mut self) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let (db, ghost) = (cfg.database.as_str(), cfg.ghost_table());
        let (mut ddl, definition) = self.ghost_definition().await?;
        let indexes = deferred::deferrable(&definition);
        if indexes.is_empty() {
            info!("--defer-secondary-indexes: the ghost table has no plain secondary index to build after the copy (primary, unique, full-text and spatial indexes stay, and all do when it has a foreign key)");
            let _ = ddl.disconnect().await;
            return Ok(());
        }
        let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
        let dropped = ddl
            .query_drop(sql::drop_indexes(db, &ghost, &names))
            .await
            .context("dropping the ghost table's secondary indexes for the copy");
        let _ = ddl.disconnect().await;
        dropped?;
        info!(
            "--defer-secondary-indexes: {} dropped from the empty ghost table; built again after the copy",
            quoted_list(&names)
        );
        self.deferred = Some(definition);
        Ok(())
    }

    /// After the copy, when indexes were deferred: builds those the ghost table lacks in one
    /// ALTER (which also runs on every replica) and checks that the ghost table is again defined
    /// as the ALTER built it. A cancelled run kills the statement. Returns how long the build
    /// took, if one ran. `flavor`: the primary's.
    async fn build_deferred_indexes(
        &mut self,
        flavor: &Flavor,
        progress: &Progress,
    ) -> Result<Option<Duration>, MigrationError> {
        let Some(wanted) = self.deferred.clone() else {
            return Ok(None);
        };
        let cfg = self.cfg;
        let (db, ghost) = (cfg.database.as_str(), cfg.ghost_table());
        let (mut ddl, current) = self.ghost_definition().await?;
        let missing = deferred::missing(&wanted, &current);
        let mut took = None;
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|i| i.name.as_str()).collect();
            let clauses: Vec<&str> = missing.iter().map(|i| i.clause.as_str()).collect();
            progress.set_state("building deferred indexes");
            let replicas = match flavor.two_phase_alter_sql() {
                Some(two_phase) => match ddl.query_drop(two_phase).await {
                    Ok(()) => "binlogged in two phases: replicas with parallel replication build them alongside their other work",
                    Err(e) => {
                        warn!("{two_phase} failed ({e}): each replica builds the indexes after the primary, lagging meanwhile");
                        "the replicas build them after the primary, lagging meanwhile"
                    }
                },
                None => "the replicas build them after the primary, lagging meanwhile",
            };
            info!(
                "building the deferred secondary indexes {} on {} ({replicas})",
                quoted_list(&names),
                sql::quote_ident(&ghost)
            );
            let started = Instant::now();
            let id = ddl.id();
            crate::failpoint::hit(
                "indexes:build",
                &self.primary,
                &Credentials::primary(cfg),
                crate::failpoint::Connections::default(),
            )
            .await
            .map_err(MigrationError::Other)?;
            let (statement, cancel) = (sql::add_indexes(db, &ghost, &clauses), self.cancel.clone());
            let built = tokio::select! {
                r = mysql::run_ddl(&mut ddl, &statement) => r,
                _ = cancel.cancelled() => {
                    if let Ok(c) = self.primary_conn().await {
                        let _ = c.query_drop(sql::kill_query(id)).await;
                    }
                    return Err(MigrationError::Cancelled);
                }
            };
            built.context("building the deferred secondary indexes")?;
            took = Some(started.elapsed());
            progress.set_state("migrating");
        }
        let now = verify::definition(&mut ddl, db, &ghost)
            .await
            .context("reading the ghost table's definition")?;
        let _ = ddl.disconnect().await;
        if now != wanted {
            return Err(MigrationError::Other(format!(
                "after building the deferred secondary indexes, {} is not defined as the ALTER made it, so it is not swapped in.\nexpected:\n{wanted}\nfound:\n{now}\nThe original table is untouched; run the migration again without --defer-secondary-indexes",
                sql::quote_ident(&ghost)
            )));
        }
        Ok(took)
    }

    /// A DDL session on the primary (no quoting modes, so `SHOW CREATE TABLE` quotes names in
    /// backticks, as [`deferred`] reads them) and the ghost table's definition read in it.
    async fn ghost_definition(&self) -> Result<(Conn, String), MigrationError> {
        let cfg = self.cfg;
        let mut ddl = mysql::connect_ddl(&self.primary, &Credentials::primary(cfg)).await?;
        let definition = verify::definition(&mut ddl, &cfg.database, &cfg.ghost_table())
            .await
            .context("reading the ghost table's definition")?;
        Ok((ddl, definition))
    }

    /// How the rows of `original` map onto the ghost table as it is (`ghost`), checked against
    /// the ALTER; with `--include-triggers`, the triggers too.
    async fn plan(
        &mut self,
        pconn: &mut Conn,
        original: &TableSchema,
        ghost: &TableSchema,
    ) -> Result<Plan, MigrationError> {
        let cfg = self.cfg;
        plan::check_built(original, ghost, &cfg.alter, cfg.flags.skip_renamed_columns)?;
        let plan = plan::build(
            original,
            ghost,
            &cfg.alter.renames,
            cfg.flags.skip_renamed_columns,
            cfg.flags.allow_nullable_unique_key,
        )?;
        if cfg.checkpointing() && nullable_key(&plan) {
            return Err(MigrationError::Other(format!(
                "--checkpoint: the migration's key {} has a nullable column (--allow-nullable-unique-key): rows with a NULL there are copied in one piece at the end, which a checkpoint cannot split, so such a run cannot be resumed. Run without --checkpoint/--resume",
                sql::quote_ident(&plan.key.name)
            )));
        }
        if cfg.flags.include_triggers {
            self.triggers = self.prepare_triggers(pconn).await?;
        }
        Ok(plan)
    }

    /// `--revert`: the old table of a migration made with `--checkpoint` becomes the table to
    /// fill (it held every row at the swap) and the binlog is replayed on it from the swap's end
    /// (the checkpoint's cut-over row), changing rows in place so that the columns the migration
    /// dropped keep their values; the checksum and the cut-over then run as in a migration, and
    /// the migrated table is swapped out to `_<t>_rev_del`. The old table is never dropped: if
    /// the revert fails, it stays (brought partly up to date) and can be reverted to again: from
    /// where the failed revert got to ([`AppliedMark`]: rows changed in place cannot be changed
    /// twice).
    async fn prepare_revert(
        &mut self,
        pconn: &mut Conn,
        iconn: &mut Conn,
        original: &TableSchema,
    ) -> Result<Plan, MigrationError> {
        let cfg = self.cfg;
        let db = cfg.database.as_str();
        let (old, changelog, ghk) = (
            cfg.ghost_table(),
            cfg.changelog_table(),
            cfg.checkpoint_table(),
        );
        let checkpoint = read_checkpoint(
            pconn,
            db,
            &ghk,
            checkpoint::Row::CutOver,
            format!(
                "--revert: there is no checkpoint table {}: only a migration run with --checkpoint (whose checkpoint table is kept, as it is without --ok-to-drop-table) can be reverted",
                sql::quote_ident(&ghk)
            ),
            format!(
                "--revert: {} holds no cut-over checkpoint: the migration has not swapped the tables (resume it with --resume, or drop the helper tables)",
                sql::quote_ident(&ghk)
            ),
        )
        .await?;
        let Some(old_schema) = TableSchema::read(pconn, db, &old)
            .await
            .context("reading the old table")?
        else {
            return Err(refused(format!(
                "--revert: the old table {} (--old-table) does not exist: there is nothing to revert to",
                sql::quote_ident(&old)
            )));
        };
        let old_triggers = triggers::read(pconn, db, &old)
            .await
            .context("reading the old table's triggers")?;
        if !old_triggers.is_empty() {
            return Err(refused(format!(
                "--revert: the old table {} has triggers, which would fire for every change the revert replays on it; drop them first (and create them again after the revert)",
                sql::quote_ident(&old)
            )));
        }
        checkpoint::check_binlog(iconn, &self.inspected, self.server_id, &checkpoint).await?;
        // The change undone: the migration's column renames, the other way round.
        let forward = crate::inspect::alter::parse(&checkpoint.alter).map_err(|e| {
            refused(format!(
                "--revert: the ALTER in the checkpoint cannot be read ({e})"
            ))
        })?;
        let renames: Vec<crate::inspect::alter::ColumnRename> = forward
            .renames
            .iter()
            .map(|r| crate::inspect::alter::ColumnRename {
                from: r.to.clone(),
                to: r.from.clone(),
            })
            .collect();
        let plan = plan::build(original, &old_schema, &renames, false, false)?;
        if nullable_key(&plan) {
            return Err(refused(format!(
                "--revert: the key {} has a nullable column: such rows cannot be matched by key",
                sql::quote_ident(&plan.key.name)
            )));
        }
        if cfg.flags.initially_drop_ghost_table {
            // Only the changelog: the "ghost" here is the old table.
            pconn
                .query_drop(sql::drop_table_if_exists(db, &changelog))
                .await
                .context(format!("dropping {changelog}"))?;
        }
        pconn
            .query_drop(sql::create_changelog(db, &changelog))
            .await
            .context(format!("creating the changelog table {changelog}"))?;
        self.created.push(changelog);
        // A revert run before changed rows in place up to where it recorded: go on from there.
        let mark = AppliedMark {
            schema: db.to_string(),
            table: ghk.clone(),
            alter: checkpoint.alter.clone(),
            server_id: self.server_id,
        };
        let reverted = Checkpoint::read(pconn, db, &ghk, checkpoint::Row::Reverted).await?;
        let since = match &reverted {
            Some(earlier) => {
                checkpoint::check_binlog(iconn, &self.inspected, self.server_id, earlier).await?;
                format!(
                    "from where an earlier revert got to ({}; the swap ended at {})",
                    earlier.applied_at(),
                    checkpoint.position
                )
            }
            None => format!("since the swap ({})", checkpoint.position),
        };
        info!(
            "--revert: bringing {} up to date from the binlog of {} {since}, then swapping it back in (the migrated table will be kept as {}); ALTER undone: {}",
            sql::quote_ident(&old),
            self.inspected,
            sql::quote_ident(&cfg.old_table()),
            checkpoint.alter
        );
        let got_to = reverted.map_or(AppliedAt::at(checkpoint.position), |r| r.applied_at());
        self.stream_from = Some(datapath::Start {
            position: got_to.position,
            applied_events: got_to.events,
            mark: Some(mark),
        });
        Ok(plan)
    }

    /// After a swap: with `--checkpoint`, the cut-over checkpoint (where the swap ended in the
    /// binlog, for `--revert`), and the checkpoint table kept unless `--ok-to-drop-table`, as
    /// gh-ost keeps it. After a `--revert`, the checkpoint table is dropped with
    /// `--ok-to-drop-table`.
    async fn after_swap(&mut self) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let ghk = cfg.checkpoint_table();
        if cfg.flags.revert {
            info!(
                "reverted: {} is the table of before the migration again, with every change made since; the migrated table is kept as {}",
                sql::quote_ident(&cfg.table),
                sql::quote_ident(&cfg.old_table())
            );
            if cfg.flags.ok_to_drop_table {
                self.primary_conn()
                    .await?
                    .query_drop(sql::drop_table_if_exists(&cfg.database, &ghk))
                    .await
                    .context(format!("dropping {ghk}"))?;
            }
            return Ok(());
        }
        if !cfg.checkpointing() {
            return Ok(());
        }
        let swapped_at = self
            .path
            .as_ref()
            .and_then(|p| p.status.borrow().swapped_at.clone());
        let Some(position) = swapped_at else {
            warn!("the swap's end in the binlog is not known: no cut-over checkpoint is written, so this migration cannot be reverted with --revert");
            return Ok(());
        };
        let cut_over = Checkpoint {
            alter: cfg.alter.body.clone(),
            server_id: self.server_id,
            position,
            copy: copy::CopyMark {
                through: None,
                done: true,
            },
            rows_copied: self.controls.progress.rows_copied.load(Ordering::Relaxed),
            events_applied: self
                .controls
                .progress
                .events_applied
                .load(Ordering::Relaxed),
            ghost_definition: None,
        };
        let written = cut_over
            .write(
                self.primary_conn().await?,
                &cfg.database,
                &ghk,
                checkpoint::Row::CutOver,
            )
            .await;
        match written {
            Ok(()) if !cfg.flags.ok_to_drop_table => {
                self.created.retain(|t| *t != ghk);
                info!(
                    "cut-over checkpoint written to {} (binlog {}): --revert --old-table={} can undo this migration while that binlog is kept",
                    sql::quote_ident(&ghk),
                    cut_over.position,
                    cfg.old_table()
                );
            }
            Ok(()) => {}
            Err(e) => warn!(
                "writing the cut-over checkpoint failed ({e}): this migration cannot be reverted with --revert"
            ),
        }
        Ok(())
    }

    /// `--resume`: goes on with the helper tables an interrupted run left. Reads its checkpoint,
    /// checks that it is for the same ALTER and that the inspected server still has the binlog
    /// it names, and plans the copy from the ghost table as it is. From here on the helper
    /// tables are this run's (kept again if it fails).
    async fn prepare_resume(
        &mut self,
        pconn: &mut Conn,
        iconn: &mut Conn,
        original: &TableSchema,
    ) -> Result<Plan, MigrationError> {
        let cfg = self.cfg;
        let db = cfg.database.as_str();
        let (ghost, changelog, ghk) = (
            cfg.ghost_table(),
            cfg.changelog_table(),
            cfg.checkpoint_table(),
        );
        let checkpoint = read_checkpoint(
            pconn,
            db,
            &ghk,
            checkpoint::Row::Progress,
            format!(
                "--resume: there is no checkpoint table {}, so there is nothing to resume (was the interrupted run started with --checkpoint?). Run the migration without --resume",
                sql::quote_ident(&ghk)
            ),
            format!(
                "--resume: {} holds no checkpoint: the interrupted run stopped before writing its first one. Drop {}, {} and {}, then run the migration without --resume",
                sql::quote_ident(&ghk),
                sql::quote_ident(&ghost),
                sql::quote_ident(&changelog),
                sql::quote_ident(&ghk)
            ),
        )
        .await?;
        if checkpoint.alter.trim() != cfg.alter.body.trim() {
            return Err(refused(format!(
                "--resume: the checkpoint was written by a run with --alter=\"{}\", not \"{}\": resume with the same ALTER, or drop the helper tables and start this one without --resume",
                checkpoint.alter, cfg.alter.body
            )));
        }
        let Some(ghost_schema) = TableSchema::read(pconn, db, &ghost)
            .await
            .context("reading the ghost table")?
        else {
            return Err(refused(format!(
                "--resume: the checkpoint is there but the ghost table {} is not: if {} exists, the interrupted run swapped the tables already and the migration is done; otherwise drop {} and run the migration without --resume",
                sql::quote_ident(&ghost),
                sql::quote_ident(&cfg.old_table()),
                sql::quote_ident(&ghk)
            )));
        };
        checkpoint::check_binlog(iconn, &self.inspected, self.server_id, &checkpoint).await?;
        let plan = self.plan(pconn, original, &ghost_schema).await?;
        // The changelog carries only heartbeats and markers: made again if it is gone.
        pconn
            .query_drop(sql::create_changelog_if_missing(db, &changelog))
            .await
            .context(format!("creating the changelog table {changelog}"))?;
        self.created.extend([ghost, changelog, ghk]);
        self.checkpointed.store(true, Ordering::SeqCst);
        info!(
            "--resume: going on from the checkpoint: binlog {} of {}, {} rows copied{}",
            checkpoint.position,
            self.inspected,
            checkpoint.rows_copied,
            if checkpoint.copy.done {
                " (the copy is done)"
            } else {
                ""
            }
        );
        self.deferred = checkpoint.ghost_definition.clone();
        self.watermark = Arc::new(Watermark::starting_after(checkpoint.copy.through.clone()));
        self.stream_from = Some(datapath::Start {
            position: checkpoint.position.clone(),
            applied_events: 0,
            mark: None,
        });
        self.resumed = Some(checkpoint);
        Ok(plan)
    }

    /// What checkpoints are made of (`None` without `--checkpoint`/`--resume`, or before the data
    /// path runs).
    fn checkpoint_sources(&self) -> Option<checkpoint::Sources> {
        let cfg = self.cfg;
        if !cfg.checkpointing() {
            return None;
        }
        Some(checkpoint::Sources {
            alter: cfg.alter.body.clone(),
            server_id: self.server_id,
            watermark: self.watermark.clone(),
            status: self.path.as_ref()?.status.clone(),
            progress: self.controls.progress.clone(),
            ghost_definition: self.deferred.clone(),
        })
    }

    fn checkpoint_writer(&self) -> checkpoint::Writer {
        let cfg = self.cfg;
        checkpoint::Writer {
            primary: self.primary.clone(),
            creds: Credentials::primary(cfg),
            schema: cfg.database.clone(),
            table: cfg.checkpoint_table(),
            written: self.checkpointed.clone(),
        }
    }

    /// Writes a checkpoint now (with `--checkpoint`); a failure is logged: the last one written
    /// stays valid.
    async fn write_checkpoint(&mut self) {
        let Some(sources) = self.checkpoint_sources() else {
            return;
        };
        let writer = self.checkpoint_writer();
        let written = match self.primary_conn().await {
            Ok(conn) => writer
                .write(conn, &sources)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            warn!("writing the checkpoint failed: {e}");
        }
    }

    /// `--include-triggers`: the original table's triggers under their new names, each created
    /// once on the still empty ghost table and dropped at once, so one the new schema cannot
    /// hold, or a definer wraith may not set, shows now and not at the cut-over. Keeps each
    /// trigger's definer when the user may set it; else the user becomes the definer (as with
    /// gh-ost), which the log says.
    async fn prepare_triggers(
        &mut self,
        pconn: &mut Conn,
    ) -> Result<Vec<triggers::GhostTrigger>, MigrationError> {
        let cfg = self.cfg;
        let (db, ghost) = (cfg.database.as_str(), cfg.ghost_table());
        let found = triggers::read(pconn, db, &cfg.table)
            .await
            .context("reading the table's triggers")?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let taken: Vec<String> = pconn
            .exec(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
                (db,),
            )
            .await
            .context("reading the schema's trigger names")?;
        let (suffix, remove) = (
            cfg.flags.trigger_suffix.as_str(),
            cfg.flags.remove_trigger_suffix_if_exists,
        );
        let mut ghosts = triggers::for_ghost(&found, db, &ghost, suffix, remove, true);
        triggers::check_names(&ghosts, &taken).map_err(MigrationError::Other)?;
        let mut tried = triggers::create(pconn, &ghosts).await;
        if matches!(&tried, Err(mysql_async::Error::Server(s)) if s.code == 1227) {
            warn!("--include-triggers: this user may not create triggers for their definers; the new table's triggers get this user as their definer (as with gh-ost)");
            let _ = triggers::drop_all(pconn, db, &ghosts).await;
            ghosts = triggers::for_ghost(&found, db, &ghost, suffix, remove, false);
            tried = triggers::create(pconn, &ghosts).await;
        }
        let dropped = triggers::drop_all(pconn, db, &ghosts).await;
        tried.map_err(|e| {
            MigrationError::Other(format!(
                "--include-triggers: a trigger of {} cannot be created on the new table: {e}. Change the trigger or the ALTER, or drop the trigger and recreate it after the migration",
                sql::quote_ident(&cfg.table)
            ))
        })?;
        dropped.context("dropping the trial triggers from the ghost table")?;
        info!(
            "--include-triggers: {} trigger(s) will be created on the new table at the cut-over: {}",
            ghosts.len(),
            ghosts
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ghosts)
    }

    /// Records a state change in the changelog table (hint `state`).
    async fn write_state(&mut self, state: State) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let upsert = sql::changelog_upsert(
            &cfg.database,
            &cfg.changelog_table(),
            None,
            "state",
            &state.to_string(),
        );
        self.primary_conn()
            .await?
            .query_drop(upsert)
            .await
            .context("writing the state to the changelog table")
    }

    /// Drops what this run created (noop or failure). Returns what could not be dropped, or was
    /// kept: everything after an unresolved cut-over, the ghost table whenever the original
    /// table is missing (then it may be the only copy of the data), and after a failure once a
    /// checkpoint was written, the ghost, changelog and checkpoint tables (for `--resume`).
    async fn cleanup(&mut self, failed: bool) -> Vec<String> {
        if self.created.is_empty() {
            return Vec::new();
        }
        if self.unresolved {
            return std::mem::take(&mut self.created);
        }
        if failed && !self.swapped && self.checkpointed.load(Ordering::SeqCst) {
            // --checkpoint: what --resume goes on from.
            let cfg = self.cfg;
            let kept = [
                cfg.ghost_table(),
                cfg.changelog_table(),
                cfg.checkpoint_table(),
            ];
            self.created.retain(|t| !kept.contains(t));
            self.kept_for_resume = true;
            let mut left = Box::pin(self.cleanup(false)).await;
            left.splice(0..0, kept);
            return left;
        }
        let cfg = self.cfg;
        let created = std::mem::take(&mut self.created);
        let conn = match self.primary_conn().await {
            Ok(c) => c,
            Err(e) => {
                warn!("cannot reach the primary to drop the helper tables: {e}");
                return created;
            }
        };
        // A reader holding a helper table (a dump, say) makes a drop wait: not for long.
        let _ = conn
            .query_drop(format!(
                "SET SESSION lock_wait_timeout = {}",
                CLEANUP_LOCK_WAIT.as_secs()
            ))
            .await;
        let original_exists = conn
            .exec_first::<u64, _, _>(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&cfg.database, &cfg.table),
            )
            .await
            .ok()
            .flatten()
            .is_some_and(|n| n > 0);
        let mut left = Vec::new();
        let mut kept_only_copy = false;
        for table in created.into_iter().rev() {
            if table == cfg.ghost_table() && !original_exists {
                warn!(
                    "`{}` is missing: keeping {table}, which may be the only copy of the data",
                    cfg.table
                );
                kept_only_copy = true;
                left.push(table);
                continue;
            }
            if let Err(e) = conn
                .query_drop(sql::drop_table_if_exists(&cfg.database, &table))
                .await
            {
                warn!("could not drop {table}: {e}");
                left.push(table);
            }
        }
        self.unresolved |= kept_only_copy;
        left
    }
}

/// The binlog's lag at which a lock that waits for a marker is taken ([`Run::wait_low_lag`]):
/// writers wait for about that long under the lock, and the swap's other steps take 5 to 10 ms
/// more (the RENAME queued and proven, the gate), within 20 ms together. At 50 ms, a checksum's
/// snapshot taken as a backlog drained after a throttle held the writers 36 ms (its marker 30 ms
/// on the way back) in the load bench.
const LOCK_LAG: Duration = Duration::from_millis(10);

/// How long [`Run::wait_low_lag`] waits for it (then again, while the lag falls or is too long
/// for the lock).
const LOCK_LAG_WAIT: Duration = Duration::from_secs(3);

/// The lag "falls" when it is under this fraction of what it was [`LOCK_LAG_WAIT`] before (an
/// applier a third faster than the writes, draining 10 s of lag, meets it): [`Run::wait_low_lag`]
/// then waits on (locking over a backlog held the writers until the applier had drained it:
/// 1.08 s for a 9.9 s lag left by a throttle, in the load bench; 0.40 s for a 0.42 s lag in a
/// test). A lag that does not fall (a replica slowed by other work, say: waiting would not
/// shorten the lock) is locked over anyway, if the lock can see its marker within its timeout.
const LOCK_LAG_DRAINING: f64 = 0.9;

/// How long a run waits for the inspected replica to show a table it renamed back on the primary.
const REPLICATED_WITHIN: Duration = Duration::from_secs(60);

/// How long cleanup waits for a metadata lock on a helper table before it leaves it behind.
const CLEANUP_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long the catch-up, or the wait for a low lag before a lock, waits without a heartbeat
/// before it calls the binlog stream stuck.
const STALLED_STREAM: Duration = Duration::from_secs(300);

/// A run `--resume` or `--revert` cannot make, changing nothing, and why.
fn refused(why: String) -> MigrationError {
    MigrationError::Checkpoint(CheckpointError::Refused(why))
}

/// The checkpoint `row` of the checkpoint table `ghk`; refused with `no_table` when there is no
/// such table, with `no_row` when it holds no such row.
async fn read_checkpoint(
    pconn: &mut Conn,
    db: &str,
    ghk: &str,
    row: checkpoint::Row,
    no_table: String,
    no_row: String,
) -> Result<Checkpoint, MigrationError> {
    if TableSchema::read(pconn, db, ghk)
        .await
        .context("reading the checkpoint table")?
        .is_none()
    {
        return Err(refused(no_table));
    }
    Checkpoint::read(pconn, db, ghk, row)
        .await?
        .ok_or_else(|| refused(no_row))
}

/// The migration's key has a column that may hold NULL (`--allow-nullable-unique-key`).
fn nullable_key(plan: &Plan) -> bool {
    plan.key
        .columns
        .iter()
        .any(|c| plan.original.column(c).is_none_or(|c| c.nullable))
}

/// A marker token no earlier marker of this run has: `prefix` and the time in nanoseconds.
fn marker_token(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}{nanos}")
}

/// Checks `done` every `every` until it holds (true) or `limit` has passed (false); ends early
/// when `cancel` fires.
async fn poll(
    cancel: &CancellationToken,
    limit: Duration,
    every: Duration,
    done: impl Fn() -> bool,
) -> Result<bool, MigrationError> {
    let started = Instant::now();
    while started.elapsed() < limit {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return Err(MigrationError::Cancelled),
        }
        if done() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `--chunk-max-bytes` in rows of `avg_row_bytes` (the table's average, from the preflight): no
/// chunk holds more, whatever `--chunk-size` (or the socket's `chunk-size=`, or
/// `--chunk-target-millis`) asks; said when it caps `--chunk-size` from the start. `None`: no
/// budget, or a row length the server does not know.
fn chunk_rows_cap(cfg: &Config, avg_row_bytes: u64) -> Option<u64> {
    let most = crate::copy::chunker::rows_within(cfg.flags.chunk_max_bytes, avg_row_bytes)?;
    let asked = cfg.flags.chunk_size.max(1) as u64;
    if most < asked {
        info!(
            "rows average {avg_row_bytes} bytes (information_schema.TABLES): chunks of at most {most} rows, within --chunk-max-bytes={} (--chunk-size asks {asked})",
            cfg.flags.chunk_max_bytes
        );
    }
    Some(most)
}

/// Clears the postponing state when the postponement ends, however it ends.
struct PostponingFlag<'a>(&'a Controls);

impl Drop for PostponingFlag<'_> {
    fn drop(&mut self) {
        self.0.set_postponing(false);
    }
}

fn state_line(state: State) -> &'static str {
    match state {
        State::Validate => "validating: connecting, finding the primary, preflight checks",
        State::Prepare => "preparing: ghost table with the ALTER applied, changelog table",
        State::Copy => "copying rows while applying the binlog",
        State::CatchUp => {
            "row copy complete; applying the binlog until the ghost table has caught up"
        }
        State::Checksum => "checksum: comparing the ghost table with the original",
        State::Postpone => "cut-over postponed",
        State::CutOver => "cutting over",
        State::Cleanup => "cleaning up",
    }
}

/// `a`, `b` and `c` as "`a`, `b`, `c`".
fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| sql::quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_suffix(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("{label}{}", items.join(", "))
    }
}
