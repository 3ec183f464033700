//! The keys the apply loop wrote since the checksum's last snapshot.
//!
//! In: the key of every row image the apply loop applies (its before and after images, as SQL
//! literals of the original table's key columns), once recording is on. Out: [`KeyLog::take`],
//! called by the checksum while the loop is paused at its marker: the keys applied since the
//! previous `take`, or `overflowed` when there were more than the bound. Invariant: a row of the
//! original table that changed after a checksum snapshot (through the binlog) has its key in the
//! log taken at the next snapshot, unless the log overflowed, which says so; memory stays bounded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many distinct keys are kept before the log gives up and asks for a full re-check.
pub const KEYLOG_LIMIT: usize = 100_000;

/// Keys applied since the previous [`KeyLog::take`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// One SQL literal per key column, per key; in no particular order.
    pub keys: Vec<Vec<String>>,
    /// More keys than [`KEYLOG_LIMIT`] were applied: `keys` is empty and everything must be
    /// compared again.
    pub overflowed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashSet<Vec<String>>,
    overflowed: bool,
}

/// Shared between the apply loop (which records) and the checksum (which takes).
#[derive(Debug, Default)]
pub struct KeyLog {
    on: AtomicBool,
    limit: usize,
    inner: Mutex<Inner>,
}

impl KeyLog {
    pub fn new() -> KeyLog {
        KeyLog::with_limit(KEYLOG_LIMIT)
    }

    pub fn with_limit(limit: usize) -> KeyLog {
        KeyLog {
            on: AtomicBool::new(false),
            limit,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether keys are being recorded (the loop skips computing them otherwise).
    pub fn recording(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Records applied keys (nothing unless recording).
    pub fn record(&self, keys: impl IntoIterator<Item = Vec<String>>) {
        if !self.recording() {
            return;
        }
        let mut inner = crate::lock(&self.inner);
        if inner.overflowed {
            return;
        }
        for key in keys {
            inner.keys.insert(key);
            if inner.keys.len() > self.limit {
                inner.overflowed = true;
                inner.keys = HashSet::new();
                return;
            }
        }
    }

    /// The keys recorded since the previous call (none the first time), and recording from
    /// now on.
    pub fn take(&self) -> Touched {
        let mut inner = crate::lock(&self.inner);
        self.on.store(true, Ordering::Relaxed);
        let taken = std::mem::take(&mut *inner);
        Touched {
            keys: taken.keys.into_iter().collect(),
            overflowed: taken.overflowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Vec<String> {
        vec![n.to_string()]
    }

    #[test]
    fn keys_are_recorded_only_after_the_first_take_and_once_each() {
        let log = KeyLog::with_limit(10);
        log.record([key(1)]);
        assert_eq!(log.take(), Touched::default());
        log.record([key(2), key(3), key(2)]);
        let mut taken = log.take();
        taken.keys.sort();
        assert_eq!(taken.keys, vec![key(2), key(3)]);
        assert!(!taken.overflowed);
        assert_eq!(log.take(), Touched::default());
    }

    #[test]
    fn more_keys_than_the_limit_overflow_until_the_next_take() {
        let log = KeyLog::with_limit(3);
        log.take();
        log.record((0..4).map(key));
        log.record([key(9)]);
        assert_eq!(
            log.take(),
            Touched {
                keys: vec![],
                overflowed: true
            }
        );
        log.record([key(1)]);
        assert_eq!(log.take().keys, vec![key(1)]);
    }
}
