//! The copy's front: the changes the copy will bring itself, which the applier leaves to it.
//!
//! In: from the chunker, the smallest and largest keys of the copy's range when the copy begins
//! ([`CopyFront::begin`]) and the upper bound of each chunk as it is handed out
//! ([`CopyFront::handed_out`]); the copy's end ([`CopyFront::stop`]); from the applier, a batch's
//! keys and whether its changes are proven visible on the primary ([`crate::changelog::Fence`]).
//! Out: to the applier, the keys of the batch to leave out ([`CopyFront::leave_to_copy`]), and how
//! many it left out in all; to each copy worker, when a chunk it was handed may begin reading
//! ([`CopyFront::settled`]).
//!
//! Why: a row whose key is above every chunk handed out, and within the copy's range, is still to
//! be copied, by a chunk that reads it later from a snapshot of its own. Writing its changes to
//! the ghost table now writes the row twice on the primary and twice more on every replica (the
//! applier's write, then the copy's), the larger share of what the application feels of a
//! migration under load. Spirit leaves such changes to its copier in the same way (its "key above
//! high watermark").
//!
//! Invariants, which together make leaving a change out the same as applying it:
//! 1. **Visible before it is left out.** A change is left out only once the [`Fence`] proves it
//!    visible to every snapshot taken from then on, a chunk's included (reading it from the
//!    binlog does not: the primary sends events before its engine's commit makes them visible).
//! 2. **Above the front when decided.** A key is left out only while it is above the upper bound
//!    of every chunk handed out, and within the copy's range (rows inserted below its first key
//!    or above its last one later are the binlog's alone to bring): the chunk that copies it is
//!    handed out afterwards and takes its snapshot later still, so it reads the change.
//! 3. **Never written above the front, then left out.** Once the applier writes a key that is
//!    above the front (a change before the copy began, or one not proven visible), the ghost
//!    table may hold that row, which the copy's `INSERT IGNORE` keeps: that key is remembered and
//!    never left out again. Past [`WRITTEN_LIMIT`] such keys the front turns off for the rest of
//!    the run: applying every change, as gh-ost does, is always safe.
//! 4. **The rest of the batch is written before a chunk reads the rows it left.** A chunk begins
//!    reading only once every batch that left keys to the copy before the chunk was handed out
//!    is written (or has failed: the run then stops). Such a batch may move a value of another
//!    unique key from a row already copied to a row it leaves to the copy; a chunk that copied
//!    that row first would meet the value, still on the copied row in the ghost table, and its
//!    `INSERT IGNORE` would drop the row. Elsewhere such a duplicate is harmless, because a later
//!    binlog event rewrites the dropped row (`CopySpec::tolerated_keys`); for a row left to the
//!    copy, none does. The wait is one batch's commit at most.
//!
//! Only keys of integer columns are compared (as numbers, column by column, as the chunker's
//! ranges order them); any other key, a value that does not read as an integer, a resumed or a
//! checkpointed run, and `--apply-ahead-of-copy` leave every change to the applier.
//!
//! [`Fence`]: crate::changelog::Fence

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mysql_async::Value;
use tokio::sync::Notify;

use super::tombstones::Key;

/// A key read as integers.
type IntKey = Vec<i128>;

/// The most keys remembered as written above the front (invariant 3) before the front turns off.
pub const WRITTEN_LIMIT: usize = 100_000;

#[derive(Debug, Default)]
pub struct CopyFront {
    state: Mutex<State>,
    left_out: AtomicU64,
    /// Batches that left keys out and are written since (or failed): invariant 4. The applier
    /// writes one batch at a time, so they end in the order they were numbered.
    written: AtomicU64,
    /// Told whenever `written` grows.
    on_written: Notify,
}

/// The keys a batch leaves to the copy. While it lives (until the rest of the batch is written
/// or has failed), chunks handed out since the decision wait before they read (invariant 4).
#[derive(Debug)]
pub struct Left {
    pub keys: Vec<Key>,
    /// The front and the batch's number among those that left keys out.
    batch: Option<(Arc<CopyFront>, u64)>,
}

impl Drop for Left {
    fn drop(&mut self) {
        if let Some((front, n)) = self.batch.take() {
            front.written.fetch_max(n, Ordering::SeqCst);
            front.on_written.notify_waiters();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    phase: Phase,
    /// Keys written while above the front (invariant 3).
    written: HashSet<IntKey>,
    /// Keys of the batches decided while copying.
    met: u64,
    /// Batches that left keys out (invariant 4).
    leaving: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
enum Phase {
    /// The copy has not begun: every key is above the front.
    #[default]
    Before,
    /// Copying `lo..=end`; chunks are handed out up to `hi`.
    Copying {
        lo: IntKey,
        hi: Option<IntKey>,
        end: IntKey,
    },
    /// Nothing is left out any more.
    Off,
}

/// Reads a key's SQL literals as integers (`None`: a NULL, or not an integer).
fn int_key(key: &Key) -> Option<IntKey> {
    key.iter().map(|l| l.parse().ok()).collect()
}

/// Reads a key's values, as the server returned them, as integers.
fn int_values(values: &[Value]) -> Option<IntKey> {
    values
        .iter()
        .map(|v| match v {
            Value::Int(i) => Some(i128::from(*i)),
            Value::UInt(u) => Some(i128::from(*u)),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        })
        .collect()
}

impl State {
    /// Whether `key` is above the front: a change to it would be copied by a chunk not handed out
    /// yet (or, before the copy, may be).
    fn above(&self, key: &IntKey) -> bool {
        match &self.phase {
            Phase::Before => true,
            Phase::Copying { lo, hi, end } => {
                key >= lo && hi.as_ref().is_none_or(|hi| key > hi) && key <= end
            }
            Phase::Off => false,
        }
    }

    /// The keys of `keys` to leave to the copy, given whether their changes are `visible`
    /// (invariant 1); every other key above the front is remembered as written (invariant 3).
    fn decide<'k>(&mut self, keys: impl IntoIterator<Item = &'k Key>, visible: bool) -> Vec<Key> {
        let mut left = Vec::new();
        if self.phase == Phase::Off {
            return left;
        }
        let copying = matches!(self.phase, Phase::Copying { .. });
        let may_leave = visible && copying;
        for key in keys {
            self.met += u64::from(copying);
            let Some(int) = int_key(key) else { continue };
            if !self.above(&int) {
                continue;
            }
            if may_leave && !self.written.contains(&int) {
                left.push(key.clone());
            } else {
                self.written.insert(int);
            }
        }
        if self.written.len() > WRITTEN_LIMIT {
            self.prune();
        }
        left
    }

    /// Forgets the written keys the copy has since reached; turns off if too many remain.
    fn prune(&mut self) {
        if let Phase::Copying { hi: Some(hi), .. } = &self.phase {
            let hi = hi.clone();
            self.written.retain(|k| *k > hi);
        }
        if self.written.len() > WRITTEN_LIMIT {
            tracing::info!(
                "more than {WRITTEN_LIMIT} keys ahead of the copy were written by the applier: from now on it applies every change, including those the copy will bring"
            );
            self.turn_off();
        }
    }

    fn turn_off(&mut self) {
        self.phase = Phase::Off;
        self.written = HashSet::new();
    }
}

impl CopyFront {
    /// The copy begins; it covers the keys from `lo` to `end` (`None`: the table is empty,
    /// nothing is left out).
    pub fn begin(&self, range: Option<(&[Value], &[Value])>) {
        let mut s = crate::lock(&self.state);
        let range = range.and_then(|(lo, end)| Some((int_values(lo)?, int_values(end)?)));
        match (&s.phase, range) {
            (Phase::Before, Some((lo, end))) => s.phase = Phase::Copying { lo, hi: None, end },
            _ => s.turn_off(),
        }
    }

    /// A chunk up to `hi` is handed out, before its statement reads anything.
    pub fn handed_out(&self, hi: &[Value]) {
        let mut s = crate::lock(&self.state);
        let Phase::Copying {
            hi: handed, end, ..
        } = &mut s.phase
        else {
            return;
        };
        match int_values(hi) {
            Some(hi) if hi < *end => *handed = Some(hi),
            // The last chunk: nothing is above the front any more.
            _ => s.turn_off(),
        }
    }

    /// The copy ended (done, failed or cancelled): every change is applied from now on.
    pub fn stop(&self) {
        crate::lock(&self.state).turn_off();
    }

    /// Whether some of `keys` could be left to the copy, if their changes were proven visible.
    pub fn may_leave<'k>(&self, keys: impl IntoIterator<Item = &'k Key>) -> bool {
        let s = crate::lock(&self.state);
        matches!(s.phase, Phase::Copying { .. })
            && keys
                .into_iter()
                .any(|k| int_key(k).is_some_and(|int| s.above(&int) && !s.written.contains(&int)))
    }

    /// The keys of a batch to leave to the copy, given whether its changes are proven `visible`
    /// (invariant 1); the others above the front are remembered as written (invariant 3). Keep
    /// the answer until the rest of the batch is written (invariant 4).
    pub fn leave_to_copy<'k>(
        self: &Arc<Self>,
        keys: impl IntoIterator<Item = &'k Key>,
        visible: bool,
    ) -> Left {
        let mut s = crate::lock(&self.state);
        let keys = s.decide(keys, visible);
        let batch = (!keys.is_empty()).then(|| {
            s.leaving += 1;
            (self.clone(), s.leaving)
        });
        self.left_out
            .fetch_add(keys.len() as u64, Ordering::Relaxed);
        Left { keys, batch }
    }

    /// Returns once every batch that left keys to the copy so far is written (or has failed): a
    /// chunk handed out before this call may then read (invariant 4).
    pub async fn settled(&self) {
        let leaving = crate::lock(&self.state).leaving;
        loop {
            // Registered before the check: a batch written in between wakes it.
            let written = self.on_written.notified();
            if self.written.load(Ordering::SeqCst) >= leaving {
                return;
            }
            written.await;
        }
    }

    /// Keys left to the copy so far.
    pub fn left_out(&self) -> u64 {
        self.left_out.load(Ordering::Relaxed)
    }

    /// Keys of the batches the applier wrote while the copy was running, left out or not.
    pub fn met(&self) -> u64 {
        crate::lock(&self.state).met
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> Key {
        vec![n.to_string()]
    }

    fn copying(hi: Option<i128>, end: i128) -> State {
        State {
            phase: Phase::Copying {
                lo: vec![i128::MIN],
                hi: hi.map(|h| vec![h]),
                end: vec![end],
            },
            ..State::default()
        }
    }

    #[test]
    fn only_keys_above_every_chunk_handed_out_and_within_the_copy_are_left_out() {
        let mut s = copying(Some(100), 1000);
        let keys = [key(50), key(100), key(101), key(1000), key(1001)];
        assert_eq!(s.decide(&keys, true), vec![key(101), key(1000)]);
    }

    #[test]
    fn keys_below_where_the_copy_starts_are_not_left_out() {
        let front = CopyFront::default();
        front.begin(Some((&[Value::Int(101)], &[Value::Int(2000)])));
        let mut s = crate::lock(&front.state);
        let keys = [key(1), key(100), key(101), key(2000), key(2001)];
        assert_eq!(s.decide(&keys, true), vec![key(101), key(2000)]);
    }

    #[test]
    fn changes_not_proven_visible_are_applied_and_their_keys_never_left_out_again() {
        let mut s = copying(Some(100), 1000);
        assert!(s.decide(&[key(500)], false).is_empty());
        assert_eq!(s.decide(&[key(500), key(600)], true), vec![key(600)]);
    }

    #[test]
    fn keys_written_before_the_copy_began_are_never_left_out() {
        let front = CopyFront::default();
        crate::lock(&front.state).decide(&[key(7)], true);
        front.begin(Some((&[Value::Int(1)], &[Value::Int(1000)])));
        let mut s = crate::lock(&front.state);
        assert_eq!(s.decide(&[key(7), key(8)], true), vec![key(8)]);
    }

    #[test]
    fn the_last_chunk_or_a_key_that_is_not_an_integer_turns_the_front_off() {
        let front = CopyFront::default();
        front.begin(Some((&[Value::Int(1)], &[Value::Bytes(b"1000".to_vec())])));
        front.handed_out(&[Value::Int(10)]);
        assert_eq!(
            crate::lock(&front.state).decide(&[key(11)], true),
            vec![key(11)]
        );
        front.handed_out(&[Value::Int(1000)]);
        assert!(crate::lock(&front.state)
            .decide(&[key(1000)], true)
            .is_empty());

        let front = CopyFront::default();
        front.begin(Some((&[Value::Int(1)], &[Value::Bytes(b"abc".to_vec())])));
        assert_eq!(crate::lock(&front.state).phase, Phase::Off);
        let mut s = copying(None, 10);
        assert!(s
            .decide(&[vec!["NULL".into()], vec!["'a'".into()]], true)
            .is_empty());
    }

    #[test]
    fn composite_keys_compare_column_by_column() {
        let mut s = State {
            phase: Phase::Copying {
                lo: vec![0, 0],
                hi: Some(vec![5, 100]),
                end: vec![9, 0],
            },
            ..State::default()
        };
        let k = |a: i64, b: i64| vec![a.to_string(), b.to_string()];
        let keys = [k(5, 100), k(5, 101), k(4, 999), k(9, 0), k(9, 1)];
        assert_eq!(s.decide(&keys, true), vec![k(5, 101), k(9, 0)]);
    }

    #[test]
    fn too_many_keys_written_ahead_of_the_copy_turn_the_front_off() {
        let mut s = copying(Some(0), i128::MAX);
        let keys: Vec<Key> = (1..=WRITTEN_LIMIT as i64 + 1).map(key).collect();
        s.decide(&keys, false);
        assert_eq!(s.phase, Phase::Off);
        assert!(s.decide(&[key(-1), key(5)], true).is_empty());
    }

    #[test]
    fn the_front_counts_the_keys_it_met_and_left_out() {
        let front = CopyFront::default();
        front.begin(Some((&[Value::Int(1)], &[Value::Int(1000)])));
        front.handed_out(&[Value::Int(10)]);
        assert!(front.may_leave(&[key(5), key(11)]));
        assert!(!front.may_leave(&[key(5), key(1001)]));
        let front = Arc::new(front);
        assert_eq!(
            front.leave_to_copy(&[key(5), key(11)], true).keys,
            vec![key(11)]
        );
        assert_eq!((front.left_out(), front.met()), (1, 2));
    }

    #[tokio::test]
    async fn a_chunk_reads_only_once_the_batches_that_left_keys_to_it_are_written() {
        let front = Arc::new(CopyFront::default());
        front.begin(Some((&[Value::Int(1)], &[Value::Int(1000)])));
        let first = front.leave_to_copy(&[key(500)], true);
        let second = front.leave_to_copy(&[key(600)], true);
        // A batch that leaves nothing out is not waited for.
        let none = front.leave_to_copy(&[key(2000)], true);
        assert!(none.keys.is_empty());
        front.handed_out(&[Value::Int(700)]);
        let settled = tokio::spawn({
            let front = front.clone();
            async move { front.settled().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!settled.is_finished());
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(5), settled)
            .await
            .expect("the chunk waits for written batches")
            .unwrap();
    }
}
