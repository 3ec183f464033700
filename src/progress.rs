//! Counters every stage updates, and the gh-ost status line built from them.
//!
//! In: atomics bumped by the copier, the applier, the streamer and the checksum. Out: the status
//! line (`Copy: 53000/100000 53.0%; Applied: 812; Backlog: 0/1000; Time: ...`) logged
//! at gh-ost's cadence and answered to `sup`, and an `indicatif` bar when standard error is a
//! terminal.
//! The line is gh-ost's; once the checksum has started (or when `--skip-checksum` skips it) it
//! ends with `; Checksum: <what it is doing>`. The same counters feed `metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::throttle::pace::Pacing;

const NEVER: u64 = u64::MAX;

#[derive(Debug)]
pub struct Progress {
    pub started: Instant,
    pub copy_started: OnceLock<Instant>,
    pub copy_finished: OnceLock<Instant>,
    pub rows_estimate: AtomicU64,
    pub rows_copied: AtomicU64,
    /// Rows the copy skipped under `--allow-skipped-rows`.
    pub rows_skipped: AtomicU64,
    /// Row images the applier's inserts dropped (or changed) under `--allow-skipped-rows`.
    pub rows_skipped_by_apply: AtomicU64,
    pub chunks_copied: AtomicU64,
    pub events_applied: AtomicU64,
    pub backlog: AtomicUsize,
    pub backlog_capacity: usize,
    /// Replication lag measured by the last heartbeat read back from the binlog, in ms.
    pub lag_ms: AtomicU64,
    /// When the last heartbeat was read back (ms since `started`).
    pub last_heartbeat_ms: AtomicU64,
    /// The inspected server's own lag behind the primary, as the throttler last read it (its
    /// copy of the heartbeat row), in ms (`NEVER`: not read).
    inspected_lag_ms: AtomicU64,
    pub position: Mutex<String>,
    pub state: Mutex<String>,
    pub checksum: Mutex<ChecksumStatus>,
    /// Rows of the original table the checksum has compared.
    pub rows_checksummed: AtomicU64,
    /// Cut-over attempts made so far.
    pub cut_over_attempts: AtomicU64,
    /// How long writers were blocked by the swap, in ms (`NEVER` until a swap).
    writer_wait_ms: AtomicU64,
    /// The pacing the copy or the checksum rested at after its last chunk
    /// (`--pace-latency-ratio`); `None` when not paced, or once pacing has ended.
    pacing: Mutex<Option<Pacing>>,
}

/// Where the checksum before the swap is, for the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChecksumStatus {
    #[default]
    NotYet,
    /// `--skip-checksum`.
    Skipped,
    Comparing,
    Passed,
    /// Comparing again what changed while the cut-over was postponed.
    ReVerifying,
    Differs,
}

impl Progress {
    pub fn new(backlog_capacity: usize) -> Progress {
        Progress {
            started: Instant::now(),
            copy_started: OnceLock::new(),
            copy_finished: OnceLock::new(),
            rows_estimate: AtomicU64::new(0),
            rows_copied: AtomicU64::new(0),
            rows_skipped: AtomicU64::new(0),
            rows_skipped_by_apply: AtomicU64::new(0),
            chunks_copied: AtomicU64::new(0),
            events_applied: AtomicU64::new(0),
            backlog: AtomicUsize::new(0),
            backlog_capacity,
            lag_ms: AtomicU64::new(0),
            last_heartbeat_ms: AtomicU64::new(NEVER),
            inspected_lag_ms: AtomicU64::new(NEVER),
            position: Mutex::new(String::new()),
            state: Mutex::new("migrating".into()),
            checksum: Mutex::new(ChecksumStatus::NotYet),
            rows_checksummed: AtomicU64::new(0),
            cut_over_attempts: AtomicU64::new(0),
            pacing: Mutex::new(None),
            writer_wait_ms: AtomicU64::new(NEVER),
        }
    }

    /// The state the status line shows.
    pub fn state(&self) -> String {
        crate::lock(&self.state).clone()
    }

    pub fn set_state(&self, state: impl Into<String>) {
        *crate::lock(&self.state) = state.into();
    }

    pub fn set_checksum(&self, status: ChecksumStatus) {
        *crate::lock(&self.checksum) = status;
    }

    /// The pacing the row work rests at after each chunk, from the primary's write latency
    /// (`None`: not paced, or pacing has ended).
    pub fn set_pacing(&self, pacing: Option<Pacing>) {
        *crate::lock(&self.pacing) = pacing;
    }

    /// `; Paced: 2.5x (writes 1.20ms, limit 0.45ms)` while the copy or the checksum rests that
    /// many times each chunk's time because the primary's writes (the third quartile of the
    /// recent heartbeats) take longer than the pacer allows; nothing otherwise.
    fn pace_part(&self) -> String {
        match *crate::lock(&self.pacing) {
            Some(p) if p.pace > 0.0 => format!(
                "; Paced: {:.1}x (writes {:.2}ms, limit {:.2}ms)",
                p.pace,
                p.recent.as_secs_f64() * 1000.0,
                p.limit.as_secs_f64() * 1000.0
            ),
            _ => String::new(),
        }
    }

    /// The status line's checksum part (empty before the checksum starts).
    fn checksum_part(&self) -> String {
        let rows = self.rows_checksummed.load(Ordering::Relaxed);
        let status = *crate::lock(&self.checksum);
        let what = match status {
            ChecksumStatus::NotYet => return String::new(),
            ChecksumStatus::Skipped => "skipped (--skip-checksum)".to_string(),
            ChecksumStatus::Comparing => format!("comparing, {rows} rows so far"),
            ChecksumStatus::Passed => format!("passed, {rows} rows"),
            ChecksumStatus::ReVerifying => "re-verifying rows changed while postponed".into(),
            ChecksumStatus::Differs => "FAILED, rows differ".into(),
        };
        format!("; Checksum: {what}")
    }

    pub fn set_position(&self, position: impl Into<String>) {
        *crate::lock(&self.position) = position.into();
    }

    pub fn heartbeat_seen(&self, lag: Duration) {
        self.lag_ms.store(lag.as_millis() as u64, Ordering::Relaxed);
        self.last_heartbeat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last heartbeat came back through the binlog (`None`: none yet).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        let last = self.last_heartbeat_ms.load(Ordering::Relaxed);
        (last != NEVER).then(|| {
            self.started
                .elapsed()
                .saturating_sub(Duration::from_millis(last))
        })
    }

    /// The swap blocked writers for `locked_for`.
    pub fn swapped(&self, locked_for: Duration) {
        self.writer_wait_ms
            .store(locked_for.as_millis() as u64, Ordering::Relaxed);
    }

    /// How long the swap blocked writers (`None`: no swap yet).
    pub fn writer_wait(&self) -> Option<Duration> {
        let ms = self.writer_wait_ms.load(Ordering::Relaxed);
        (ms != NEVER).then(|| Duration::from_millis(ms))
    }

    /// Whether the last heartbeat to come back was written after `at` (it came back
    /// [`Progress::heartbeat_age`] ago, after a trip of [`Progress::lag`]): whatever the primary
    /// committed before `at` has been applied.
    pub fn heartbeat_written_after(&self, at: std::time::Instant) -> bool {
        self.heartbeat_age()
            .is_some_and(|age| age + self.lag() < at.elapsed())
    }

    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }

    /// The binlog's lag as of now, for heartbeats written every `interval`: [`lag_as_of`] the
    /// last heartbeat's trip and the time since it came back.
    pub fn lag_now(&self, interval: Duration) -> Duration {
        lag_as_of(self.lag(), self.heartbeat_age(), interval)
    }

    /// The inspected server's lag behind the primary, as the throttler read it (None: unread).
    pub fn set_inspected_lag(&self, lag: Option<Duration>) {
        let ms = lag.map_or(NEVER, |l| (l.as_millis() as u64).min(NEVER - 1));
        self.inspected_lag_ms.store(ms, Ordering::Relaxed);
    }

    /// The part of the binlog's lag as of now ([`Progress::lag_now`]) that is wraith's own: the
    /// heartbeat's trip from the primary to the ghost table less the inspected server's lag
    /// behind the primary (a replica that applies late delivers late; wraith cannot read what it
    /// has not received).
    pub fn own_lag(&self, interval: Duration) -> Duration {
        let inspected = self.inspected_lag_ms.load(Ordering::Relaxed);
        let inspected = if inspected == NEVER { 0 } else { inspected };
        self.lag_now(interval)
            .saturating_sub(Duration::from_millis(inspected))
    }

    /// How long the copy still needs at its pace so far (`None` before the first rows, and
    /// `Some(0)` once it is done).
    pub fn eta(&self) -> Option<Duration> {
        if self.copy_finished.get().is_some() {
            return Some(Duration::ZERO);
        }
        let copied = self.rows_copied.load(Ordering::Relaxed);
        let estimate = self.rows_estimate.load(Ordering::Relaxed).max(copied);
        let copy_time = self.copy_started.get()?.elapsed();
        if copied == 0 || copy_time.is_zero() {
            return None;
        }
        let rate = copied as f64 / copy_time.as_secs_f64();
        Some(Duration::from_secs(
            ((estimate - copied) as f64 / rate).ceil() as u64,
        ))
    }

    /// gh-ost's status line.
    pub fn status_line(&self) -> String {
        let copied = self.rows_copied.load(Ordering::Relaxed);
        let estimate = self.rows_estimate.load(Ordering::Relaxed).max(copied);
        let pct = if estimate == 0 {
            100.0
        } else {
            copied as f64 * 100.0 / estimate as f64
        };
        let total = self.started.elapsed();
        let copy_time = match (self.copy_started.get(), self.copy_finished.get()) {
            (Some(s), Some(f)) => f.duration_since(*s),
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        };
        let eta = if self.copy_finished.get().is_some() {
            "due".to_string()
        } else {
            self.eta()
                .map_or("N/A".to_string(), |eta| format!("{}s", eta.as_secs()))
        };
        format!(
            "Copy: {copied}/{estimate} {pct:.1}%; Applied: {}; Backlog: {}/{}; Time: {}s(total), {}s(copy); streamer: {}; Lag: {:.2}s, HeartbeatLag: {:.2}s, State: {}; ETA: {eta}{}{}",
            self.events_applied.load(Ordering::Relaxed),
            self.backlog.load(Ordering::Relaxed),
            self.backlog_capacity,
            total.as_secs(),
            copy_time.as_secs(),
            crate::lock(&self.position),
            self.lag().as_secs_f64(),
            self.heartbeat_age().unwrap_or(total).as_secs_f64(),
            self.state(),
            self.pace_part(),
            self.checksum_part(),
        )
    }
}

/// Whether the status line is logged in second `elapsed` of the run, at gh-ost's cadence:
/// every second for the first minute and while the copy is due within a minute, every 5 seconds
/// while it is due within 3 minutes (or in the first 3 minutes, or while no heartbeat has come
/// back for a minute), else every 30 seconds.
pub fn log_due(elapsed: u64, eta: Option<Duration>, heartbeat_age: Option<Duration>) -> bool {
    let eta = eta.map(|e| e.as_secs());
    let stale = heartbeat_age.is_none_or(|age| age > Duration::from_secs(60));
    if elapsed <= 60 || eta.is_some_and(|e| e <= 60) {
        true
    } else if eta.is_some_and(|e| e <= 180) || elapsed <= 180 || stale {
        elapsed.is_multiple_of(5)
    } else {
        elapsed.is_multiple_of(30)
    }
}

/// Logs the status line at gh-ost's cadence ([`log_due`]) until cancelled; on a terminal, an
/// `indicatif` bar shows the copy's progress, rows/s, ETA, lag and state between the lines.
pub async fn report(
    progress: std::sync::Arc<Progress>,
    cancel: tokio_util::sync::CancellationToken,
) {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar =
            indicatif::ProgressBar::new(progress.rows_estimate.load(Ordering::Relaxed).max(1));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} rows, {per_sec}, ETA {eta}; {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut logged_second = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = cancel.cancelled() => break,
        }
        if let Some(bar) = &bar {
            let copied = progress.rows_copied.load(Ordering::Relaxed);
            bar.set_length(
                progress
                    .rows_estimate
                    .load(Ordering::Relaxed)
                    .max(copied)
                    .max(1),
            );
            bar.set_position(copied);
            bar.set_message(format!(
                "lag {:.2}s, {}",
                progress.lag().as_secs_f64(),
                progress.state()
            ));
        }
        let second = progress.started.elapsed().as_secs();
        if second == 0 || logged_second == Some(second) {
            continue;
        }
        logged_second = Some(second);
        if log_due(second, progress.eta(), progress.heartbeat_age()) {
            let line = progress.status_line();
            match &bar {
                Some(bar) => bar.suspend(|| tracing::info!("{line}")),
                None => tracing::info!("{line}"),
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// The binlog's lag now, from the last heartbeat's trip (`lag`) and how long ago it came back
/// (`age`), heartbeats being written every `interval`: the trip, or more once the next heartbeat
/// is overdue, since that one is still on its way: the time since the last one seen was written
/// (`age + lag`) less the interval. While the applier is busy with one long batch no heartbeat
/// comes back, and the last trip alone would say the lag stands still.
pub fn lag_as_of(lag: Duration, age: Option<Duration>, interval: Duration) -> Duration {
    match age {
        Some(age) => lag.max((age + lag).saturating_sub(interval)),
        None => lag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraith_s_own_lag_leaves_out_the_inspected_server_s() {
        let interval = Duration::from_millis(100);
        let p = Progress::new(10);
        p.heartbeat_seen(Duration::from_secs(3));
        // The inspected server unread: the whole trip is wraith's.
        assert_eq!(p.own_lag(interval), Duration::from_secs(3));
        // A replica 2.9 s behind the primary: a tenth of a second of the trip is wraith's.
        p.set_inspected_lag(Some(Duration::from_millis(2_900)));
        assert_eq!(p.own_lag(interval), Duration::from_millis(100));
        // Read later than the heartbeat came back: never below nothing.
        p.set_inspected_lag(Some(Duration::from_secs(4)));
        assert_eq!(p.own_lag(interval), Duration::ZERO);
        p.set_inspected_lag(None);
        assert_eq!(p.own_lag(interval), Duration::from_secs(3));
    }

    #[test]
    fn the_lag_now_grows_once_the_next_heartbeat_is_overdue() {
        let ms = Duration::from_millis;
        // Heartbeats coming back: the last trip is the lag.
        assert_eq!(lag_as_of(ms(40), Some(ms(60)), ms(100)), ms(40));
        assert_eq!(lag_as_of(ms(40), Some(ms(100)), ms(100)), ms(40));
        // None for 3 s after one that took 2.441 s: the next, written 100 ms after it, has been
        // on its way for at least 5.341 s.
        assert_eq!(lag_as_of(ms(2441), Some(ms(3000)), ms(100)), ms(5341));
        // No heartbeat yet: the lag as recorded.
        assert_eq!(lag_as_of(ms(0), None, ms(100)), ms(0));
    }

    #[test]
    fn the_status_line_has_gh_osts_shape() {
        let p = Progress::new(1000);
        p.rows_estimate.store(100_000, Ordering::Relaxed);
        p.rows_copied.store(53_000, Ordering::Relaxed);
        p.events_applied.store(812, Ordering::Relaxed);
        p.set_position("bin.000003:44123");
        let line = p.status_line();
        assert!(
            line.starts_with("Copy: 53000/100000 53.0%; Applied: 812; Backlog: 0/1000; Time: "),
            "{line}"
        );
        assert!(
            line.contains("; streamer: bin.000003:44123; Lag: 0.00s, HeartbeatLag: "),
            "{line}"
        );
        assert!(line.contains("State: migrating; ETA: "), "{line}");
        p.copy_finished.set(Instant::now()).unwrap();
        assert!(p.status_line().ends_with("ETA: due"));
        assert_eq!(p.eta(), Some(Duration::ZERO));
        p.set_checksum(ChecksumStatus::Skipped);
        assert!(
            p.status_line()
                .ends_with("ETA: due; Checksum: skipped (--skip-checksum)"),
            "{}",
            p.status_line()
        );
    }

    #[test]
    fn a_paced_run_says_how_slow_the_primarys_writes_are_and_what_the_pacer_allows() {
        let p = Progress::new(1000);
        assert!(!p.status_line().contains("Paced"));
        p.set_pacing(Some(Pacing {
            pace: 3.5,
            baseline: Duration::from_micros(300),
            limit: Duration::from_micros(530),
            recent: Duration::from_micros(2370),
        }));
        let line = p.status_line();
        assert!(
            line.contains("; Paced: 3.5x (writes 2.37ms, limit 0.53ms)"),
            "{line}"
        );
        // Shown while the checksum rests too, until pacing ends.
        p.copy_finished.set(Instant::now()).unwrap();
        assert!(p.status_line().contains("; Paced: 3.5x"));
        p.set_pacing(None);
        assert!(!p.status_line().contains("Paced"));
    }

    #[test]
    fn the_status_line_is_logged_at_gh_osts_cadence() {
        let fresh = Some(Duration::from_secs(1));
        let far = Some(Duration::from_secs(3600));
        assert!((1..=60).all(|s| log_due(s, far, fresh)));
        assert!(log_due(61, Some(Duration::from_secs(30)), fresh));
        assert!(!log_due(61, Some(Duration::from_secs(120)), fresh));
        assert!(log_due(65, Some(Duration::from_secs(120)), fresh));
        assert!(log_due(175, far, fresh) && !log_due(176, far, fresh));
        assert!(log_due(210, far, fresh) && !log_due(215, far, fresh));
        assert!(log_due(215, far, None));
    }
}
