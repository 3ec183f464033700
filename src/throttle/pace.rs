//! Pacing the copy by what the application feels: the primary's write latency.
//!
//! In: the time each heartbeat write took on the primary and how many of the original table's
//! row changes the applier has applied so far ([`Pacer::observe`], every
//! `--heartbeat-interval-millis`), the moments the copy begins and the checksum after it ends
//! ([`Pacer::begin`], [`Pacer::end`]), and `--pace-latency-ratio`. Out: a pace
//! ([`Pacer::pacing`]): the copy's and the checksum's workers sleep that many times a chunk's
//! duration after it (or `--nice-ratio` times, whichever is longer), and the status line's
//! `Paced` figure with the latency and the limit behind it.
//!
//! The heartbeat is a small write on the primary, like the application's: when the copy takes the
//! CPU, the I/O or the locks the application needs, the heartbeat waits too. Its latency before the
//! copy begins (the median of the writes timed while the binlog is already applied, so the
//! applier's share is in it; of its quietest second of three when the application writes the table,
//! so that a stall of the server then does not make the baseline lenient) is the baseline; while
//! copying, when the recent writes (the third quartile of the last 10) take longer than
//! `--pace-latency-ratio` times the baseline (and longer than the slowest tenth of the writes
//! before the copy, counted up to `NOISE_CAP` times the baseline, and at least 0.2 ms more than
//! the baseline), the pace rises, multiplicatively (0.5, 1.5, 3.5, 7.5, 15.5, 19 at half-second
//! steps), up to [`MAX_PACE`] (the copy then works a twentieth of the time: it slows but always
//! finishes); a copy that begins while the application writes the table starts at [`START_PACE`] (a
//! slow start); when they do not, it halves at each step, to 0 below 0.05. Writes that stay slow while the
//! copy rests at [`MAX_PACE`] for [`AMBIENT_STEPS`] steps are not the copy's doing (other work
//! on the server, or the application's own load): their median becomes the baseline (a slow
//! start again), so the copy is paced by what it adds, not held at a twentieth for the whole
//! run; once the writes are faster than that raised baseline, it falls with them, never below
//! the one measured before the copy. It paces only while the
//! application writes the table (the applier applied some of its changes since the last step):
//! with nobody writing it, the latency the copy causes is its own, and slowing down protects
//! nobody (an idle copy on 2 shared cores took 57% longer paced). It stops when the checksum
//! before the swap ends (or the copy, without one): the checksum reads both tables at full speed,
//! a burst the application felt at the end of a paced copy (1 s p95 of 164 and 303 ms where the
//! copy's seconds were at 10 to 70 ms, in the load bench).
//! Invariant: pacing only slows the copy; it never stops it, never holds the applier, and a
//! pace of 0 (pacing off, too few samples, or no pressure) leaves the copy as fast as before.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// The copy works at least a twentieth of the time, however high the latency. (At most 9, a
/// tenth, the load bench's writers still saw their p95 two to three times what it was, in the
/// seconds the pace stayed at 9.)
pub const MAX_PACE: f64 = 19.0;

/// Latency samples compared at each step.
const WINDOW: usize = 10;

/// The pace is adjusted once per this many samples (half a second at the default heartbeat).
const STEP: usize = 5;

/// Fewer samples than this before the copy: no baseline, no pacing.
pub const MIN_BASELINE_SAMPLES: usize = 3;

/// The samples the copy waits for (a second at the default heartbeat) before it takes the
/// baseline: with durable commits on a busy disk, the median of three once came out at 4.5 ms
/// where other runs of the same bench measured 1.3 to 1.8 ms, and the copy went almost unpaced.
pub const BASELINE_WANTED: usize = 10;

/// The samples the copy waits for when the application writes the table (three seconds at the
/// default heartbeat): the baseline is the median of the quietest [`BASELINE_WANTED`] of them in
/// a row (`quietest_median`). A stall of the server in the one second the baseline was taken
/// in made it 1.81 ms where other runs measured 0.8 to 1.6, and the copy went almost unpaced:
/// the writers' p95 in the copy 7.1x what it was before (load bench, session 28).
pub const BASELINE_WANTED_UNDER_WRITES: usize = 30;

/// Steps at [`MAX_PACE`] with the writes still past the limit (ten seconds at the default
/// heartbeat) after which their latency is taken as the server's, not the copy's, and becomes
/// the baseline. Without it, a copy under writers slowed by other work stayed at a twentieth
/// for good: a 40,000-row test copy under writes did not finish in 5 minutes on 2 busy cores
/// (writes at 3 to 6 ms, paced against a 1.07 ms baseline).
pub const AMBIENT_STEPS: usize = 20;

/// The samples kept before the copy begins (the latest ones).
const BASELINE_SAMPLES: usize = 50;

/// The pace a copy starts at when the application was writing the table before it began (a
/// slow start): the copy works about a fifth of the time at first, and the pace halves each
/// step while the writes stay fast (to none within about four seconds). Starting unpaced, the
/// copy's first second ran at full speed and was the writers' worst second of the copy's start
/// in most load runs (p95 27 to 57 ms, session 21).
pub const START_PACE: f64 = 3.5;

/// The latency may always rise this much over the baseline before the copy is paced, and as high
/// as the 90th percentile of the writes before the copy ([`NOISE_QUANTILE`]): a baseline of a
/// fraction of a millisecond would otherwise make noise look like pressure. (A fixed millisecond,
/// as before, let writes of 0.3 ms rise to 1.3 ms unpaced, where the load bench's writers, whose
/// transactions are many round trips, went from a p95 of 4 ms to 20.)
const MIN_SLACK: Duration = Duration::from_micros(200);

/// The quantile of the writes before the copy that counts as their noise.
const NOISE_QUANTILE: f64 = 0.9;

/// The noise counts at most this many times the baseline: a stall of the machine in the second
/// or two before the copy otherwise made the pacer lenient for the whole copy. (Four load runs:
/// limits of 0.47, 0.53, 0.91 and 1.44 ms came with writers' p95 in the copy of 6, 9, 13 and 15
/// ms; the 1.44 ms run had a 0.8 s stall just before the copy.)
const NOISE_CAP: f64 = 2.0;

/// The pace of the copy, from the primary's write latency.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `--pace-latency-ratio`; 0: pacing off.
    ratio: f64,
    /// Samples before the copy began.
    before: VecDeque<Duration>,
    /// The copy has begun: the baseline (None: too few samples, no pacing).
    baseline: Option<Option<Duration>>,
    /// The [`NOISE_QUANTILE`] of the samples before the copy.
    noise: Duration,
    /// The baseline and noise measured before the copy, which a raised baseline falls back to.
    before_copy: Option<(Duration, Duration)>,
    /// Samples taken while the pace stayed at [`MAX_PACE`] with the writes past the limit.
    ambient: Vec<Duration>,
    /// The baseline was raised and has not fallen since (the log says its fall once).
    raised: bool,
    recent: VecDeque<Duration>,
    since_step: usize,
    pace: f64,
    /// The limit the last step compared with, and what it measured.
    last: Option<(Duration, Duration)>,
    /// Row changes of the table applied when the last step was taken (before the copy: at the
    /// last sample).
    applied_at_step: u64,
    /// Row changes applied at the first sample before the copy.
    applied_first: Option<u64>,
    /// The copy and the checksum have ended: no more steps.
    ended: bool,
}

/// What the status line and the log say of the pacing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub pace: f64,
    pub baseline: Duration,
    pub limit: Duration,
    /// The third quartile of the recent write latencies.
    pub recent: Duration,
}

impl Pacer {
    /// A pacer for `--pace-latency-ratio` (0: off).
    pub fn new(ratio: f64) -> Pacer {
        Pacer {
            state: Mutex::new(State {
                ratio: ratio.max(0.0),
                ..State::default()
            }),
        }
    }

    /// One heartbeat write took `latency`; the applier has applied `applied` row changes of the
    /// table so far.
    pub fn observe(&self, latency: Duration, applied: u64) {
        let mut s = crate::lock(&self.state);
        if s.ratio <= 0.0 || s.ended {
            return;
        }
        let Some(baseline) = s.baseline else {
            if s.before.len() == BASELINE_SAMPLES {
                s.before.pop_front();
            }
            s.before.push_back(latency);
            s.applied_first.get_or_insert(applied);
            s.applied_at_step = applied;
            return;
        };
        let Some(baseline) = baseline else { return };
        if s.recent.len() == WINDOW {
            s.recent.pop_front();
        }
        s.recent.push_back(latency);
        s.since_step += 1;
        if s.since_step < STEP {
            return;
        }
        s.since_step = 0;
        let recent = quantile(s.recent.iter().copied(), 0.75);
        let limit = s.limit(baseline);
        let application_writes = applied > s.applied_at_step;
        s.applied_at_step = applied;
        let before = s.pace;
        let pressed = recent > limit && application_writes;
        // This step's own samples, all taken with the copy resting at the most: a step whose
        // median is within the limit shows the rest helps, and ends the streak.
        let step: Vec<Duration> = s.recent.iter().rev().take(STEP).copied().collect();
        if pressed && before == MAX_PACE && quantile(step.iter().copied(), 0.5) > limit {
            s.ambient.extend(step);
        } else {
            s.ambient.clear();
        }
        s.pace = if pressed {
            ((s.pace + 0.25) * 2.0).min(MAX_PACE)
        } else if s.pace < 0.05 {
            0.0
        } else {
            s.pace / 2.0
        };
        s.last = Some((limit, recent));
        if s.ambient.len() >= AMBIENT_STEPS * STEP {
            s.raise_baseline(baseline);
            return;
        }
        if !pressed {
            s.lower_baseline(baseline, recent);
        }
        if before == 0.0 && s.pace > 0.0 {
            tracing::info!(
                "pacing the copy: the primary's writes take {recent:?} (third quartile of the last {}), over {limit:?} ({}x the {baseline:?} before the copy): the copy now rests {:.2}x each chunk's time (--pace-latency-ratio)",
                s.recent.len(),
                s.ratio,
                s.pace
            );
        } else if before > 0.0 && s.pace == 0.0 {
            tracing::info!(
                "the copy is no longer paced: the primary's writes take {recent:?}, within {limit:?}"
            );
        }
    }

    /// The copy begins: the latency so far is the baseline. Returns it (None: pacing off, or too
    /// few samples).
    pub fn begin(&self) -> Option<Duration> {
        let mut s = crate::lock(&self.state);
        if s.baseline.is_some() {
            return s.baseline.flatten();
        }
        let baseline = (s.ratio > 0.0 && s.before.len() >= MIN_BASELINE_SAMPLES)
            .then(|| quietest_median(s.before.make_contiguous()));
        let noise = quantile(s.before.iter().copied(), NOISE_QUANTILE);
        s.noise = baseline.map_or(noise, |b| noise.min(b.mul_f64(NOISE_CAP)));
        s.baseline = Some(baseline);
        s.before_copy = baseline.map(|b| (b, s.noise));
        if baseline.is_some() && s.application_wrote() {
            s.pace = START_PACE;
            tracing::info!(
                "the application is writing the table: the copy starts paced at {START_PACE}x and speeds up while the primary's writes stay fast (--pace-latency-ratio)"
            );
        }
        baseline
    }

    /// The copy and the checksum after it have ended: the pace is 0 from now on.
    pub fn end(&self) {
        let mut s = crate::lock(&self.state);
        s.ended = true;
        s.pace = 0.0;
    }

    /// Samples taken so far before the copy began.
    pub fn samples_before(&self) -> usize {
        crate::lock(&self.state).before.len()
    }

    /// Whether the application has written the table since the first sample before the copy.
    pub fn application_writes(&self) -> bool {
        crate::lock(&self.state).application_wrote()
    }

    /// Whether pacing is on (`--pace-latency-ratio` above 0).
    pub fn enabled(&self) -> bool {
        crate::lock(&self.state).ratio > 0.0
    }

    /// How many times a chunk's duration the copy rests after it (0: not paced).
    pub fn pace(&self) -> f64 {
        crate::lock(&self.state).pace
    }

    /// The pacing, once the copy has begun with a baseline and a step was taken.
    /// Before the first step the limit is the one the first step will compare with, and the
    /// recent latency 0 (a slow start's pace is there from the copy's first chunk).
    pub fn pacing(&self) -> Option<Pacing> {
        let s = crate::lock(&self.state);
        let baseline = s.baseline.flatten()?;
        let (limit, recent) = s.last.unwrap_or((s.limit(baseline), Duration::ZERO));
        Some(Pacing {
            pace: s.pace,
            baseline,
            limit,
            recent,
        })
    }
}

impl State {
    /// The application has written the table since the first sample before the copy.
    fn application_wrote(&self) -> bool {
        self.applied_first
            .is_some_and(|first| self.applied_at_step > first)
    }

    /// The writes stayed past the limit with the copy resting at [`MAX_PACE`] for
    /// [`AMBIENT_STEPS`]: their median is the server's latency now, and the new baseline.
    fn raise_baseline(&mut self, old: Duration) {
        let samples = std::mem::take(&mut self.ambient);
        let baseline = quantile(samples.iter().copied(), 0.5).max(old);
        self.noise = quantile(samples.iter().copied(), NOISE_QUANTILE)
            .min(baseline.mul_f64(NOISE_CAP))
            .max(self.noise);
        self.baseline = Some(Some(baseline));
        self.raised = true;
        self.pace = START_PACE;
        self.last = None;
        tracing::info!(
            "the primary's writes still take {baseline:?} (median) with the copy resting {MAX_PACE}x for {AMBIENT_STEPS} steps: that is the server's latency, not the copy's; it is the baseline now (was {old:?}), the copy starts again at {START_PACE}x (--pace-latency-ratio)"
        );
    }

    /// The writes are within the limit: a raised baseline falls to their recent latency, never
    /// below the one measured before the copy.
    fn lower_baseline(&mut self, current: Duration, recent: Duration) {
        let Some((first, first_noise)) = self.before_copy else {
            return;
        };
        if current <= first || recent >= current {
            return;
        }
        let baseline = recent.max(first);
        self.noise = self.noise.min(baseline.mul_f64(NOISE_CAP)).max(first_noise);
        self.baseline = Some(Some(baseline));
        if std::mem::take(&mut self.raised) {
            tracing::info!(
                "the primary's writes are faster again ({recent:?}): the baseline falls with them to {baseline:?}, never below the {first:?} measured before the copy"
            );
        }
    }

    /// The latency past which the copy is paced, for `baseline`.
    fn limit(&self, baseline: Duration) -> Duration {
        baseline
            .mul_f64(self.ratio)
            .max(self.noise)
            .max(baseline + MIN_SLACK)
    }
}

/// The lowest median of [`BASELINE_WANTED`] consecutive `samples` (of all of them, when there
/// are fewer): the latency of the quietest second, which a stall of a second or two among them
/// does not raise.
fn quietest_median(samples: &[Duration]) -> Duration {
    if samples.len() <= BASELINE_WANTED {
        return quantile(samples.iter().copied(), 0.5);
    }
    samples
        .windows(BASELINE_WANTED)
        .map(|w| quantile(w.iter().copied(), 0.5))
        .min()
        .unwrap_or_default()
}

/// The `q` quantile (nearest rank) of `samples`; zero when there are none.
fn quantile(samples: impl Iterator<Item = Duration>, q: f64) -> Duration {
    let mut v: Vec<Duration> = samples.collect();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `n` heartbeats of `latency` while the application writes the table (one change each).
    fn feed(p: &Pacer, latency: Duration, n: usize) {
        for _ in 0..n {
            let applied = crate::lock(&p.state).applied_at_step + 1;
            p.observe(latency, applied);
        }
    }

    #[test]
    fn the_baseline_is_the_median_before_the_copy_and_needs_a_few_samples() {
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 2);
        assert_eq!(p.samples_before(), 2);
        let q = Pacer::new(1.5);
        assert_eq!(q.begin(), None, "no samples: no baseline");
        feed(&p, ms(2), 1);
        feed(&p, ms(100), 1);
        assert_eq!(
            p.begin(),
            Some(ms(1)),
            "median of 1, 1, 2, 100 (nearest rank)"
        );
        // Later samples are measured against it, not added to it.
        feed(&p, ms(50), 20);
        assert_eq!(p.begin(), Some(ms(1)));
    }

    #[test]
    fn a_stall_before_the_copy_does_not_raise_the_baseline_past_the_quietest_second() {
        // Two seconds of a stall (writes of 2 ms), then a quiet second (0.8 ms): the median of
        // all thirty is the stall's; the baseline is the quiet second's.
        let us = Duration::from_micros;
        let p = Pacer::new(1.5);
        feed(&p, ms(2), 20);
        feed(&p, us(800), 10);
        assert_eq!(p.begin(), Some(us(800)));
        // The other way round, and with the stall's noise: the same.
        let q = Pacer::new(1.5);
        feed(&q, us(800), 6);
        feed(&q, us(700), 4);
        feed(&q, ms(30), 2);
        feed(&q, ms(2), 18);
        assert_eq!(q.begin(), Some(us(800)));
        // The noise counts at most twice the baseline: writes of 1.6 ms are within the limit,
        // of 2 ms past it.
        feed(&q, us(1600), 50);
        assert_eq!(q.pace(), 0.0);
        feed(&q, ms(2), 10);
        assert!(q.pace() > 0.0);
    }

    #[test]
    fn latency_past_the_ratio_raises_the_pace_up_to_the_limit_and_its_return_lowers_it_to_zero() {
        let p = Pacer::new(1.5);
        feed(&p, ms(4), 10);
        p.begin();
        // Within 1.5x of 4 ms: never paced.
        feed(&p, ms(6), 50);
        assert_eq!(p.pace(), 0.0);
        // Past it: the pace climbs with each step of 5 samples, and stops at MAX_PACE.
        feed(&p, ms(20), 5);
        let first = p.pace();
        assert!(first > 0.0);
        feed(&p, ms(20), 5);
        assert!(p.pace() > first);
        feed(&p, ms(20), 100);
        assert_eq!(p.pace(), MAX_PACE);
        let pacing = p.pacing().unwrap();
        assert_eq!(
            (pacing.baseline, pacing.limit, pacing.recent),
            (ms(4), ms(6), ms(20))
        );
        // The latency back within the limit: the pace falls back to 0.
        feed(&p, ms(5), 200);
        assert_eq!(p.pace(), 0.0);
    }

    #[test]
    fn a_small_baseline_allows_the_noise_seen_before_the_copy_and_a_fifth_of_a_millisecond() {
        let us = Duration::from_micros;
        // Steady writes of 0.2 ms before: 0.4 ms is within 0.2 ms + 0.2 ms, 0.5 ms is not.
        let p = Pacer::new(1.5);
        feed(&p, us(200), 10);
        p.begin();
        feed(&p, us(400), 50);
        assert_eq!(p.pace(), 0.0);
        feed(&p, us(500), 10);
        assert!(p.pace() > 0.0);
        // Noisy writes before (a tenth or more at 1.8 ms, a 1 ms median): up to that is noise
        // (within twice the median, NOISE_CAP), past it pressure.
        let q = Pacer::new(1.5);
        feed(&q, ms(1), 8);
        feed(&q, us(1800), 2);
        q.begin();
        feed(&q, us(1800), 50);
        assert_eq!(q.pace(), 0.0);
        feed(&q, us(1900), 10);
        assert!(q.pace() > 0.0);
    }

    #[test]
    fn slow_writes_while_nobody_writes_the_table_or_after_the_copy_do_not_pace() {
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 10);
        p.begin();
        for _ in 0..50 {
            p.observe(ms(50), 7);
        }
        assert_eq!(p.pace(), 0.0, "the copy's own latency: nobody to protect");
        feed(&p, ms(50), 10);
        assert!(p.pace() > 0.0);
        p.end();
        assert_eq!(p.pace(), 0.0);
        feed(&p, ms(50), 50);
        assert_eq!(p.pace(), 0.0, "no steps after the copy");
    }

    #[test]
    fn a_copy_begun_while_the_application_writes_starts_paced_and_speeds_up_while_writes_are_fast()
    {
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 10);
        p.begin();
        assert_eq!(p.pace(), START_PACE);
        // What the copy's first chunk rests by (before the pacer's first step).
        let first = p.pacing().expect("paced from the copy's first chunk");
        assert_eq!(
            (first.pace, first.limit),
            (START_PACE, Duration::from_micros(1500))
        );
        feed(&p, ms(1), 5);
        assert_eq!(p.pace(), START_PACE / 2.0);
        feed(&p, ms(1), 40);
        assert_eq!(p.pace(), 0.0);
        // Nobody writing the table before the copy: it starts unpaced.
        let idle = Pacer::new(1.5);
        for _ in 0..10 {
            idle.observe(ms(1), 7);
        }
        idle.begin();
        assert_eq!(idle.pace(), 0.0);
    }

    #[test]
    fn a_stall_before_the_copy_allows_at_most_twice_the_baseline_as_noise() {
        // A fifth of the writes before the copy caught in a stall of 50 ms.
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 8);
        feed(&p, ms(50), 2);
        assert_eq!(p.begin(), Some(ms(1)));
        feed(&p, ms(1), 50);
        assert_eq!(p.pace(), 0.0);
        feed(&p, ms(3), 10);
        assert!(p.pace() > 0.0, "3 ms is past twice the 1 ms baseline");
        assert_eq!(p.pacing().unwrap().limit, ms(2));
    }

    #[test]
    fn writes_that_stay_slow_while_the_copy_rests_become_the_baseline_until_they_are_fast_again() {
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 10);
        p.begin();
        feed(&p, ms(1), 40);
        assert_eq!(p.pace(), 0.0);
        // Slow writes the copy does not cause: the pace climbs to MAX_PACE and stays there
        // while they last, but not for good.
        feed(&p, ms(5), 5 * 6);
        assert_eq!(p.pace(), MAX_PACE);
        feed(&p, ms(5), 5 * (AMBIENT_STEPS - 1));
        assert_eq!(
            p.pace(),
            MAX_PACE,
            "not yet {AMBIENT_STEPS} steps at the most"
        );
        assert_eq!(p.pacing().unwrap().baseline, ms(1));
        feed(&p, ms(5), 5);
        let raised = p.pacing().unwrap();
        assert_eq!((raised.pace, raised.baseline), (START_PACE, ms(5)));
        // Measured against 5 ms now: 7 ms is within 1.5x, the pace falls to 0.
        feed(&p, ms(7), 50);
        assert_eq!(p.pace(), 0.0);
        assert_eq!(p.pacing().unwrap().baseline, ms(5));
        // Faster writes bring the baseline down with them, never below the first one.
        feed(&p, ms(3), 10);
        assert_eq!(p.pacing().unwrap().baseline, ms(3));
        feed(&p, Duration::from_micros(500), 10);
        assert_eq!(p.pacing().unwrap().baseline, ms(1));
        feed(&p, ms(3), 10);
        assert!(p.pace() > 0.0, "3 ms is past 1.5x the first baseline again");
    }

    #[test]
    fn writes_the_resting_copy_brings_back_down_never_raise_the_baseline() {
        let p = Pacer::new(1.5);
        feed(&p, ms(1), 10);
        p.begin();
        feed(&p, ms(1), 40);
        // The copy's own pressure: slow at full speed, fast a moment after it rests, many times.
        for _ in 0..20 {
            feed(&p, ms(5), 5 * 8);
            feed(&p, ms(1), 3);
        }
        assert_eq!(p.pacing().unwrap().baseline, ms(1));
    }

    #[test]
    fn pacing_off_or_without_a_baseline_never_paces() {
        let off = Pacer::new(0.0);
        feed(&off, ms(1), 10);
        assert_eq!(off.begin(), None);
        feed(&off, ms(500), 100);
        assert_eq!(off.pace(), 0.0);
        let few = Pacer::new(1.5);
        feed(&few, ms(1), MIN_BASELINE_SAMPLES - 1);
        assert_eq!(few.begin(), None);
        feed(&few, ms(500), 100);
        assert_eq!(few.pace(), 0.0);
        assert!(few.pacing().is_none());
    }
}
