//! One answer to "may the copy proceed?", with a reason.
//!
//! In: the applier's backlog, the replication lag read back from heartbeats, throttle flag files,
//! and (later) every other gh-ost throttle source. Out: a [`Gate`] state the copy workers wait on.
//! The applier has priority over the copier: when the backlog grows, only one copy worker keeps
//! going (so the copy slows down but never starves, gh-ost's failure under heavy writes); when
//! the lag exceeds `--max-lag-millis` or a flag file exists, the copy pauses.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::progress::Progress;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateState {
    Open,
    /// Only worker 0 copies; the reason is shown.
    OneWorker(String),
    /// Nobody copies; the reason is shown.
    Closed(String),
}

/// The copy workers' gate.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: Arc<watch::Sender<GateState>>,
    rx: watch::Receiver<GateState>,
}

impl Default for Gate {
    fn default() -> Self {
        let (tx, rx) = watch::channel(GateState::Open);
        Gate {
            tx: Arc::new(tx),
            rx,
        }
    }
}

impl Gate {
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
}

/// What the throttler watches.
#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    pub max_lag: Duration,
    pub flag_files: Vec<PathBuf>,
    /// Fraction of the backlog capacity above which only one worker copies.
    pub backlog_high: f64,
}

/// Decides the gate state once.
pub fn decide(settings: &ThrottleSettings, progress: &Progress) -> GateState {
    for file in &settings.flag_files {
        if file.exists() {
            return GateState::Closed(format!("flag-file {}", file.display()));
        }
    }
    let Some(age) = progress.heartbeat_age() else {
        return GateState::Closed("waiting for the first heartbeat through the binlog".into());
    };
    let lag = progress
        .lag()
        .max(age.saturating_sub(Duration::from_secs(1)));
    if lag > settings.max_lag {
        return GateState::Closed(format!("lag={:.3}s", lag.as_secs_f64()));
    }
    let backlog = progress.backlog.load(Ordering::Relaxed) as f64;
    if backlog > settings.backlog_high * progress.backlog_capacity as f64 {
        return GateState::OneWorker(format!("applier backlog {}", backlog as u64));
    }
    GateState::Open
}

/// Re-decides the gate every 100 ms until cancelled, and shows the state in the status line.
pub async fn run(
    settings: ThrottleSettings,
    progress: Arc<Progress>,
    gate: Gate,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let state = decide(&settings, &progress);
        if std::mem::discriminant(&state) != std::mem::discriminant(&gate.state()) {
            match &state {
                GateState::Open => tracing::info!("throttle: released"),
                GateState::OneWorker(r) => tracing::info!("throttle: one copy worker ({r})"),
                GateState::Closed(r) => tracing::info!("throttled: {r}"),
            }
        }
        if progress.copy_finished.get().is_none() {
            progress.set_state(match &state {
                GateState::Closed(r) => format!("throttled, {r}"),
                _ => "migrating".into(),
            });
        }
        gate.set(state);
    }
}
