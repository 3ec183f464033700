//! Splitting the table into key ranges.
//!
//! In: the shared unique key and a connection to the primary. Out: [`Chunk`]s, consecutive ranges
//! of the key from the smallest key to the largest one that existed when copying began, each
//! holding about `chunk_size` rows (at most [`Chunker::cap_rows`], when a byte budget caps them). A key with a NULL in it (a nullable key under
//! `--allow-nullable-unique-key`) is in no range: the copier copies those rows apart. Rows inserted later beyond that largest key reach the ghost
//! table through the binlog, not the copy. Boundaries are read from the index only (cheap), one
//! at a time, so several workers can copy ranges while the next boundary is being found.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};

use super::CopyFront;
use crate::mysql::sql;

/// A key range to copy: `lo < key <= hi` (`lo <= key` for the first chunk).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub lo: Vec<Value>,
    pub lo_inclusive: bool,
    pub hi: Vec<Value>,
    /// 0-based sequence number.
    pub seq: u64,
}

impl Chunk {
    /// Positional parameters for a statement whose placeholders take key values as listed.
    pub fn params(&self, lo_order: &[usize], hi_order: &[usize]) -> Params {
        Params::Positional(
            lo_order
                .iter()
                .map(|&i| self.lo[i].clone())
                .chain(hi_order.iter().map(|&i| self.hi[i].clone()))
                .collect(),
        )
    }
}

/// Hands out consecutive chunks of the key range.
pub struct Chunker {
    schema: String,
    table: String,
    index: String,
    key_columns: Vec<String>,
    /// Key columns that may hold NULL: keys with a NULL there are left out of every range.
    nullable: Vec<String>,
    /// The current chunk size in rows; may be changed while copying.
    pub chunk_size: Arc<AtomicI64>,
    /// The most rows a chunk holds, whatever `chunk_size` says ([`rows_within`]).
    max_rows: Option<u64>,
    next_lo: Option<Vec<Value>>,
    first: bool,
    max: Option<Vec<Value>>,
    seq: u64,
    /// Told the range and each chunk handed out.
    front: Option<Arc<CopyFront>>,
}

/// The most rows of `avg_row_bytes` each that fit in `max_bytes` (at least one); `None` when
/// either is 0 (no budget, or a row length the server does not know).
pub fn rows_within(max_bytes: u64, avg_row_bytes: u64) -> Option<u64> {
    (max_bytes > 0 && avg_row_bytes > 0).then(|| (max_bytes / avg_row_bytes).max(1))
}

fn row_values(row: Row) -> Vec<Value> {
    row.unwrap()
}

impl Chunker {
    /// Reads the smallest and largest keys (without a NULL). An empty table yields no chunks.
    pub async fn new(
        conn: &mut Conn,
        schema: &str,
        table: &str,
        index: &str,
        key_columns: &[String],
        nullable: &[String],
        chunk_size: Arc<AtomicI64>,
    ) -> Result<Chunker, mysql_async::Error> {
        let extreme =
            |largest| sql::key_extreme(schema, table, index, key_columns, nullable, largest);
        let min: Option<Row> = conn.query_first(extreme(false)).await?;
        let max: Option<Row> = conn.query_first(extreme(true)).await?;
        Ok(Chunker {
            schema: schema.to_string(),
            table: table.to_string(),
            index: index.to_string(),
            key_columns: key_columns.to_vec(),
            nullable: nullable.to_vec(),
            chunk_size,
            max_rows: None,
            next_lo: min.map(row_values),
            first: true,
            max: max.map(row_values),
            seq: 0,
            front: None,
        })
    }

    /// Starts the chunks above `key` (exclusive) instead of at the smallest key: a resumed copy.
    pub fn start_after(&mut self, key: Vec<Value>) {
        if self.max.is_some() {
            self.next_lo = Some(key);
            self.first = false;
        }
    }

    /// Tells `front` the copy's range now, and each chunk's upper bound as it is handed out, so
    /// the applier can leave the changes of rows not yet copied to the copy.
    /// A resumed copy ([`Chunker::start_after`]) leaves nothing to itself: rows above where it
    /// starts may be in the ghost table already.
    pub fn report_to(&mut self, front: Arc<CopyFront>) {
        if self.first {
            front.begin(self.next_lo.as_deref().zip(self.max.as_deref()));
        } else {
            front.stop();
        }
        self.front = Some(front);
    }

    /// No chunk holds more than `most` rows (None: `chunk_size` alone sizes them).
    pub fn cap_rows(&mut self, most: Option<u64>) {
        self.max_rows = most;
    }

    /// The next chunk, or `None` when the range is covered. The cursor moves only when the
    /// boundary was read: after an error, the same chunk is handed out again.
    pub async fn next(&mut self, conn: &mut Conn) -> Result<Option<Chunk>, mysql_async::Error> {
        let (Some(lo), Some(max)) = (self.next_lo.clone(), self.max.clone()) else {
            return Ok(None);
        };
        let rows = self.chunk_size.load(Ordering::Relaxed).max(1) as u64;
        let rows = self.max_rows.map_or(rows, |most| rows.min(most));
        let (query, lo_order, hi_order) = sql::chunk_end(
            &self.schema,
            &self.table,
            &self.index,
            &self.key_columns,
            &self.nullable,
            self.first,
            rows,
        );
        let probe = Chunk {
            lo: lo.clone(),
            lo_inclusive: self.first,
            hi: max.clone(),
            seq: self.seq,
        };
        let end: Option<Row> = conn
            .exec_first(query, probe.params(&lo_order, &hi_order))
            .await?;
        let hi = end.map(row_values).unwrap_or_else(|| max.clone());
        let last = hi == max;
        let chunk = Chunk {
            lo,
            lo_inclusive: self.first,
            hi: hi.clone(),
            seq: self.seq,
        };
        if let Some(front) = &self.front {
            front.handed_out(&chunk.hi);
        }
        self.first = false;
        self.seq += 1;
        self.next_lo = if last { None } else { Some(hi) };
        Ok(Some(chunk))
    }
}

/// Splits `chunk` of `table` into consecutive chunks of about `rows` rows each, covering the
/// same range (for copying it again in smaller pieces). They keep `chunk`'s sequence number.
#[allow(clippy::too_many_arguments)]
pub async fn split(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    index: &str,
    key_columns: &[String],
    nullable: &[String],
    chunk: &Chunk,
    rows: u64,
) -> Result<Vec<Chunk>, mysql_async::Error> {
    let mut pieces = Vec::new();
    let (mut lo, mut lo_inclusive) = (chunk.lo.clone(), chunk.lo_inclusive);
    loop {
        let (query, lo_order, hi_order) = sql::chunk_end(
            schema,
            table,
            index,
            key_columns,
            nullable,
            lo_inclusive,
            rows,
        );
        let probe = Chunk {
            lo: lo.clone(),
            lo_inclusive,
            hi: chunk.hi.clone(),
            seq: chunk.seq,
        };
        let end: Option<Row> = conn
            .exec_first(query, probe.params(&lo_order, &hi_order))
            .await?;
        let hi = end.map(row_values).unwrap_or_else(|| chunk.hi.clone());
        let last = hi == chunk.hi;
        pieces.push(Chunk {
            hi: hi.clone(),
            ..probe
        });
        if last {
            return Ok(pieces);
        }
        (lo, lo_inclusive) = (hi, false);
    }
}

#[cfg(test)]
mod tests {
    use super::rows_within;

    #[test]
    fn a_byte_budget_holds_as_many_average_rows_as_fit_and_at_least_one() {
        assert_eq!(rows_within(8 << 20, 200), Some(41_943));
        assert_eq!(rows_within(8 << 20, 64 << 10), Some(128));
        assert_eq!(
            rows_within(8 << 20, 32 << 20),
            Some(1),
            "a row over the budget"
        );
        assert_eq!(rows_within(0, 200), None, "--chunk-max-bytes=0: off");
        assert_eq!(rows_within(8 << 20, 0), None, "no estimate: no cap");
    }
}
