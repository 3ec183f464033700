//! The run's progress as metrics: DogStatsD gauges pushed over UDP and a Prometheus endpoint.
//!
//! In: the run's [`Progress`] counters and throttle [`Gate`], and [`Settings`] from the flags
//! (`--statsd-addr`, `--statsd-tags`, `--runtime-metrics-interval`, `--metrics-port`,
//! `--metrics-bind`). Out: gh-ost's `gh_ost.*` gauges sent every interval ([`statsd`]), the text
//! exposition format on `GET /metrics` ([`prometheus`]), and a `runtime:` log line of the
//! process's own figures ([`process`]). Invariant: metrics only observe; a send that fails, a
//! scrape that hangs or a bad request never slows or fails the migration. The one failure they
//! cause is at start, before anything is created: [`Metrics::bind`] refuses a port in use.
//!
//! The port and the UDP socket are opened by [`Metrics::bind`] when the run starts; the tasks run
//! from when the data path starts until it stops ([`Metrics::start`], with the data path's token),
//! and the statsd task sends once more as they stop, so the cut-over's figures are sent too.

pub mod process;
pub mod prometheus;
pub mod statsd;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::progress::Progress;
use crate::throttle::{Gate, GateState};

/// What the flags ask for (validated by `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Where `GET /metrics` is served (`--metrics-bind`, `--metrics-port`); `None`: not served.
    pub prometheus: Option<SocketAddr>,
    /// Where gauges are pushed (`--statsd-addr`, `--statsd-tags`); `None`: nowhere.
    pub statsd: Option<StatsdTarget>,
    /// How often the gauges are pushed and the runtime line is logged.
    pub interval: Duration,
    /// The process's own figures (memory, CPU, threads) are sent and served
    /// (`--runtime-metrics-interval=0` turns them off, as gh-ost's Go runtime metrics).
    pub runtime: bool,
    /// A `runtime:` line is logged every interval (`--runtime-metrics-interval` given, not 0).
    pub log_runtime: bool,
}

/// A statsd server and the tags every metric carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdTarget {
    /// `--statsd-addr` as given, for messages.
    pub given: String,
    pub addr: SocketAddr,
    /// `key:value` each.
    pub tags: Vec<String>,
}

/// How often gauges are pushed without `--runtime-metrics-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Why the metrics could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-port={port}: cannot listen on {addr}: {source}; choose a free port (or leave --metrics-port out to serve no metrics)")]
    Listen {
        port: u16,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--statsd-addr={given}: cannot open a UDP socket to send to {addr}: {source}")]
    Socket {
        given: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The run's metrics, opened but not yet running.
pub struct Metrics {
    settings: Settings,
    listener: Option<TcpListener>,
    statsd: Option<statsd::Sender>,
    /// Labels of `wraith_info`.
    info: Vec<(&'static str, String)>,
}

impl Metrics {
    /// Opens the Prometheus port and the statsd socket that `cfg` asks for.
    pub async fn bind(cfg: &Config) -> Result<Metrics, MetricsError> {
        let settings = cfg.metrics.clone();
        let listener = match settings.prometheus {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| MetricsError::Listen {
                            port: addr.port(),
                            addr,
                            source,
                        })?;
                tracing::info!("serving metrics on http://{addr}/metrics once the copy starts");
                Some(listener)
            }
            None => None,
        };
        let statsd = match &settings.statsd {
            Some(target) => {
                let sender =
                    statsd::Sender::open(target)
                        .await
                        .map_err(|source| MetricsError::Socket {
                            given: target.given.clone(),
                            addr: target.addr,
                            source,
                        })?;
                tracing::info!(
                    "sending statsd metrics to {} every {:?}",
                    target.addr,
                    settings.interval
                );
                Some(sender)
            }
            None => None,
        };
        Ok(Metrics {
            settings,
            listener,
            statsd,
            info: vec![
                ("database", cfg.database.clone()),
                ("table", cfg.table.clone()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
        })
    }

    /// Serves and pushes until `stop`; the statsd task sends once more as it stops.
    pub fn start(
        self,
        progress: Arc<Progress>,
        gate: Gate,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let Metrics {
            settings,
            listener,
            statsd,
            info,
        } = self;
        let (p, g, runtime, info) = (
            progress.clone(),
            gate.clone(),
            settings.runtime,
            Arc::new(info),
        );
        let render = move || prometheus::render(&Snapshot::take(&p, &g, runtime), &info);
        tokio::spawn(async move {
            let serve = async {
                if let Some(listener) = listener {
                    prometheus::serve(listener, render, stop.clone()).await;
                }
            };
            let push = async {
                if statsd.is_some() || settings.log_runtime {
                    push(&settings, statsd, &progress, &gate, &stop).await;
                }
            };
            tokio::join!(serve, push);
        })
    }
}

/// Sends the gauges and logs the runtime line every interval, and once more at `stop`.
async fn push(
    settings: &Settings,
    mut statsd: Option<statsd::Sender>,
    progress: &Progress,
    gate: &Gate,
    stop: &CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        let snapshot = Snapshot::take(progress, gate, settings.runtime);
        if let Some(sender) = statsd.as_mut() {
            sender.send(&snapshot).await;
        }
        if settings.log_runtime && !stopping {
            if let Some(p) = &snapshot.process {
                tracing::info!("runtime: {}", p.summary());
            }
        }
        if stopping {
            return;
        }
    }
}

/// The states of the status line, as metric labels (`postponing cut-over`: `postponing_cut_over`).
pub const STATES: &[&str] = &[
    "migrating",
    "building_deferred_indexes",
    "throttled",
    "checksumming",
    "postponing_cut_over",
    "cutting_over",
];

/// Everything the metrics show, read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub rows_copied: u64,
    /// The estimate, never below the rows copied (as in the status line).
    pub rows_estimate: u64,
    pub events_applied: u64,
    pub backlog: u64,
    pub backlog_capacity: u64,
    pub lag: Duration,
    /// Time since the last heartbeat came back (since the start, before the first).
    pub heartbeat_lag: Duration,
    /// Why the copy and the applier are held; `None`: they are not.
    pub throttled: Option<String>,
    /// One of [`STATES`] (or a new state's name, the same way).
    pub state: String,
    pub cut_over_attempts: u64,
    /// How long the swap blocked writers (`None`: no swap yet).
    pub writer_wait: Option<Duration>,
    /// The process's own figures (`None`: not asked for, or not readable here).
    pub process: Option<process::Stats>,
}

impl Snapshot {
    pub fn take(progress: &Progress, gate: &Gate, runtime: bool) -> Snapshot {
        let rows_copied = progress.rows_copied.load(Ordering::Relaxed);
        let shown = progress.state();
        Snapshot {
            rows_copied,
            rows_estimate: progress
                .rows_estimate
                .load(Ordering::Relaxed)
                .max(rows_copied),
            events_applied: progress.events_applied.load(Ordering::Relaxed),
            backlog: progress.backlog.load(Ordering::Relaxed) as u64,
            backlog_capacity: progress.backlog_capacity as u64,
            lag: progress.lag(),
            heartbeat_lag: progress
                .heartbeat_age()
                .unwrap_or_else(|| progress.started.elapsed()),
            throttled: match gate.state() {
                GateState::Closed(reason) => Some(reason),
                _ => None,
            },
            state: state_name(&shown),
            cut_over_attempts: progress.cut_over_attempts.load(Ordering::Relaxed),
            writer_wait: progress.writer_wait(),
            process: runtime.then(process::sample).flatten(),
        }
    }
}

/// The status line's state as a label: the words before any `, <reason>`, joined by `_`.
pub fn state_name(shown: &str) -> String {
    let words = shown.split(',').next().unwrap_or_default().trim();
    words.replace([' ', '-'], "_")
}

#[cfg(test)]
impl Snapshot {
    /// A run midway through its copy, for the formatting tests.
    pub(crate) fn example() -> Snapshot {
        Snapshot {
            rows_copied: 53_000,
            rows_estimate: 100_000,
            events_applied: 812,
            backlog: 250,
            backlog_capacity: 1000,
            lag: Duration::from_millis(20),
            heartbeat_lag: Duration::from_millis(80),
            throttled: None,
            state: "migrating".into(),
            cut_over_attempts: 0,
            writer_wait: None,
            process: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_named_without_their_reason() {
        assert_eq!(state_name("migrating"), "migrating");
        assert_eq!(state_name("throttled, lag=1.234s"), "throttled");
        assert_eq!(state_name("postponing cut-over"), "postponing_cut_over");
        assert_eq!(state_name("cutting over"), "cutting_over");
    }

    #[test]
    fn a_snapshot_reads_the_progress_and_the_gate() {
        let progress = Progress::new(1000);
        progress.rows_estimate.store(10, Ordering::Relaxed);
        progress.rows_copied.store(25, Ordering::Relaxed);
        progress.cut_over_attempts.store(2, Ordering::Relaxed);
        progress.swapped(Duration::from_millis(40));
        progress.set_state("throttled, flag-file /tmp/x");
        let gate = Gate::default();
        gate.set(GateState::Closed("flag-file /tmp/x".into()));
        let s = Snapshot::take(&progress, &gate, false);
        assert_eq!((s.rows_copied, s.rows_estimate), (25, 25));
        assert_eq!(s.throttled.as_deref(), Some("flag-file /tmp/x"));
        assert_eq!(s.state, "throttled");
        assert_eq!(s.cut_over_attempts, 2);
        assert_eq!(s.writer_wait, Some(Duration::from_millis(40)));
        assert_eq!(s.process, None);
        gate.set(GateState::OneWorker("applier backlog 900".into()));
        assert_eq!(Snapshot::take(&progress, &gate, false).throttled, None);
    }
}
