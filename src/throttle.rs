//! One answer to "may the migration write now?", with a reason, decided every 100 ms.
//!
//! In: the throttle sources gh-ost has (heartbeat lag on the inspected server against
//! `--max-lag-millis`, the lag of `--throttle-control-replicas`, `--max-load`, `--critical-load`,
//! `--throttle-query`, `--throttle-http`, the two flag files, a forced throttle from a command)
//! and the applier's backlog. Out: a [`Gate`] state the copy workers and the apply loop wait on,
//! the status line's `throttled, <reason>`, and the run's end with [`ThrottleError`] when the
//! critical load is met (the run is cancelled; its cleanup leaves the original untouched).
//! Invariant: no source's reading depends on the paused applier: lag is read from the heartbeat
//! row on each server itself, as gh-ost does, so a throttled run sees its lag fall and resumes.
//!
//! Each source that asks a server or a URL runs in a sampler task of its own and leaves its latest
//! verdict (`Some(reason)`: throttle) in [`Readings`]; [`decide`] combines them without waiting on
//! anything. A source that cannot be read throttles rather than being ignored (an unreachable
//! control replica, a failing throttle query, an HTTP error unless `--ignore-http-errors`).
//! While throttled, only the copy slows down when the backlog grows (one worker copies, so the copy
//! never starves under heavy writes).

pub mod http;
pub mod pace;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::LoadThreshold;
use crate::control::Knobs;
use crate::mysql::{self, sql, Credentials, Endpoint, Flavor};
use crate::progress::Progress;

pub use http::{get_status, HttpError};
pub use pace::Pacer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateState {
    Open,
    /// Only worker 0 copies; the reason is shown.
    OneWorker(String),
    /// Nobody copies and no event is applied; the reason is shown.
    Closed(String),
}

/// The copy workers' and the apply loop's gate, and the forced throttle of the `throttle` /
/// `no-throttle` commands.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: Arc<watch::Sender<GateState>>,
    rx: watch::Receiver<GateState>,
    forced: Arc<AtomicBool>,
    /// How much the copy rests between chunks, from the primary's write latency.
    pacer: Arc<Pacer>,
}

impl Default for Gate {
    /// An open gate that does not pace the copy.
    fn default() -> Self {
        Gate::new(Pacer::new(0.0))
    }
}

impl Gate {
    pub fn new(pacer: Pacer) -> Gate {
        let (tx, rx) = watch::channel(GateState::Open);
        Gate {
            tx: Arc::new(tx),
            rx,
            forced: Arc::default(),
            pacer: Arc::new(pacer),
        }
    }

    /// The copy's pacer (the heartbeat feeds it, the copy workers read it).
    pub fn pacer(&self) -> &Arc<Pacer> {
        &self.pacer
    }

    pub fn set(&self, state: GateState) {
        self.tx.send_if_modified(|s| {
            if *s != state {
                *s = state;
                true
            } else {
                false
            }
        });
    }

    pub fn state(&self) -> GateState {
        self.rx.borrow().clone()
    }

    /// A receiver of the gate's state (the apply loop pauses on it).
    pub fn watch(&self) -> watch::Receiver<GateState> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// `throttle` (true) / `no-throttle` (false): throttle regardless of every other source, or
    /// stop doing so. `throttle` closes the gate at once, so that once the command has answered
    /// nothing starts that a throttle holds back (a cut-over, say); `no-throttle` takes effect at
    /// the next decision (within 100 ms), when the other sources are read again.
    pub fn force(&self, on: bool) {
        self.forced.store(on, Ordering::Relaxed);
        let state = GateState::Closed(FORCED.into());
        if on && self.state() != state {
            tracing::info!("throttled: {FORCED}");
            self.set(state);
        }
    }

    pub fn forced(&self) -> bool {
        self.forced.load(Ordering::Relaxed)
    }

    /// Waits until `worker` may copy (or the run is cancelled).
    pub async fn wait_for_copy(&self, worker: usize, cancel: &CancellationToken) {
        let mut rx = self.rx.clone();
        loop {
            let allowed = match &*rx.borrow_and_update() {
                GateState::Open => true,
                GateState::OneWorker(_) => worker == 0,
                GateState::Closed(_) => false,
            };
            if allowed {
                return;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// After a chunk of row work (the copy's or the checksum's) that took `took`: rests
    /// `max(nice_ratio, pace)` times as long, the pace being the pacer's (shown on the status
    /// line). The pace is read again every `REST_SLICE` while resting: a rest begun at a high
    /// pace ends as soon as the pace has fallen below what was rested (a checksum chunk of a
    /// third of a second at 19x rested 6 s while the writes were already fast again), and
    /// lengthens if it rises. Returns how long it rested; returns early when `cancel` fires (the
    /// caller looks).
    pub async fn rest_after_chunk(
        &self,
        took: Duration,
        nice_ratio: f64,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Duration {
        let started = tokio::time::Instant::now();
        loop {
            let pacing = self.pacer.pacing();
            progress.set_pacing(pacing);
            let pace = pacing.map_or(0.0, |p| p.pace);
            let due = took.mul_f64(nice_ratio.max(pace).max(0.0));
            let rested = started.elapsed();
            if rested >= due {
                return rested;
            }
            tokio::select! {
                _ = tokio::time::sleep((due - rested).min(REST_SLICE)) => {}
                _ = cancel.cancelled() => return Duration::ZERO,
            }
        }
    }
}

/// How often a rest between chunks reads the pace again (the pacer steps every half second at
/// the default heartbeat).
const REST_SLICE: Duration = Duration::from_millis(100);

/// `--throttle-http`'s settings (the URL is a knob).
#[derive(Debug, Clone)]
pub struct HttpSource {
    pub interval: Duration,
    pub timeout: Duration,
    pub ignore_errors: bool,
}

/// `--critical-load`'s settings (the thresholds are a knob).
#[derive(Debug, Clone, Default)]
pub struct CriticalLoad {
    /// Check again after this long before stopping (zero: stop at once).
    pub interval: Duration,
    /// Throttle this long instead of stopping (zero: stop).
    pub hibernate: Duration,
}

/// A server and how to log in to it.
#[derive(Debug, Clone)]
pub struct Server {
    pub endpoint: Endpoint,
    pub creds: Credentials,
}

/// What the throttler watches. The limits an operator may change while the run goes on (lag,
/// loads, throttle query and URL, control replicas) are read from `knobs` at each check.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    pub knobs: Arc<Knobs>,
    pub flag_files: Vec<PathBuf>,
    /// Fraction of the backlog capacity above which only one worker copies.
    pub backlog_high: f64,
    /// The changelog table (`schema`, `table`) whose heartbeat row gives the lag.
    pub changelog: (String, String),
    /// How often the lag is read (gh-ost: every heartbeat interval).
    pub lag_interval: Duration,
    /// The inspected server: its heartbeat row gives the lag.
    pub inspected: Server,
    /// The primary: load, critical load and the throttle query are read there.
    pub primary: Server,
    /// How to log in to a control replica.
    pub replica_creds: Credentials,
    pub critical_load: CriticalLoad,
    pub http: HttpSource,
}

/// Each sampled source's latest verdict: `Some(reason)` throttles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// The inspected server's heartbeat lag; `None` until first read.
    pub lag: Option<Duration>,
    /// Why the lag could not be read (throttles).
    pub lag_unreadable: Option<String>,
    pub control_replicas: Option<String>,
    pub max_load: Option<String>,
    pub critical_load: Option<String>,
    pub query: Option<String>,
    pub http: Option<String>,
}

/// Why the throttler stopped the migration.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("critical-load met ({0}): the migration stopped (gh-ost's panic). Run it again when the load is lower, or raise --critical-load / set --critical-load-hibernate-seconds")]
    CriticalLoad(String),
}

/// The reason a `throttle` command gives.
const FORCED: &str = "commanded by user (throttle)";

/// Decides the gate state once, from the flag files, the forced throttle, the sampled readings
/// and the applier's backlog.
pub fn decide(
    settings: &ThrottleSettings,
    readings: &Readings,
    forced: bool,
    progress: &Progress,
) -> GateState {
    if forced {
        return GateState::Closed(FORCED.into());
    }
    for file in &settings.flag_files {
        if file.exists() {
            return GateState::Closed(format!("flag-file {}", file.display()));
        }
    }
    if let Some(reason) = &readings.critical_load {
        return GateState::Closed(reason.clone());
    }
    if let Some(reason) = &readings.lag_unreadable {
        return GateState::Closed(reason.clone());
    }
    match readings.lag {
        None => {
            return GateState::Closed(format!(
                "waiting for the first heartbeat on {}",
                settings.inspected.endpoint
            ))
        }
        Some(lag) if lag > settings.knobs.max_lag() => {
            return GateState::Closed(format!("lag={:.3}s", lag.as_secs_f64()));
        }
        Some(_) => {}
    }
    let other = [
        &readings.control_replicas,
        &readings.max_load,
        &readings.query,
        &readings.http,
    ];
    if let Some(reason) = other.into_iter().flatten().next() {
        return GateState::Closed(reason.clone());
    }
    let backlog = progress.backlog.load(Ordering::Relaxed) as f64;
    if backlog > settings.backlog_high * progress.backlog_capacity as f64 {
        return GateState::OneWorker(format!("applier backlog {}", backlog as u64));
    }
    GateState::Open
}

/// Starts the samplers and re-decides the gate every 100 ms until `cancel`; shows the state in
/// the status line. Returns an error (after cancelling `run_cancel`) when the critical load
/// is met.
pub async fn run(
    settings: ThrottleSettings,
    progress: Arc<Progress>,
    gate: Gate,
    cancel: CancellationToken,
    run_cancel: CancellationToken,
) -> Result<(), ThrottleError> {
    let settings = Arc::new(settings);
    // A source set at start throttles until it has been read once.
    let knobs = &settings.knobs;
    let unread = |on: bool, what: &str| on.then(|| format!("{what}: not read yet"));
    let readings = Arc::new(Mutex::new(Readings {
        control_replicas: unread(!knobs.control_replicas().is_empty(), "control-replicas"),
        max_load: unread(!knobs.max_load().is_empty(), "max-load"),
        query: unread(!knobs.throttle_query().is_empty(), "throttle-query"),
        http: unread(!knobs.throttle_http().is_empty(), "throttle-http"),
        ..Readings::default()
    }));
    let samplers = cancel.child_token();
    let _stop_samplers = samplers.clone().drop_guard();
    let (panic_tx, mut panic_rx) = tokio::sync::mpsc::channel::<String>(1);
    tokio::spawn(lag_sampler(
        settings.clone(),
        readings.clone(),
        samplers.clone(),
    ));
    // Every sampler runs, idle while its knob is empty: a command may set it at any time.
    tokio::spawn(replicas_sampler(
        settings.clone(),
        readings.clone(),
        samplers.clone(),
    ));
    tokio::spawn(primary_sampler(
        settings.clone(),
        readings.clone(),
        samplers.clone(),
    ));
    tokio::spawn(critical_sampler(
        settings.clone(),
        readings.clone(),
        panic_tx,
        samplers.clone(),
    ));
    tokio::spawn(http_sampler(
        settings.clone(),
        readings.clone(),
        samplers.clone(),
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            reason = panic_rx.recv() => if let Some(reason) = reason {
                tracing::error!("critical-load met: {reason}; stopping the migration");
                gate.set(GateState::Closed(format!("critical-load {reason}")));
                run_cancel.cancel();
                return Err(ThrottleError::CriticalLoad(reason));
            },
            _ = cancel.cancelled() => return Ok(()),
        }
        let now = crate::lock(&readings).clone();
        progress.set_inspected_lag(now.lag);
        let state = decide(&settings, &now, gate.forced(), &progress);
        let before = gate.state();
        if state != before {
            match (&state, &before) {
                (GateState::Open, _) => tracing::info!("throttle: released"),
                (GateState::OneWorker(r), GateState::OneWorker(_)) => {
                    tracing::debug!("throttle: one copy worker ({r})")
                }
                (GateState::OneWorker(r), _) => tracing::info!("throttle: one copy worker ({r})"),
                (GateState::Closed(r), GateState::Closed(old)) if same_source(r, old) => {
                    tracing::debug!("throttled: {r}")
                }
                (GateState::Closed(r), _) => tracing::info!("throttled: {r}"),
            }
        }
        update_status(&progress, &state);
        gate.set(state);
    }
}

/// Shows `throttled, <reason>` while the state is one the throttler owns (not postponing or
/// cutting over, which the migration shows).
fn update_status(progress: &Progress, state: &GateState) {
    let mut shown = crate::lock(&progress.state);
    if *shown != "migrating" && !shown.starts_with("throttled") {
        return;
    }
    *shown = match state {
        GateState::Closed(r) => format!("throttled, {r}"),
        _ => "migrating".into(),
    };
}

/// Two reasons name the same source (`lag=1.2s` and `lag=1.3s`): logged once.
fn same_source(a: &str, b: &str) -> bool {
    source(a) == source(b)
}

/// The source a reason names, without its reading: `lag` for `lag=1.234s`, `flag-file` for
/// `flag-file /tmp/x`, `max-load` for `max-load Threads_running=30 >= 25`.
pub fn source(reason: &str) -> &str {
    reason.split(['=', ' ']).next().unwrap_or_default()
}

/// A connection opened on first use and again after an error.
struct Lazy {
    server: Server,
    conn: Option<Conn>,
}

impl Lazy {
    fn new(server: Server) -> Lazy {
        Lazy { server, conn: None }
    }

    async fn conn(&mut self) -> Result<&mut Conn, String> {
        if self.conn.is_none() {
            let conn = mysql::connect(&self.server.endpoint, &self.server.creds)
                .await
                .map_err(|e| e.to_string())?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// The first row of `query`, or why it could not be read (the connection is then reopened
    /// next time).
    async fn first<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        query: &str,
    ) -> Result<Option<T>, String> {
        let conn = self.conn().await?;
        let result = tokio::time::timeout(Duration::from_secs(5), conn.query_first(query)).await;
        match result {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => {
                if mysql::failure(&e) == mysql::Failure::ConnectionLost {
                    self.conn = None;
                }
                Err(e.to_string())
            }
            Err(_) => {
                self.conn = None;
                Err("no answer within 5s".into())
            }
        }
    }
}

/// Seconds since the epoch, as a float.
fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The lag a heartbeat value (seconds since the epoch, as written) shows now.
fn heartbeat_lag(value: &str) -> Option<Duration> {
    let sent: f64 = value.trim().parse().ok()?;
    Some(Duration::from_secs_f64((now_secs() - sent).max(0.0)))
}

/// Sleeps `every`, or returns false when cancelled.
async fn pause(every: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => true,
        _ = cancel.cancelled() => false,
    }
}

/// The inspected server's lag: its own copy of the heartbeat row, read every lag interval.
async fn lag_sampler(
    settings: Arc<ThrottleSettings>,
    readings: Arc<Mutex<Readings>>,
    cancel: CancellationToken,
) {
    let query = sql::heartbeat_value(&settings.changelog.0, &settings.changelog.1);
    let mut server = Lazy::new(settings.inspected.clone());
    loop {
        let read = server.first::<String>(&query).await;
        {
            let mut r = crate::lock(&readings);
            match read {
                Ok(Some(value)) => {
                    r.lag = heartbeat_lag(&value);
                    r.lag_unreadable = None;
                }
                // Not replicated yet: `lag` stays unknown (waiting for the first heartbeat).
                Ok(None) => r.lag_unreadable = None,
                Err(e) => {
                    r.lag_unreadable = Some(format!(
                        "lag unreadable on {}: {e}",
                        settings.inspected.endpoint
                    ))
                }
            }
        }
        if !pause(settings.lag_interval, &cancel).await {
            return;
        }
    }
}

/// The lag of one control replica: its heartbeat row, or else its `Seconds_Behind_Master`.
async fn replica_lag(
    server: &mut Lazy,
    flavor: &mut Option<Flavor>,
    heartbeat: &str,
) -> Result<Duration, String> {
    if let Ok(Some(value)) = server.first::<String>(heartbeat).await {
        if let Some(lag) = heartbeat_lag(&value) {
            return Ok(lag);
        }
    }
    if flavor.is_none() {
        let conn = server.conn().await?;
        *flavor = Some(Flavor::detect(conn).await.map_err(|e| e.to_string())?);
    }
    let flavor = flavor.as_ref().expect("just detected");
    let conn = server.conn().await?;
    let row: Option<mysql_async::Row> = conn
        .query_first(flavor.replica_status_sql())
        .await
        .map_err(|e| e.to_string())?;
    let row = row.ok_or("it is not a replica")?;
    let behind = flavor.replica_status_columns()[4];
    match row.get_opt::<Option<u64>, _>(behind) {
        Some(Ok(Some(seconds))) => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("{behind} is NULL (replication stopped)")),
    }
}

/// `--throttle-control-replicas`: each replica's lag against `--max-lag-millis`; one that cannot
/// be read throttles.
async fn replicas_sampler(
    settings: Arc<ThrottleSettings>,
    readings: Arc<Mutex<Readings>>,
    cancel: CancellationToken,
) {
    let heartbeat = sql::heartbeat_value(&settings.changelog.0, &settings.changelog.1);
    let mut watched: Vec<Endpoint> = Vec::new();
    let mut servers: Vec<(Lazy, Option<Flavor>)> = Vec::new();
    loop {
        let replicas = settings.knobs.control_replicas();
        if replicas != watched {
            servers = replicas
                .iter()
                .map(|endpoint| {
                    let server = Server {
                        endpoint: endpoint.clone(),
                        creds: settings.replica_creds.clone(),
                    };
                    (Lazy::new(server), None)
                })
                .collect();
            watched = replicas;
        }
        let max_lag = settings.knobs.max_lag();
        let mut verdict = None;
        for (server, flavor) in &mut servers {
            let endpoint = server.server.endpoint.clone();
            match replica_lag(server, flavor, &heartbeat).await {
                Ok(lag) if lag > max_lag => {
                    verdict = Some(format!(
                        "control-replica {endpoint} lag={:.3}s",
                        lag.as_secs_f64()
                    ));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    verdict = Some(format!("control-replica {endpoint} unreadable: {e}"));
                    break;
                }
            }
        }
        crate::lock(&readings).control_replicas = verdict;
        if !pause(
            settings.lag_interval.max(Duration::from_millis(100)),
            &cancel,
        )
        .await
        {
            return;
        }
    }
}

/// The first of `thresholds` the primary's status meets (`value >= threshold`, as gh-ost), as a
/// reason; or why the status could not be read.
async fn load_met(
    server: &mut Lazy,
    thresholds: &[LoadThreshold],
) -> Result<Option<String>, String> {
    for t in thresholds {
        let row: Option<(String, String)> = server.first(&sql::global_status(&t.variable)).await?;
        let value: f64 = row
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("no numeric status variable {}", t.variable))?;
        if value >= t.threshold {
            return Ok(Some(format!("{}={value} >= {}", t.variable, t.threshold)));
        }
    }
    Ok(None)
}

/// `--max-load` and `--throttle-query`, on the primary, every second (as gh-ost).
async fn primary_sampler(
    settings: Arc<ThrottleSettings>,
    readings: Arc<Mutex<Readings>>,
    cancel: CancellationToken,
) {
    let mut server = Lazy::new(settings.primary.clone());
    loop {
        let load = match load_met(&mut server, &settings.knobs.max_load()).await {
            Ok(met) => met.map(|m| format!("max-load {m}")),
            Err(e) => Some(format!("max-load unreadable: {e}")),
        };
        let throttle_query = settings.knobs.throttle_query();
        let query = if throttle_query.is_empty() {
            None
        } else {
            match server.first::<mysql_async::Row>(&throttle_query).await {
                Ok(row) => {
                    let first = row.and_then(|r| r.get_opt::<Option<f64>, _>(0));
                    match first {
                        Some(Ok(Some(v))) if v > 0.0 => {
                            Some(format!("throttle-query returned {v}"))
                        }
                        Some(Err(_)) => {
                            Some("throttle-query: its first column is not a number".into())
                        }
                        _ => None,
                    }
                }
                Err(e) => Some(format!("throttle-query failed: {e}")),
            }
        };
        {
            let mut r = crate::lock(&readings);
            r.max_load = load;
            r.query = query;
        }
        if !pause(Duration::from_secs(1), &cancel).await {
            return;
        }
    }
}

/// `--critical-load`, on the primary, every second: met (and met again after
/// `--critical-load-interval-millis`, when set) stops the run through `panic`, or throttles
/// for `--critical-load-hibernate-seconds`.
async fn critical_sampler(
    settings: Arc<ThrottleSettings>,
    readings: Arc<Mutex<Readings>>,
    panic: tokio::sync::mpsc::Sender<String>,
    cancel: CancellationToken,
) {
    let critical = &settings.critical_load;
    let mut server = Lazy::new(settings.primary.clone());
    loop {
        // An unreadable status is logged, not a reason to stop the migration.
        let thresholds = settings.knobs.critical_load();
        let mut met = match load_met(&mut server, &thresholds).await {
            Ok(met) => met,
            Err(e) => {
                tracing::warn!("critical-load: reading the primary's status failed: {e}");
                None
            }
        };
        if let Some(first) = met.take().filter(|_| !critical.interval.is_zero()) {
            tracing::warn!(
                "critical-load met once ({first}); checking again in {} ms",
                critical.interval.as_millis()
            );
            if !pause(critical.interval, &cancel).await {
                return;
            }
            met = load_met(&mut server, &thresholds)
                .await
                .unwrap_or_default()
                .map(|again| {
                    format!(
                        "{again}, met again after {} ms",
                        critical.interval.as_millis()
                    )
                });
        }
        if let Some(reason) = met {
            if critical.hibernate.is_zero() {
                let _ = panic.send(reason).await;
                return;
            }
            tracing::warn!(
                "critical-load met ({reason}): hibernating for {}s",
                critical.hibernate.as_secs()
            );
            crate::lock(&readings).critical_load = Some(format!(
                "critical-load hibernation ({reason}) for {}s",
                critical.hibernate.as_secs()
            ));
            if !pause(critical.hibernate, &cancel).await {
                return;
            }
            crate::lock(&readings).critical_load = None;
        }
        if !pause(Duration::from_secs(1), &cancel).await {
            return;
        }
    }
}

/// `--throttle-http`: a status other than 200 throttles; so does an error, unless
/// `--ignore-http-errors`.
async fn http_sampler(
    settings: Arc<ThrottleSettings>,
    readings: Arc<Mutex<Readings>>,
    cancel: CancellationToken,
) {
    let source = &settings.http;
    loop {
        let url = settings.knobs.throttle_http();
        let verdict = if url.is_empty() {
            None
        } else {
            match get_status(&url, source.timeout).await {
                Ok(200) => None,
                Ok(code) => Some(format!("throttle-http {url} returned {code}")),
                Err(_) if source.ignore_errors => None,
                Err(e) => Some(format!("throttle-http {url}: {e}")),
            }
        };
        crate::lock(&readings).http = verdict;
        if !pause(source.interval, &cancel).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThrottleSettings {
        let server = Server {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            creds: Credentials {
                user: "u".into(),
                password: String::new(),
                charset: String::new(),
                tls: None,
                connect_timeout: Duration::from_secs(1),
            },
        };
        let cfg = crate::config::for_tests(&[]);
        ThrottleSettings {
            knobs: Arc::new(Knobs::from_config(&cfg).unwrap()),
            flag_files: vec![],
            backlog_high: 0.5,
            changelog: ("d".into(), "_t_ghc".into()),
            lag_interval: Duration::from_millis(100),
            inspected: server.clone(),
            replica_creds: server.creds.clone(),
            primary: server,
            critical_load: CriticalLoad::default(),
            http: HttpSource {
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                ignore_errors: false,
            },
        }
    }

    fn closed(state: GateState) -> String {
        match state {
            GateState::Closed(r) => r,
            other => panic!("not throttled: {other:?}"),
        }
    }

    #[test]
    fn every_source_throttles_with_its_reason_and_a_forced_throttle_wins() {
        let s = settings();
        let p = Progress::new(1000);
        let fine = Readings {
            lag: Some(Duration::from_millis(100)),
            ..Readings::default()
        };
        assert_eq!(decide(&s, &fine, false, &p), GateState::Open);
        assert!(closed(decide(&s, &Readings::default(), false, &p)).contains("first heartbeat"));
        let lagging = Readings {
            lag: Some(Duration::from_secs(2)),
            ..fine.clone()
        };
        assert_eq!(closed(decide(&s, &lagging, false, &p)), "lag=2.000s");
        let loaded = Readings {
            max_load: Some("max-load Threads_running=30 >= 25".into()),
            ..fine.clone()
        };
        assert!(closed(decide(&s, &loaded, false, &p)).starts_with("max-load"));
        let http = Readings {
            http: Some("throttle-http x returned 500".into()),
            ..fine.clone()
        };
        assert!(closed(decide(&s, &http, false, &p)).contains("500"));
        assert!(closed(decide(&s, &fine, true, &p)).contains("commanded"));
    }

    #[test]
    fn a_growing_backlog_leaves_one_copy_worker() {
        let s = settings();
        let p = Progress::new(1000);
        p.backlog.store(600, Ordering::Relaxed);
        let fine = Readings {
            lag: Some(Duration::ZERO),
            ..Readings::default()
        };
        assert!(matches!(
            decide(&s, &fine, false, &p),
            GateState::OneWorker(_)
        ));
    }

    #[test]
    fn a_heartbeat_value_gives_the_lag() {
        let lag = heartbeat_lag(&format!("{:.6}", now_secs() - 3.0)).unwrap();
        assert!(lag >= Duration::from_millis(2900) && lag < Duration::from_secs(4));
        assert_eq!(heartbeat_lag("x"), None);
    }

    #[test]
    fn the_gate_can_be_forced_shut() {
        let gate = Gate::default();
        assert!(!gate.forced());
        gate.clone().force(true);
        assert!(gate.forced());
        // Shut at once, not at the throttler's next decision.
        assert_eq!(gate.state(), GateState::Closed(FORCED.into()));
        gate.force(false);
        assert!(!gate.forced());
    }
}
