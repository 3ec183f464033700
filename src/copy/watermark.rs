//! How far the copy has got, for checkpoints.
//!
//! In: each chunk's sequence number and upper bound as a worker finishes it (workers finish out
//! of order). Out: the copy's low watermark: the key at or below which every row is copied (the
//! upper bound of the last chunk of an unbroken run of finished chunks from the first), and
//! whether the whole copy is done. Invariant: the watermark only moves up, and only past chunks
//! that are committed, so a checkpoint that reads it never claims a row the ghost table lacks.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mysql_async::Value;

/// The copy's low watermark, shared by the workers and the checkpoint writer.
#[derive(Debug, Default)]
pub struct Watermark {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The next chunk the watermark waits for.
    next_seq: u64,
    /// Chunks finished ahead of `next_seq`, by sequence number: their upper bounds.
    ahead: BTreeMap<u64, Vec<Value>>,
    /// Every key at or below this one is copied (`None`: nothing yet).
    through: Option<Vec<Value>>,
    done: bool,
}

/// What a checkpoint records of the copy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyMark {
    /// Every row whose key is at or below this one is copied (`None`: none is known to be).
    pub through: Option<Vec<Value>>,
    /// The whole copy is done.
    pub done: bool,
}

impl Watermark {
    /// A watermark for a copy that starts above `through` (a resumed copy), or at the start.
    pub fn starting_after(through: Option<Vec<Value>>) -> Watermark {
        Watermark {
            inner: Mutex::new(Inner {
                through,
                ..Inner::default()
            }),
        }
    }

    /// Chunk `seq` (numbered from 0 by the chunker) is committed; its upper bound is `hi`.
    pub fn finished(&self, seq: u64, hi: Vec<Value>) {
        let mut inner = crate::lock(&self.inner);
        inner.ahead.insert(seq, hi);
        loop {
            let next = inner.next_seq;
            let Some(hi) = inner.ahead.remove(&next) else {
                break;
            };
            inner.through = Some(hi);
            inner.next_seq += 1;
        }
    }

    /// Every row is copied.
    pub fn done(&self) {
        crate::lock(&self.inner).done = true;
    }

    pub fn mark(&self) -> CopyMark {
        let inner = crate::lock(&self.inner);
        CopyMark {
            through: inner.through.clone(),
            done: inner.done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: i64) -> Vec<Value> {
        vec![Value::Int(k)]
    }

    #[test]
    fn the_watermark_moves_only_past_an_unbroken_run_of_finished_chunks() {
        let w = Watermark::default();
        assert_eq!(w.mark().through, None);
        w.finished(1, key(200));
        assert_eq!(w.mark().through, None, "chunk 0 is still being copied");
        w.finished(0, key(100));
        assert_eq!(w.mark().through, Some(key(200)));
        w.finished(3, key(400));
        assert_eq!(w.mark().through, Some(key(200)));
        w.finished(2, key(300));
        assert_eq!(w.mark().through, Some(key(400)));
        assert!(!w.mark().done);
        w.done();
        assert!(w.mark().done);
    }

    #[test]
    fn a_resumed_copy_keeps_its_starting_point_until_its_first_chunk_is_done() {
        let w = Watermark::starting_after(Some(key(500)));
        assert_eq!(w.mark().through, Some(key(500)));
        w.finished(0, key(600));
        assert_eq!(w.mark().through, Some(key(600)));
    }
}
