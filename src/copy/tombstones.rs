//! The keys the applier deleted while copy chunks were reading: what makes a copy without shared
//! locks safe.
//!
//! In: from each copy worker, the start and the commit of each chunk ([`Tombstones::begin`],
//! [`Tombstones::end`]); from the applier, before it writes a batch, the last state of every key
//! in it ([`Tombstones::record`]: deleted or written). Out: to the applier, the keys to delete
//! again ([`Tombstones::take`]); to the copy worker, once the applier has committed those deletes
//! ([`Tombstones::wait_applied`]), leave to count the chunk as done.
//!
//! Why: a chunk copied without `LOCK IN SHARE MODE` reads the rows as they were when its
//! statement began. A row deleted after that (or whose key an update moved away) may have its
//! delete applied to the ghost table before the chunk writes the old row there, which would bring
//! the row back. Updates cannot do this (the copy's `INSERT IGNORE` never overwrites a row the
//! applier wrote, and an applier write waits for the chunk's uncommitted row, then overwrites it),
//! and neither can inserts (the chunk did not see them). So every key the applier deletes while a
//! chunk is in flight is remembered, and once that chunk has committed, deleted again by the
//! applier, in stream order, unless a later event has written the key since.
//!
//! Invariant: a chunk registers ([`Tombstones::begin`]) before its statement takes its read view,
//! and the applier records a batch before it runs the batch's statements, and, while chunks may
//! begin, only once the batch's changes are proven visible on the primary
//! ([`crate::changelog::Fence`]; the applier's part). So a delete recorded before a chunk
//! registered is in the chunk's snapshot, and a delete the chunk did not see is recorded while
//! the chunk is registered, and either runs after the chunk's commit (and deletes the copied
//! row) or is deleted again afterwards. No key ordering is needed:
//! keys are compared as the applier writes them (exact keys only), and deleting again a key that
//! is deleted is harmless.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// A key as the applier writes it: the SQL literals of its columns.
pub type Key = Vec<String>;

#[derive(Debug)]
pub struct Tombstones {
    inner: Mutex<Inner>,
    /// Wakes the apply loop when keys are waiting to be deleted again and the stream is quiet.
    wake: Notify,
    /// The last generation of keys the applier has deleted again and committed.
    applied: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The applier's batches recorded so far.
    batches: u64,
    /// Chunks being copied: the batch count when each began.
    in_flight: HashMap<u64, u64>,
    next_chunk: u64,
    /// Keys whose last recorded state is deleted, recorded while a chunk was in flight: the batch
    /// count at the delete.
    deleted: HashMap<Key, u64>,
    /// Keys to delete again (committed chunks may have written them back).
    pending: HashSet<Key>,
    /// Raised each time keys are added to `pending`.
    generation: u64,
    /// Keys handed to the applier to delete again, in all.
    handed_back: u64,
    /// The copy has ended: no chunk begins any more.
    copy_over: bool,
}

/// A chunk being copied.
#[derive(Debug)]
#[must_use]
pub struct ChunkInFlight(u64);

/// Keys to delete again in the applier's next transaction, and the generation to report
/// applied once it committed.
#[derive(Debug, Default)]
pub struct Redelete {
    pub keys: Vec<Key>,
    pub generation: u64,
}

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones {
            inner: Mutex::default(),
            wake: Notify::new(),
            applied: watch::channel(0).0,
        }
    }
}

impl Tombstones {
    /// A chunk is about to be read.
    pub fn begin(&self) -> ChunkInFlight {
        let mut s = crate::lock(&self.inner);
        let id = s.next_chunk;
        s.next_chunk += 1;
        let at = s.batches;
        s.in_flight.insert(id, at);
        ChunkInFlight(id)
    }

    /// The chunk has committed (or given up): the keys deleted since it began are deleted again
    /// by the applier. Returns the generation to wait for ([`Tombstones::wait_applied`]), if
    /// there are any.
    pub fn end(&self, chunk: ChunkInFlight) -> Option<u64> {
        let mut s = crate::lock(&self.inner);
        let began = s.in_flight.remove(&chunk.0)?;
        let again: Vec<Key> = s
            .deleted
            .iter()
            .filter(|(_, &at)| at >= began)
            .map(|(k, _)| k.clone())
            .collect();
        // A delete recorded before every chunk still in flight began was seen by them all.
        match s.in_flight.values().min().copied() {
            Some(oldest) => s.deleted.retain(|_, at| *at >= oldest),
            None => s.deleted.clear(),
        }
        if again.is_empty() {
            return None;
        }
        s.handed_back += again.len() as u64;
        s.pending.extend(again);
        s.generation += 1;
        let generation = s.generation;
        drop(s);
        self.wake.notify_one();
        Some(generation)
    }

    /// The copy has ended (done, failed or cancelled): no chunk begins after this.
    pub fn copy_over(&self) {
        crate::lock(&self.inner).copy_over = true;
    }

    /// Whether a chunk may still begin: then a batch's deletes are recorded only once proven
    /// visible ([`crate::changelog::Fence`]), so that a chunk registered after the record reads
    /// them in its snapshot.
    pub fn chunks_may_begin(&self) -> bool {
        !crate::lock(&self.inner).copy_over
    }

    /// The applier is about to write a batch whose keys end as `finals` (`true`: written,
    /// `false`: deleted).
    pub fn record<'k>(&self, finals: impl IntoIterator<Item = (&'k Key, bool)>) {
        let mut s = crate::lock(&self.inner);
        let at = s.batches;
        s.batches += 1;
        let watching = !s.in_flight.is_empty();
        for (key, written) in finals {
            if written {
                s.deleted.remove(key);
                s.pending.remove(key);
            } else if watching {
                s.deleted.insert(key.clone(), at);
            }
        }
    }

    /// The keys to delete again in the applier's next transaction (after [`Tombstones::record`]
    /// of its batch).
    pub fn take(&self) -> Redelete {
        let mut s = crate::lock(&self.inner);
        Redelete {
            keys: s.pending.drain().collect(),
            generation: s.generation,
        }
    }

    /// How many keys were deleted while a chunk read them and handed to the applier to delete
    /// again, in all.
    pub fn handed_back(&self) -> u64 {
        crate::lock(&self.inner).handed_back
    }

    /// The applier committed the deletes of `generation` (and every earlier one).
    pub fn applied(&self, generation: u64) {
        self.applied.send_if_modified(|g| {
            let newer = generation > *g;
            if newer {
                *g = generation;
            }
            newer
        });
    }

    /// Waits until the applier has committed the deletes of `generation`, or `cancel`.
    pub async fn wait_applied(&self, generation: u64, cancel: &CancellationToken) {
        let mut rx = self.applied.subscribe();
        tokio::select! {
            _ = rx.wait_for(|g| *g >= generation) => {}
            _ = cancel.cancelled() => {}
        }
    }

    /// Completes when keys may be waiting to be deleted again.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> Key {
        vec![n.to_string()]
    }

    #[test]
    fn a_key_deleted_while_a_chunk_reads_is_deleted_again_after_it_commits() {
        let t = Tombstones::default();
        let chunk = t.begin();
        t.record([(&key(1), false), (&key(2), true)]);
        assert!(t.take().keys.is_empty(), "not before the chunk commits");
        let generation = t.end(chunk).expect("a key to delete again");
        let again = t.take();
        assert_eq!(again.keys, vec![key(1)]);
        assert_eq!(again.generation, generation);
        assert!(t.take().keys.is_empty(), "taken once");
    }

    #[test]
    fn deletes_before_a_chunk_began_or_with_no_chunk_reading_are_not_repeated() {
        let t = Tombstones::default();
        t.record([(&key(1), false)]);
        let chunk = t.begin();
        assert_eq!(t.end(chunk), None);
        t.record([(&key(2), false)]);
        assert_eq!(t.end(t.begin()), None);
    }

    #[test]
    fn a_key_written_again_after_its_delete_is_not_deleted_again() {
        let t = Tombstones::default();
        let chunk = t.begin();
        t.record([(&key(1), false), (&key(2), false)]);
        t.record([(&key(1), true)]);
        t.end(chunk);
        // Written after the chunk committed, before the applier took the keys.
        t.record([(&key(2), true)]);
        assert!(t.take().keys.is_empty());
    }

    #[test]
    fn overlapping_chunks_each_get_the_deletes_since_they_began() {
        let t = Tombstones::default();
        let a = t.begin();
        t.record([(&key(1), false)]);
        let b = t.begin();
        t.record([(&key(2), false)]);
        t.end(b);
        assert_eq!(t.take().keys, vec![key(2)]);
        t.end(a);
        let mut again = t.take().keys;
        again.sort();
        assert_eq!(again, vec![key(1), key(2)]);
        // Nothing in flight: nothing is remembered.
        assert_eq!(t.end(t.begin()), None);
    }

    #[tokio::test]
    async fn a_worker_waits_until_its_generation_is_applied() {
        let t = std::sync::Arc::new(Tombstones::default());
        let chunk = t.begin();
        t.record([(&key(1), false)]);
        let generation = t.end(chunk).unwrap();
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.wait_applied(generation, &CancellationToken::new()).await })
        };
        t.woken().await;
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let taken = t.take();
        t.applied(taken.generation);
        waiter.await.unwrap();
    }
}
