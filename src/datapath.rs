//! The background half of a run's data path: binlog streamer, apply loop, heartbeat, throttler,
//! status line and the priority that follows the lag, started together and owned by one [`DataPath`].
//!
//! In: the run's [`Config`], the inspected server's connection and flavor, the [`Plan`], the
//! run's [`Controls`] (progress, gate and knobs), and the run's cancellation token. Out: the apply loop's
//! [`Control`], [`LoopStatus`] and [`KeyLog`] for the checksum and the cut-over, and the apply
//! loop's result, returned through its join handle ([`DataPath::failure`], [`DataPath::stop`]). Invariants: the tasks listen to a
//! token of their own, so cancelling the run (a signal) never stops the applier in the middle of
//! a cut-over, only [`DataPath::stop`] does; an apply loop that fails or panics cancels the run,
//! so the copy and every wait stop and cleanup runs; so does a throttler that meets the critical
//! load, whose error [`DataPath::stop`] returns as the run's cause.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::apply::{self, Applier, ApplyPlan, Control, KeyLog, LoopSpec, LoopStatus};
use crate::binlog::{BinlogPosition, ColumnInfo, StreamConfig, Streamer, WatchedTable};
use crate::changelog::{Changelog, Fence};
use crate::checkpoint::AppliedMark;
use crate::config::Config;
use crate::control::{Controls, Knobs};
use crate::copy::{CopyFront, Tombstones};
use crate::inspect::{Plan, TableSchema};
use crate::mysql::names::NameCase;
use crate::mysql::{self, Credentials, Endpoint, Flavor};
use crate::priority;
use crate::throttle::{self, ThrottleSettings};

/// Why the data path could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Connect(#[from] mysql::ConnectError),
    #[error(transparent)]
    Apply(#[from] apply::LoopError),
    #[error(transparent)]
    Throttle(#[from] throttle::ThrottleError),
    #[error("{0}")]
    Other(String),
}

/// The largest binlog event the streamer accepts: the largest packet the protocol allows.
const BINLOG_PACKET: usize = 1 << 30;

/// The running tasks of the data path.
pub struct DataPath {
    pub control: watch::Sender<Control>,
    pub status: watch::Receiver<LoopStatus>,
    /// The keys the apply loop wrote since the checksum's last snapshot.
    pub keylog: Arc<KeyLog>,
    /// Some when the copy reads without shared locks: shared by its workers and the applier.
    pub tombstones: Option<Arc<Tombstones>>,
    /// Some when the applier leaves the changes of rows not yet copied to the copy: shared by
    /// the chunker and the applier.
    pub front: Option<Arc<CopyFront>>,
    apply: Option<JoinHandle<Result<(), apply::LoopError>>>,
    /// The throttler: ends with an error when the critical load stops the run.
    throttle: Option<JoinHandle<Result<(), throttle::ThrottleError>>>,
    others: Vec<JoinHandle<()>>,
    /// Stops these tasks only.
    cancel: CancellationToken,
}

/// Where the servers are.
/// Where a run streams the binlog from when not from the inspected server's current position:
/// `--resume`'s checkpoint, or where a `--revert` goes on from.
#[derive(Debug, Clone)]
pub struct Start {
    pub position: BinlogPosition,
    /// Rows events of the original table in the transaction after `position` that are already
    /// applied (a `--revert` that stopped inside a large transaction:
    /// [`crate::checkpoint::AppliedAt`]).
    pub applied_events: u64,
    /// `--revert`: each batch records how far it applied the binlog here.
    pub mark: Option<AppliedMark>,
}

pub struct Servers<'a> {
    pub inspected: &'a Endpoint,
    pub primary: &'a Endpoint,
    pub flavor: &'a Flavor,
    /// How the inspected server compares table names (`lower_case_table_names`).
    pub names: NameCase,
}

impl DataPath {
    /// Starts the streamer (from `from`, a resumed run's checkpoint, or else the inspected
    /// server's current position), the apply loop, the heartbeat, the throttler and the status
    /// line.
    pub async fn start(
        cfg: &Config,
        servers: Servers<'_>,
        iconn: &mut Conn,
        plan: &Plan,
        controls: &Controls,
        from: Option<Start>,
        run_cancel: &CancellationToken,
    ) -> Result<DataPath, PathError> {
        let (progress, gate, knobs) = (&controls.progress, &controls.gate, &controls.knobs);
        let cancel = CancellationToken::new();
        let mut path = DataPath {
            control: watch::channel(Control::Apply).0,
            status: watch::channel(LoopStatus::default()).1,
            keylog: Arc::new(KeyLog::new()),
            tombstones: None,
            front: None,
            apply: None,
            throttle: None,
            others: Vec::new(),
            cancel: cancel.clone(),
        };
        let db = cfg.database.as_str();
        let Start {
            position,
            applied_events,
            mark,
        } = match from {
            Some(start) => start,
            None => Start {
                position: binlog_position(iconn, servers.flavor, servers.inspected).await?,
                applied_events: 0,
                mark: None,
            },
        };
        progress.set_position(position.to_string());
        tracing::info!(
            "streaming the binlog of {} from {position}",
            servers.inspected
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
        // The server sends binlog events of up to 1 GB whatever its max_allowed_packet (an update
        // of a row carries two images of it); the driver would otherwise refuse what does not
        // fit the server's setting.
        let stream_opts = mysql_async::OptsBuilder::from_opts(mysql::opts(
            servers.inspected,
            &Credentials::inspected(cfg),
        ))
        .max_allowed_packet(Some(BINLOG_PACKET));
        let mut stream_config = StreamConfig::new(
            stream_opts.into(),
            cfg.flags.replica_server_id,
            position.clone(),
        );
        stream_config.max_reconnects = if cfg.flags.binlogsyncer_max_reconnect_attempts > 0 {
            cfg.flags.binlogsyncer_max_reconnect_attempts
        } else {
            60
        };
        stream_config.name_case = servers.names;
        let streamer = Streamer::start(stream_config, watched, cancel.clone());

        let pcreds = Credentials::primary(cfg);
        let mut apply_plan = ApplyPlan::new(plan, db, &cfg.ghost_table());
        apply_plan.allow_skipped_rows = cfg.flags.allow_skipped_rows;
        // --revert: the old table keeps the values of the columns the migration dropped.
        apply_plan.preserve_unmapped = cfg.flags.revert;
        apply_plan.panic_on_warnings = cfg.flags.panic_on_warnings;
        // Copy chunks read without shared locks where the applier can tell keys apart exactly
        // (it coalesces): the keys it deletes meanwhile are deleted again after each chunk. Not
        // in a checkpointed run: the keys to delete again live in memory, and a chunk a killed
        // run committed but had not yet cleaned would be resumed above the watermark with a row
        // whose delete was applied before the checkpoint's position.
        if apply_plan.coalesces()
            && !cfg.flags.copy_with_shared_locks
            && !cfg.flags.checkpoint
            && !cfg.flags.resume
        {
            path.tombstones = Some(Arc::new(Tombstones::default()));
        }
        let mut applier = Applier::connect(
            servers.primary,
            &pcreds,
            apply_plan,
            !cfg.flags.skip_strict_mode,
        )
        .await
        .map_err(|e| PathError::Other(e.to_string()))?;
        applier.report_to(progress.clone());
        if let Some(mark) = mark {
            applier.mark_applied(mark);
        }
        let mut fence = None;
        if let Some(t) = &path.tombstones {
            applier.track_deletes_for(t.clone());
            // A heartbeat is written as soon as a proof waits for one: a second is ample, and
            // past it the changes count as not proven (the primary is in trouble).
            let proofs = Arc::new(Fence::new(Duration::from_secs(1)));
            applier.prove_visible_with(proofs.clone());
            fence = Some(proofs);
            if cfg.flags.apply_ahead_of_copy {
                tracing::info!("--apply-ahead-of-copy: every change is applied, including those to rows the copy has not reached");
            } else if !plan.integer_key() {
                tracing::info!("the key is not of integer columns: every change is applied, including those to rows the copy has not reached");
            } else if !applier
                .primary_commits_in_binlog_order(servers.flavor)
                .await
            {
                tracing::info!("the primary does not make transactions visible in binlog order (binlog_order_commits=OFF): every change is applied, including those to rows the copy has not reached");
            } else {
                let front = Arc::new(CopyFront::default());
                applier.leave_to_copy_ahead_of(front.clone());
                path.front = Some(front);
            }
        }
        let (control_tx, control_rx) = watch::channel(Control::Apply);
        // Nothing is applied yet: every event from where the stream starts is still to come.
        let (status_tx, status_rx) = watch::channel(LoopStatus {
            applied_through: Some(position),
            ..LoopStatus::default()
        });
        path.control = control_tx;
        path.status = status_rx;
        let spec = LoopSpec {
            schema: db.to_string(),
            original: cfg.table.clone(),
            changelog: cfg.changelog_table(),
            names: servers.names,
            batch_size: knobs.dml_batch_size_handle(),
            held_limit: apply::stream_loop::HELD_LIMIT,
            gate: gate.watch(),
            linger: Duration::from_millis(cfg.flags.apply_batch_millis),
            applied_at_start: applied_events,
            backlog_nice_ratio: cfg.flags.backlog_nice_ratio.max(0.0),
        };
        let (loop_progress, loop_cancel, keylog) =
            (progress.clone(), cancel.clone(), path.keylog.clone());
        let on_failure = CancelRunOnFailure(run_cancel.clone());
        path.apply = Some(tokio::spawn(async move {
            let result = apply::run_loop(
                streamer,
                applier,
                spec,
                loop_progress,
                control_rx,
                status_tx,
                keylog,
                loop_cancel,
            )
            .await;
            if let Err(e) = &result {
                warn!("apply loop stopped: {e}");
            } else {
                std::mem::forget(on_failure);
            }
            result
        }));

        let changelog = Changelog {
            schema: db.to_string(),
            table: cfg.changelog_table(),
        };
        let interval = Duration::from_millis(cfg.flags.heartbeat_interval_millis as u64);
        let pcreds_for_throttle = pcreds.clone();
        let reconnect = (servers.primary.clone(), pcreds);
        let hb_cancel = cancel.clone();
        let (pacer, applied) = (gate.pacer().clone(), progress.clone());
        let timed = move |latency| {
            pacer.observe(latency, applied.events_applied.load(Ordering::Relaxed));
        };
        // The heartbeat stands for the application's writes: timed at the servers' priority,
        // not at wraith's (`priority`).
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let heartbeat = priority::on_own_thread("heartbeat", move || async move {
            let conn = match mysql::connect(&reconnect.0, &reconnect.1).await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = connected_tx.send(Err(e));
                    return;
                }
            };
            let _ = connected_tx.send(Ok(()));
            changelog
                .heartbeat_loop(conn, reconnect, interval, timed, fence, hb_cancel)
                .await
        })
        .map_err(|e| PathError::Other(format!("starting the heartbeat's thread: {e}")))?;
        path.others.push(heartbeat);
        connected.await.map_err(|_| {
            PathError::Other("the heartbeat's thread ended before it connected".into())
        })??;

        let settings = throttle_settings(cfg, &servers, pcreds_for_throttle, knobs.clone());
        path.throttle = Some(tokio::spawn(throttle::run(
            settings,
            progress.clone(),
            gate.clone(),
            cancel.clone(),
            run_cancel.clone(),
        )));
        path.others.push(tokio::spawn(crate::progress::report(
            progress.clone(),
            cancel.clone(),
        )));
        let behind = progress.clone();
        path.others.push(tokio::spawn(priority::follow_lag(
            move || behind.own_lag(interval),
            cancel.clone(),
        )));
        Ok(path)
    }

    /// Runs the task `start` spawns alongside the path's own: it gets the token that stops them,
    /// and [`DataPath::stop`] waits for it (the metrics).
    pub fn attach(&mut self, start: impl FnOnce(CancellationToken) -> JoinHandle<()>) {
        self.others.push(start(self.cancel.clone()));
    }

    /// The apply loop's failure, once it has ended with one; `None` while it runs.
    pub async fn failure(&mut self) -> Option<PathError> {
        if !self.apply.as_ref().is_some_and(|h| h.is_finished()) {
            return None;
        }
        let handle = self.apply.take()?;
        joined(handle.await)
    }

    /// The apply loop has ended (failed, or saw the swap).
    pub fn loop_ended(&self) -> bool {
        self.apply.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Stops every task and waits for them; returns the apply loop's failure, or else the
    /// throttler's (the critical load), if there was one.
    pub async fn stop(mut self) -> Option<PathError> {
        self.cancel.cancel();
        let failure = match self.apply.take() {
            Some(handle) => joined(handle.await),
            None => None,
        };
        let throttled = match self.throttle.take() {
            Some(handle) => handle.await.ok().and_then(Result::err),
            None => None,
        };
        let throttled = throttled.map(PathError::Throttle);
        let failure = failure.or(throttled);
        for task in self.others.drain(..) {
            let _ = task.await;
        }
        failure
    }
}

/// What the throttler watches: the flags (validated by config) and the knobs.
fn throttle_settings(
    cfg: &Config,
    servers: &Servers<'_>,
    pcreds: Credentials,
    knobs: Arc<Knobs>,
) -> ThrottleSettings {
    let flags = &cfg.flags;
    let flag_files = [
        &flags.throttle_flag_file,
        &flags.throttle_additional_flag_file,
    ]
    .into_iter()
    .filter(|f| !f.is_empty())
    .map(std::path::PathBuf::from)
    .collect();
    let icreds = Credentials::inspected(cfg);
    ThrottleSettings {
        knobs,
        flag_files,
        backlog_high: 0.5,
        changelog: (cfg.database.clone(), cfg.changelog_table()),
        lag_interval: Duration::from_millis(flags.heartbeat_interval_millis as u64),
        inspected: throttle::Server {
            endpoint: servers.inspected.clone(),
            creds: icreds.clone(),
        },
        primary: throttle::Server {
            endpoint: servers.primary.clone(),
            creds: pcreds,
        },
        replica_creds: icreds,
        critical_load: throttle::CriticalLoad {
            interval: Duration::from_millis(flags.critical_load_interval_millis as u64),
            hibernate: Duration::from_secs(flags.critical_load_hibernate_seconds as u64),
        },
        http: throttle::HttpSource {
            interval: Duration::from_millis(flags.throttle_http_interval_millis as u64),
            timeout: Duration::from_millis(flags.throttle_http_timeout_millis as u64),
            ignore_errors: flags.ignore_http_errors,
        },
    }
}

/// The apply loop's failure from its join result (a panic included).
fn joined(
    result: Result<Result<(), apply::LoopError>, tokio::task::JoinError>,
) -> Option<PathError> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(PathError::Apply(e)),
        Err(join) if join.is_panic() => Some(PathError::Other(format!(
            "the apply loop panicked ({}); this is a bug in wraith, please report it",
            panic_text(join.into_panic())
        ))),
        Err(_) => None,
    }
}

/// The message of a panic payload.
pub fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// Cancels the run when dropped: on an apply loop's error return and on its panic (unwinding
/// drops it); forgotten when the loop ends well.
struct CancelRunOnFailure(CancellationToken);

impl Drop for CancelRunOnFailure {
    fn drop(&mut self) {
        // The migration cannot go on without the applier.
        self.0.cancel();
    }
}

/// The inspected server's current binlog position.
async fn binlog_position(
    iconn: &mut Conn,
    flavor: &Flavor,
    inspected: &Endpoint,
) -> Result<BinlogPosition, PathError> {
    let row: Option<mysql_async::Row> = iconn
        .query_first(flavor.binlog_status_sql())
        .await
        .map_err(|source| PathError::Sql {
            context: "reading the binlog position",
            source,
        })?;
    let row = row.ok_or_else(|| {
        PathError::Other(format!(
            "{inspected} shows no binlog position; is log_bin on?"
        ))
    })?;
    let file = row
        .get_opt::<String, _>("File")
        .and_then(|v| v.ok())
        .unwrap_or_default();
    let pos = row
        .get_opt::<u64, _>("Position")
        .and_then(|v| v.ok())
        .unwrap_or(4);
    Ok(BinlogPosition::new(file, pos))
}

/// The changelog's columns, as the streamer decodes them.
async fn changelog_columns(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<ColumnInfo>, PathError> {
    // The changelog is created on the primary; the inspected replica may not have it yet.
    for _ in 0..200 {
        let schema = TableSchema::read(conn, db, table)
            .await
            .map_err(|source| PathError::Sql {
                context: "reading the changelog's columns",
                source,
            })?;
        // No columns: read while the replica was dropping an earlier run's changelog (the new
        // one is created after that drop): not there yet.
        if let Some(schema) = schema.filter(|s| !s.columns.is_empty()) {
            return Ok(schema.columns.into_iter().map(|c| c.info).collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(PathError::Other(format!(
        "the changelog table {table} did not replicate to the inspected server within 10s; is replication running?"
    )))
}
