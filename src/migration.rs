//! One migration, as a state machine: Validate → Prepare → Copy → (Postpone) → CutOver → Cleanup.
//!
//! In: a validated [`Config`] and the one [`CancellationToken`] every task of the run listens to.
//! Out: a [`Report`] on success, or a [`MigrationError`] that says what happened and what was left
//! in the database. Invariants owned here: a failed preflight creates nothing; a run that stops
//! on error, on cancellation or as a noop drops the helper tables it created and leaves the
//! original table untouched; every state change is logged and written to the changelog table.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::{self, Applier, ApplyPlan, Control, LoopSpec, LoopStatus};
use crate::binlog::{BinlogPosition, ColumnInfo, StreamConfig, Streamer, WatchedTable};
use crate::changelog::Changelog;
use crate::config::{Config, CutOverMode};
use crate::copy::{self, CopySpec};
use crate::cutover::{self, CutOverError, CutOverSpec};
use crate::inspect::{self, checks, plan, Facts, Plan, TableSchema};
use crate::mysql::names::NameCase;
use crate::mysql::{self, sql, topology, ConnectError, Credentials, Endpoint, Flavor};
use crate::progress::Progress;
use crate::throttle::{self, Gate, ThrottleSettings};

/// The states of a migration, as written to the changelog's `state` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Validate,
    Prepare,
    Copy,
    /// The rows are copied; the applier catches up with the binlog.
    CatchUp,
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
    pub plan: Plan,
    pub row_estimate: u64,
    /// The tables were swapped (false for a noop run).
    pub swapped: bool,
    pub rows_copied: u64,
    pub events_applied: u64,
    /// How long writers were blocked at cut-over (when swapped).
    pub locked_for: Option<Duration>,
    pub copy_time: Duration,
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
    Apply(#[from] apply::LoopError),
    #[error(transparent)]
    CutOver(#[from] CutOverError),
    #[error("cut-over failed {attempts} times (--default-retries); last error: {last}")]
    CutOverGaveUp { attempts: i64, last: CutOverError },
    #[error("{0}")]
    Other(String),
    #[error("cancelled")]
    Cancelled,
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
}

impl Failed {
    /// What the database holds after the failure, for the person at the terminal.
    pub fn aftermath(&self) -> String {
        if self.swapped {
            return format!(
                "The tables WERE swapped: the table now holds the migrated data and the original is kept as the old table. Helper tables left: {}.",
                if self.left_behind.is_empty() { "none".to_string() } else { self.left_behind.join(", ") }
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
    /// Background tasks (streamer loop, heartbeat, throttler, status) and their stop signal.
    tasks: Vec<JoinHandle<()>>,
    tasks_cancel: CancellationToken,
    /// Set once the tables are swapped: from then on nothing may be dropped automatically.
    swapped: bool,
    gate: Gate,
    loop_error: Arc<std::sync::Mutex<Option<apply::LoopError>>>,
}

/// Runs the migration described by `cfg`.
pub async fn run(cfg: &Config, cancel: CancellationToken) -> Result<Report, Failed> {
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
        tasks: Vec::new(),
        tasks_cancel: cancel.child_token(),
        swapped: false,
        gate: Gate::default(),
        loop_error: Arc::default(),
    };
    let started = Instant::now();
    let outcome = run.steps().await;
    run.stop_tasks().await;
    // Cleanup: a noop run and a failed run drop what they created.
    let left_behind = run.cleanup().await;
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
            })
        }
    }
}

impl Run<'_> {
    /// Enters `state`: logs it and, once the changelog table exists, records it there (hint
    /// `state`), as gh-ost does.
    async fn enter(&mut self, state: State) -> Result<(), MigrationError> {
        if self.cancel.is_cancelled() {
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
        self.enter(State::Validate).await?;
        let (facts, mut iconn) = self.validate().await?;
        let flavor = facts.inspected.flavor.clone();
        let original = facts.table.clone().expect("table-exists check passed");
        let mut pconn = match self.pconn.take() {
            Some(c) => c,
            None => mysql::connect(&self.primary, &Credentials::primary(cfg)).await?,
        };

        self.enter(State::Prepare).await?;
        let plan = self.prepare(&mut pconn, &original).await;
        self.pconn = Some(pconn);
        let plan = plan?;
        let row_estimate = inspect::row_count(
            &mut iconn,
            &cfg.database,
            &cfg.table,
            cfg.flags.exact_rowcount,
        )
        .await
        .context("counting rows")?;
        info!(
            "plan: key {} ({}); {} columns copied{}{}; about {row_estimate} rows",
            plan.key.name,
            plan.key.columns.join(", "),
            plan.columns.len(),
            list_suffix(", dropped: ", &plan.dropped),
            list_suffix(", added: ", &plan.added),
        );
        self.write_state(State::Prepare).await?;

        // Copy, with the binlog applied from a position taken before the first chunk is read.
        self.enter(State::Copy).await?;
        let progress = Arc::new(Progress::new(1000));
        progress
            .rows_estimate
            .store(row_estimate, Ordering::Relaxed);
        let (control, status) = self
            .start_data_path(
                &mut iconn,
                &flavor,
                facts.inspected.name_case,
                &plan,
                &progress,
            )
            .await?;
        progress.copy_started.get_or_init(Instant::now);
        self.copy(&plan, &progress).await?;
        let _ = progress.copy_finished.set(Instant::now());
        let copy_time = progress
            .copy_started
            .get()
            .map(|s| s.elapsed())
            .unwrap_or_default();
        info!(
            "row copy complete: {} rows in {:.1}s",
            progress.rows_copied.load(Ordering::Relaxed),
            copy_time.as_secs_f64()
        );
        let skipped = progress.rows_skipped.load(Ordering::Relaxed);
        if skipped > 0 {
            warn!("{skipped} rows were skipped by the copy (--allow-skipped-rows): the new table does not have them");
        }
        self.enter(State::CatchUp).await?;
        self.wait_caught_up(&progress).await?;

        let mut locked_for = None;
        if cfg.execute() {
            self.postpone(&progress).await?;
            self.enter(State::CutOver).await?;
            progress.set_state("cutting over");
            let pconn = self.pconn.as_mut().expect("primary connection");
            let primary_flavor = Flavor::detect(pconn)
                .await
                .context("reading the primary's version")?;
            if cfg.cut_over == CutOverMode::Atomic
                && cfg.flags.allow_setup_metadata_lock_instruments
            {
                let present: Option<u8> = pconn
                    .query_first(primary_flavor.metadata_lock_instrument_sql())
                    .await
                    .context("checking the metadata lock instrumentation")?;
                if present.is_none() {
                    info!("enabling the metadata lock instrumentation (--allow-setup-metadata-lock-instruments)");
                    pconn
                        .query_drop(primary_flavor.metadata_lock_instrument_setup_sql())
                        .await
                        .context("enabling the metadata lock instrumentation")?;
                }
            }
            let result = self.cut_over(primary_flavor, control, status).await;
            if matches!(
                result,
                Ok(_)
                    | Err(MigrationError::CutOver(
                        CutOverError::LostWrites(..) | CutOverError::RenameNotSeen(_)
                    ))
            ) {
                self.swapped = true;
                self.created.retain(|t| *t != cfg.ghost_table());
            }
            locked_for = Some(result?);
            self.created.retain(|t| *t != cfg.ghost_table());
            if cfg.flags.ok_to_drop_table {
                let old = cfg.old_table();
                if let Some(c) = self.pconn.as_mut() {
                    c.query_drop(sql::drop_table_if_exists(&cfg.database, &old))
                        .await
                        .context(format!("dropping {old}"))?;
                }
            }
        } else {
            info!("noop run (no --execute): rows copied and binlog applied to {}, not swapping; dropping the helper tables", sql::quote_ident(&cfg.ghost_table()));
        }
        self.enter(State::Cleanup).await?;
        Ok(Report {
            inspected: self.inspected.clone(),
            primary: self.primary.clone(),
            flavor,
            plan,
            row_estimate,
            swapped: self.swapped,
            rows_copied: progress.rows_copied.load(Ordering::Relaxed),
            events_applied: progress.events_applied.load(Ordering::Relaxed),
            locked_for,
            copy_time,
        })
    }

    /// Starts the streamer (from the inspected server's current position), the apply loop, the
    /// heartbeat, the throttler and the status line. Returns the apply loop's control and status.
    /// `names`: how the inspected server compares names.
    async fn start_data_path(
        &mut self,
        iconn: &mut Conn,
        flavor: &Flavor,
        names: NameCase,
        plan: &Plan,
        progress: &Arc<Progress>,
    ) -> Result<(watch::Sender<Control>, watch::Receiver<LoopStatus>), MigrationError> {
        let cfg = self.cfg;
        let db = cfg.database.as_str();
        let (file, pos): (String, u64) = {
            let row: Option<mysql_async::Row> = iconn
                .query_first(flavor.binlog_status_sql())
                .await
                .context("reading the binlog position")?;
            let row = row.ok_or_else(|| {
                MigrationError::Other(format!(
                    "{} shows no binlog position; is log_bin on?",
                    self.inspected
                ))
            })?;
            (
                row.get_opt::<String, _>("File")
                    .and_then(|v| v.ok())
                    .unwrap_or_default(),
                row.get_opt::<u64, _>("Position")
                    .and_then(|v| v.ok())
                    .unwrap_or(4),
            )
        };
        info!(
            "streaming the binlog of {} from {file}:{pos}",
            self.inspected
        );
        let watched = vec![
            WatchedTable {
                schema: db.to_string(),
                table: cfg.table.clone(),
                columns: plan
                    .original
                    .columns
                    .iter()
                    .map(|c| c.info.clone())
                    .collect(),
            },
            WatchedTable {
                schema: db.to_string(),
                table: cfg.changelog_table(),
                columns: changelog_columns(iconn, db, &cfg.changelog_table()).await?,
            },
        ];
        let mut stream_config = StreamConfig::new(
            mysql::opts(&self.inspected, &Credentials::inspected(cfg)),
            cfg.flags.replica_server_id,
            BinlogPosition::new(file, pos),
        );
        if cfg.flags.binlogsyncer_max_reconnect_attempts > 0 {
            stream_config.max_reconnects = cfg.flags.binlogsyncer_max_reconnect_attempts;
        } else {
            stream_config.max_reconnects = 60;
        }
        stream_config.name_case = names;
        let streamer = Streamer::start(stream_config, watched, self.tasks_cancel.clone());

        let strict = !cfg.flags.skip_strict_mode;
        let pcreds = Credentials::primary(cfg);
        let mut apply_plan = ApplyPlan::new(plan, db, &cfg.ghost_table());
        apply_plan.allow_skipped_rows = cfg.flags.allow_skipped_rows;
        let applier = Applier::connect(&self.primary, &pcreds, apply_plan, strict)
            .await
            .map_err(|e| MigrationError::Other(e.to_string()))?;
        let (control_tx, control_rx) = watch::channel(Control::Apply);
        let (status_tx, status_rx) = watch::channel(LoopStatus::default());
        let spec = LoopSpec {
            schema: db.to_string(),
            original: cfg.table.clone(),
            changelog: cfg.changelog_table(),
            names,
            batch_size: cfg.flags.dml_batch_size as usize,
        };
        let (loop_progress, loop_cancel, run_cancel) = (
            progress.clone(),
            self.tasks_cancel.clone(),
            self.cancel.clone(),
        );
        let loop_error: Arc<std::sync::Mutex<Option<apply::LoopError>>> = Arc::default();
        self.loop_error = loop_error.clone();
        self.tasks.push(tokio::spawn(async move {
            let result = apply::run_loop(
                streamer,
                applier,
                spec,
                loop_progress,
                control_rx,
                status_tx,
                loop_cancel,
            )
            .await;
            if let Err(e) = result {
                warn!("apply loop stopped: {e}");
                *loop_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                // The migration cannot go on without the applier.
                run_cancel.cancel();
            }
        }));

        let heartbeat_conn = mysql::connect(&self.primary, &pcreds).await?;
        let changelog = Changelog {
            schema: db.to_string(),
            table: cfg.changelog_table(),
        };
        let interval = Duration::from_millis(cfg.flags.heartbeat_interval_millis as u64);
        let hb_cancel = self.tasks_cancel.clone();
        let reconnect = (self.primary.clone(), pcreds.clone());
        self.tasks.push(tokio::spawn(async move {
            changelog
                .heartbeat_loop(heartbeat_conn, reconnect, interval, hb_cancel)
                .await
        }));

        let mut flag_files = Vec::new();
        for f in [
            &cfg.flags.throttle_flag_file,
            &cfg.flags.throttle_additional_flag_file,
        ] {
            if !f.is_empty() {
                flag_files.push(std::path::PathBuf::from(f));
            }
        }
        let settings = ThrottleSettings {
            max_lag: Duration::from_millis(cfg.flags.max_lag_millis as u64),
            flag_files,
            backlog_high: 0.5,
        };
        let (t_progress, t_gate, t_cancel) = (
            progress.clone(),
            self.gate.clone(),
            self.tasks_cancel.clone(),
        );
        self.tasks.push(tokio::spawn(throttle::run(
            settings, t_progress, t_gate, t_cancel,
        )));

        let (s_progress, s_cancel) = (progress.clone(), self.tasks_cancel.clone());
        self.tasks
            .push(tokio::spawn(crate::progress::report(s_progress, s_cancel)));
        Ok((control_tx, status_rx))
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
        spec.nice_ratio = cfg.flags.nice_ratio;
        spec.strict = !cfg.flags.skip_strict_mode;
        spec.allow_skipped_rows = cfg.flags.allow_skipped_rows;
        let chunk_size = Arc::new(AtomicI64::new(cfg.flags.chunk_size));
        let result = copy::run(
            Arc::new(spec),
            chunk_size,
            self.gate.clone(),
            progress.clone(),
            self.cancel.clone(),
        )
        .await;
        match result {
            Err(copy::CopyError::Cancelled) => Err(self.why_cancelled()),
            other => Ok(other?),
        }
    }

    /// The error behind a cancellation: the apply loop's failure if it had one.
    fn why_cancelled(&self) -> MigrationError {
        match self
            .loop_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => MigrationError::Apply(e),
            None => MigrationError::Cancelled,
        }
    }

    /// Waits until the applier has caught up: empty backlog and a fresh heartbeat read back.
    async fn wait_caught_up(&self, progress: &Progress) -> Result<(), MigrationError> {
        let fresh =
            Duration::from_millis((self.cfg.flags.heartbeat_interval_millis as u64 * 3).max(500));
        loop {
            if self.cancel.is_cancelled() {
                return Err(self.why_cancelled());
            }
            // Close enough: the rest is drained under the cut-over lock, when writes are blocked.
            let backlog = progress.backlog.load(Ordering::Relaxed);
            let lag = progress.lag();
            if backlog < progress.backlog_capacity / 10
                && lag < Duration::from_secs(1)
                && progress.heartbeat_age().is_some_and(|age| age < fresh)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stays synced while the postpone flag file exists.
    async fn postpone(&mut self, progress: &Progress) -> Result<(), MigrationError> {
        let file = &self.cfg.flags.postpone_cut_over_flag_file;
        if file.is_empty() || !std::path::Path::new(file).exists() {
            return Ok(());
        }
        self.enter(State::Postpone).await?;
        info!("cut-over postponed while {file} exists");
        progress.set_state("postponing cut-over");
        while std::path::Path::new(file).exists() {
            if self.cancel.is_cancelled() {
                return Err(self.why_cancelled());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        info!("{file} is gone: cutting over");
        Ok(())
    }

    /// Runs the cut-over, retrying failed attempts (nothing swapped) up to --default-retries.
    async fn cut_over(
        &self,
        flavor: Flavor,
        control: watch::Sender<Control>,
        mut status: watch::Receiver<LoopStatus>,
    ) -> Result<Duration, MigrationError> {
        let cfg = self.cfg;
        let spec = CutOverSpec {
            primary: self.primary.clone(),
            creds: Credentials::primary(cfg),
            flavor,
            schema: cfg.database.clone(),
            table: cfg.table.clone(),
            ghost: cfg.ghost_table(),
            old: cfg.old_table(),
            changelog: cfg.changelog_table(),
            lock_timeout: Duration::from_secs(cfg.flags.cut_over_lock_timeout_seconds as u64),
        };
        let mut attempt = 0i64;
        loop {
            attempt += 1;
            if self.cancel.is_cancelled() {
                return Err(self.why_cancelled());
            }
            let token = format!(
                "{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            );
            let result = match cfg.cut_over {
                CutOverMode::Atomic => cutover::atomic(&spec, &control, &mut status, &token).await,
                CutOverMode::TwoStep => {
                    cutover::two_step(&spec, &control, &mut status, &token).await
                }
            };
            match result {
                Ok(swapped) => return Ok(swapped.locked_for),
                Err(e @ (CutOverError::LostWrites(..) | CutOverError::RenameNotSeen(_))) => {
                    return Err(MigrationError::CutOver(e));
                }
                Err(e) if attempt >= cfg.flags.default_retries => {
                    return Err(MigrationError::CutOverGaveUp {
                        attempts: attempt,
                        last: e,
                    });
                }
                Err(e) => {
                    let pause = if cfg.flags.cut_over_exponential_backoff {
                        Duration::from_secs(
                            (1u64 << attempt.min(16))
                                .min(cfg.flags.exponential_backoff_max_interval as u64),
                        )
                    } else {
                        Duration::from_secs(1)
                    };
                    warn!(
                        "cut-over attempt {attempt} failed: {e}; retrying in {}s",
                        pause.as_secs()
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.cancel.cancelled() => return Err(self.why_cancelled()),
                    }
                }
            }
        }
    }

    /// Stops the background tasks and waits for them.
    async fn stop_tasks(&mut self) {
        self.tasks_cancel.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Connects, finds the primary, gathers facts and runs the preflight checks.
    async fn validate(&mut self) -> Result<(Facts, Conn), MigrationError> {
        let cfg = self.cfg;
        for flag in &cfg.not_yet_acted_on {
            warn!(
                "--{} is accepted but not acted on by this build yet",
                flag.replace('_', "-")
            );
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
                        mysql_async::Error::Other(Box::new(std::io::Error::other(e.to_string())))
                    })?;
                    let f = Flavor::detect(&mut c).await?;
                    topology::replica_status(&mut c, &f).await
                }
            },
        )
        .await?;
        if self.primary != self.inspected {
            info!(
                "primary is {}; the binlog is read from {}",
                self.primary, self.inspected
            );
            self.pconn = Some(mysql::connect(&self.primary, &pcreds).await?);
        }
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
            for t in [&ghost, &changelog] {
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
        pconn
            .query_drop(sql::create_table_like(db, &ghost, &cfg.table))
            .await
            .context(format!("creating the ghost table {ghost}"))?;
        self.created.push(ghost.clone());
        if let Err(e) = pconn
            .query_drop(sql::alter_table(db, &ghost, &cfg.alter.body))
            .await
        {
            return Err(MigrationError::AlterRejected(match e {
                mysql_async::Error::Server(s) => format!("{} (error {})", s.message, s.code),
                other => other.to_string(),
            }));
        }
        let ghost_schema = TableSchema::read(pconn, db, &ghost)
            .await
            .context("reading the ghost table")?
            .ok_or_else(|| {
                MigrationError::AlterRejected("the ghost table vanished after the ALTER".into())
            })?;
        let plan = plan::build(
            original,
            &ghost_schema,
            &cfg.alter.renames,
            cfg.flags.skip_renamed_columns,
            cfg.flags.allow_nullable_unique_key,
        )?;
        pconn
            .query_drop(sql::create_changelog(db, &changelog))
            .await
            .context(format!("creating the changelog table {changelog}"))?;
        self.created.push(changelog);
        Ok(plan)
    }

    /// Records a state change in the changelog table (hint `state`).
    async fn write_state(&mut self, state: State) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let Some(conn) = self.pconn.as_mut() else {
            return Ok(());
        };
        conn.query_drop(sql::changelog_upsert(
            &cfg.database,
            &cfg.changelog_table(),
            None,
            "state",
            &state.to_string(),
        ))
        .await
        .context("writing the state to the changelog table")
    }

    /// Drops what this run created (noop or failure). Returns what could not be dropped.
    async fn cleanup(&mut self) -> Vec<String> {
        if self.created.is_empty() {
            return Vec::new();
        }
        let cfg = self.cfg;
        let mut conn = match self.pconn.take() {
            Some(c) => c,
            None => match mysql::connect(&self.primary, &Credentials::primary(cfg)).await {
                Ok(c) => c,
                Err(_) => return std::mem::take(&mut self.created),
            },
        };
        let mut left = Vec::new();
        for table in std::mem::take(&mut self.created).into_iter().rev() {
            if let Err(e) = conn
                .query_drop(sql::drop_table_if_exists(&cfg.database, &table))
                .await
            {
                warn!("could not drop {table}: {e}");
                left.push(table);
            }
        }
        left
    }
}

/// The changelog's columns, as the streamer decodes them.
async fn changelog_columns(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<ColumnInfo>, MigrationError> {
    // The changelog is created on the primary; the inspected replica may not have it yet.
    for _ in 0..200 {
        let schema = TableSchema::read(conn, db, table)
            .await
            .context("reading the changelog's columns")?;
        if let Some(schema) = schema {
            return Ok(schema.columns.into_iter().map(|c| c.info).collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(MigrationError::Other(format!(
        "the changelog table {table} did not replicate to the inspected server within 10s; is replication running?"
    )))
}

fn state_line(state: State) -> &'static str {
    match state {
        State::Validate => "validating: connecting, finding the primary, preflight checks",
        State::Prepare => "preparing: ghost table with the ALTER applied, changelog table",
        State::Copy => "copying rows while applying the binlog",
        State::CatchUp => {
            "row copy complete; applying the binlog until the ghost table has caught up"
        }
        State::Postpone => "cut-over postponed",
        State::CutOver => "cutting over",
        State::Cleanup => "cleaning up",
    }
}

fn list_suffix(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("{label}{}", items.join(", "))
    }
}
