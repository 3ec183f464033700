//! Checkpoints (`--checkpoint`) and what `--resume` reads back.
//!
//! In: the copy's [`Watermark`] (every row at or below it is copied), the apply loop's applied
//! position ([`LoopStatus::applied_through`]: every event of the original table before it is
//! applied) and the run's counters. Out: one row of `_<t>_ghk` on the primary, written when the
//! copy starts, every `--checkpoint-seconds`, and when the copy ends; `--resume` reads it back
//! ([`Checkpoint::read`]) and checks that the inspected server still has the binlog it names
//! ([`check_binlog`]). A `--revert` records, with each batch it applies, where the batch ends
//! ([`AppliedMark`], [`AppliedAt`], row [`Row::Reverted`]).
//!
//! Invariant (docs/architecture.md, 11): each of the two facts was true when it was written, so
//! a resumed run that streams from the position and copies from above the watermark misses
//! nothing: every change after the position is applied again (the applier writes whole row
//! images: applying one twice leaves what applying it once left, and later changes of the same
//! row follow it in the binlog), and every row above the watermark is copied again
//! (`INSERT IGNORE` keeps a row the applier or the earlier run wrote). The checksum before the
//! swap then compares the tables as in any other run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::apply::LoopStatus;
use crate::binlog::BinlogPosition;
use crate::copy::{CopyMark, Watermark};
use crate::mysql::{self, sql, Credentials, Endpoint};
use crate::progress::Progress;

/// The rows of the checkpoint table, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// How far the run has got: what `--resume` reads.
    Progress = 1,
    /// Where the swap ended in the binlog, written after it: what `--revert` reads.
    CutOver = 2,
    /// How far a `--revert` has applied the binlog to the old table ([`AppliedAt`]: a position,
    /// and rows events into the transaction after it), written in the same transaction as each
    /// batch it applies ([`AppliedMark`]): a revert run again goes on from there, since its
    /// changes in place cannot be applied twice.
    Reverted = 3,
}

/// Where an applier records, in each batch's own transaction, how far in the binlog the batch
/// was applied ([`AppliedAt`]): row [`Row::Reverted`] of `table`. Exact, unlike
/// [`Row::Progress`]: after a crash, or a connection lost around a `COMMIT`, the row says whether
/// a batch was applied, so none is applied twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMark {
    pub schema: String,
    /// The checkpoint table.
    pub table: String,
    /// The migration's `--alter` (from its cut-over checkpoint).
    pub alter: String,
    /// `@@server_id` of the server whose binlog is applied.
    pub server_id: u64,
}

/// How far a marked batch applied the binlog: the transactions before `position` (which is where
/// one ends), and the first `events` rows events of the applied table in the transaction after
/// it: a transaction too large for one batch is applied in several, each saying how far into it
/// it got. Stored in row [`Row::Reverted`]'s `binlog_file`, `binlog_pos` and `events_applied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedAt {
    pub position: BinlogPosition,
    pub events: u64,
}

impl AppliedAt {
    /// At a transaction's end.
    pub fn at(position: BinlogPosition) -> AppliedAt {
        AppliedAt {
            position,
            events: 0,
        }
    }
}

impl std::fmt::Display for AppliedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.events {
            0 => write!(f, "{}", self.position),
            n => write!(
                f,
                "{} and {n} rows events into the transaction after it",
                self.position
            ),
        }
    }
}

impl AppliedMark {
    /// The statement that records `through`, to run in the batch's transaction.
    pub fn write_sql(&self, through: &AppliedAt) -> String {
        let (alter, server_id) = (sql::quote_str(&self.alter), self.server_id.to_string());
        let (file, pos) = (
            sql::quote_str(&through.position.file),
            through.position.pos.to_string(),
        );
        let (id, events) = (
            (Row::Reverted as u8).to_string(),
            through.events.to_string(),
        );
        sql::checkpoint_write_values(
            &self.schema,
            &self.table,
            &[
                &id, &alter, &server_id, &file, &pos, "NULL", "0", "0", &events, "NULL",
            ],
        )
    }

    /// How far the applier got by the mark recorded last, if any, read with a shared lock: a
    /// transaction that writes the mark (a batch still open in a session being ended) is waited
    /// for.
    pub async fn read(&self, conn: &mut Conn) -> Result<Option<AppliedAt>, CheckpointError> {
        let at: Option<(String, u64, u64)> = conn
            .exec_first(
                sql::checkpoint_position_locked(&self.schema, &self.table),
                (Row::Reverted as u8,),
            )
            .await
            .map_err(sql_error("reading where the applier got to"))?;
        Ok(at.map(|(file, pos, events)| AppliedAt {
            position: BinlogPosition::new(file, pos),
            events,
        }))
    }
}

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The `--alter` the run was started with: a resume must ask for the same change.
    pub alter: String,
    /// `@@server_id` of the server whose binlog the position is in.
    pub server_id: u64,
    /// Every event of the original table before this position is applied to the ghost table.
    pub position: BinlogPosition,
    pub copy: CopyMark,
    pub rows_copied: u64,
    pub events_applied: u64,
    /// The ghost table's definition as the ALTER built it, when its plain secondary indexes
    /// were dropped for the copy (`--defer-secondary-indexes`): a resumed run builds the ones
    /// still missing after the copy, whatever its own flags say.
    pub ghost_definition: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        source: mysql_async::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn sql_error(context: &'static str) -> impl FnOnce(mysql_async::Error) -> CheckpointError {
    move |source| CheckpointError::Sql { context, source }
}

impl Checkpoint {
    /// How far a [`Row::Reverted`] checkpoint says the revert got: there, `events_applied`
    /// counts the rows events applied of the transaction after `position`.
    pub fn applied_at(&self) -> AppliedAt {
        AppliedAt {
            position: self.position.clone(),
            events: self.events_applied,
        }
    }

    /// Writes this checkpoint as the table's `row`.
    pub async fn write(
        &self,
        conn: &mut Conn,
        schema: &str,
        table: &str,
        row: Row,
    ) -> Result<(), mysql_async::Error> {
        let through = self.copy.through.as_deref().map(encode_key);
        conn.exec_drop(
            sql::checkpoint_write(schema, table),
            (
                row as u8,
                &self.alter,
                self.server_id,
                &self.position.file,
                self.position.pos,
                through,
                self.copy.done,
                self.rows_copied,
                self.events_applied,
                &self.ghost_definition,
            ),
        )
        .await
    }

    /// The checkpoint `table` holds as its `row`, if one was written.
    pub async fn read(
        conn: &mut Conn,
        schema: &str,
        table: &str,
        row: Row,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        type Row = (
            String,
            u64,
            String,
            u64,
            Option<Vec<u8>>,
            bool,
            u64,
            u64,
            Option<String>,
        );
        let row: Option<Row> = conn
            .exec_first(sql::checkpoint_read(schema, table), (row as u8,))
            .await
            .map_err(sql_error("reading the checkpoint"))?;
        let Some((
            alter,
            server_id,
            file,
            pos,
            through,
            done,
            rows_copied,
            events_applied,
            ghost_definition,
        )) = row
        else {
            return Ok(None);
        };
        let through = through
            .map(|bytes| decode_key(&bytes))
            .transpose()
            .map_err(|e| {
                CheckpointError::Refused(format!(
                    "the checkpoint in {} cannot be read ({e}); start the migration again without --resume",
                    sql::quote_ident(table)
                ))
            })?;
        Ok(Some(Checkpoint {
            alter,
            server_id,
            position: BinlogPosition::new(file, pos),
            copy: CopyMark { through, done },
            rows_copied,
            events_applied,
            ghost_definition,
        }))
    }
}

/// Refuses to resume (or revert) from `checkpoint` when the inspected server (`server_id`) is not
/// the one whose binlog it names, or no longer has that binlog file.
pub async fn check_binlog(
    iconn: &mut Conn,
    inspected: &Endpoint,
    server_id: u64,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointError> {
    if server_id != checkpoint.server_id {
        return Err(CheckpointError::Refused(format!(
            "--resume: the checkpoint's binlog position {} is in the binlog of the server with server_id {}, but {inspected} has server_id {server_id}; binlog positions are the server's own: run with --host naming the server the interrupted run read",
            checkpoint.position, checkpoint.server_id
        )));
    }
    let files: Vec<(String, u64)> = iconn
        .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
            (
                row.get::<String, _>(0).unwrap_or_default(),
                row.get::<u64, _>(1).unwrap_or_default(),
            )
        })
        .await
        .map_err(sql_error("listing the binlog files (SHOW BINARY LOGS)"))?;
    let position = &checkpoint.position;
    match files.iter().find(|(name, _)| *name == position.file) {
        Some((_, size)) if *size >= position.pos => Ok(()),
        Some((_, size)) => Err(CheckpointError::Refused(format!(
            "--resume: the checkpoint's binlog position {position} is past the end of that file on {inspected} ({size} bytes); the checkpoint does not belong to this server's binlog: start the migration again without --resume"
        ))),
        None => Err(CheckpointError::Refused(format!(
            "--resume: the checkpoint's binlog position {position} has been purged from {inspected} (its oldest binlog file is {}): the changes made since the checkpoint are gone, so the migration cannot resume. Drop the helper tables and start it again without --resume",
            files.first().map_or("none", |(name, _)| name.as_str())
        ))),
    }
}

/// What a checkpoint is made of, read from the running copy and apply loop.
pub struct Sources {
    pub alter: String,
    pub server_id: u64,
    pub watermark: Arc<Watermark>,
    pub status: watch::Receiver<LoopStatus>,
    pub progress: Arc<Progress>,
    /// See [`Checkpoint::ghost_definition`].
    pub ghost_definition: Option<String>,
}

impl Sources {
    /// The checkpoint as of now (`None` before the apply loop has a position).
    pub fn now(&self) -> Option<Checkpoint> {
        // The position first: the copy's mark read after it can only be further on, and each is
        // a fact on its own.
        let position = self.status.borrow().applied_through.clone()?;
        Some(Checkpoint {
            alter: self.alter.clone(),
            server_id: self.server_id,
            position,
            copy: self.watermark.mark(),
            rows_copied: self.progress.rows_copied.load(Ordering::Relaxed),
            events_applied: self.progress.events_applied.load(Ordering::Relaxed),
            ghost_definition: self.ghost_definition.clone(),
        })
    }
}

/// Where checkpoints go, and whether one has been written (the run is then resumable).
#[derive(Clone)]
pub struct Writer {
    pub primary: Endpoint,
    pub creds: Credentials,
    pub schema: String,
    pub table: String,
    pub written: Arc<AtomicBool>,
}

impl Writer {
    /// Writes the checkpoint of `sources` now, on `conn`.
    pub async fn write(
        &self,
        conn: &mut Conn,
        sources: &Sources,
    ) -> Result<(), mysql_async::Error> {
        let Some(checkpoint) = sources.now() else {
            return Ok(());
        };
        checkpoint
            .write(conn, &self.schema, &self.table, Row::Progress)
            .await?;
        if !self.written.swap(true, Ordering::SeqCst) {
            tracing::info!(
                "checkpoint written to {} (binlog {}): an interrupted run can now be resumed with --resume",
                sql::quote_ident(&self.table),
                checkpoint.position
            );
        }
        Ok(())
    }

    /// Writes a checkpoint at once and then every `interval` until `cancel`; a failed write is
    /// logged and tried again at the next one (the previous checkpoint stays valid).
    pub async fn run(self, sources: Sources, interval: Duration, cancel: CancellationToken) {
        let mut conn: Option<Conn> = None;
        loop {
            if conn.is_none() {
                conn = mysql::connect(&self.primary, &self.creds).await.ok();
            }
            if let Some(c) = conn.as_mut() {
                if let Err(e) = self.write(c, &sources).await {
                    tracing::warn!(
                        "writing the checkpoint failed: {e}; trying again in {}s",
                        interval.as_secs()
                    );
                    conn = None;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }
}

/// A key's values as bytes that [`decode_key`] reads back exactly: a tag per value, then its
/// value in big-endian (strings and numbers with their length).
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::NULL => out.push(b'N'),
            Value::Int(i) => {
                out.push(b'I');
                out.extend(i.to_be_bytes());
            }
            Value::UInt(u) => {
                out.push(b'U');
                out.extend(u.to_be_bytes());
            }
            Value::Float(f) => {
                out.push(b'F');
                out.extend(f.to_bits().to_be_bytes());
            }
            Value::Double(d) => {
                out.push(b'D');
                out.extend(d.to_bits().to_be_bytes());
            }
            Value::Bytes(bytes) => {
                out.push(b'B');
                out.extend((bytes.len() as u32).to_be_bytes());
                out.extend(bytes);
            }
            Value::Date(y, mo, d, h, mi, s, us) => {
                out.push(b'T');
                out.extend(y.to_be_bytes());
                out.extend([*mo, *d, *h, *mi, *s]);
                out.extend(us.to_be_bytes());
            }
            Value::Time(negative, days, h, mi, s, us) => {
                out.push(b't');
                out.push(u8::from(*negative));
                out.extend(days.to_be_bytes());
                out.extend([*h, *mi, *s]);
                out.extend(us.to_be_bytes());
            }
        }
    }
    out
}

/// Reads what [`encode_key`] wrote.
pub fn decode_key(mut bytes: &[u8]) -> Result<Vec<Value>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err("the key is cut short".into());
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], String> {
        Ok(take(bytes, N)?.try_into().expect("took N bytes"))
    }
    let mut values = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        values.push(match tag {
            b'N' => Value::NULL,
            b'I' => Value::Int(i64::from_be_bytes(array(&mut bytes)?)),
            b'U' => Value::UInt(u64::from_be_bytes(array(&mut bytes)?)),
            b'F' => Value::Float(f32::from_bits(u32::from_be_bytes(array(&mut bytes)?))),
            b'D' => Value::Double(f64::from_bits(u64::from_be_bytes(array(&mut bytes)?))),
            b'B' => {
                let len = u32::from_be_bytes(array(&mut bytes)?) as usize;
                Value::Bytes(take(&mut bytes, len)?.to_vec())
            }
            b'T' => {
                let y = u16::from_be_bytes(array(&mut bytes)?);
                let [mo, d, h, mi, s] = array(&mut bytes)?;
                Value::Date(y, mo, d, h, mi, s, u32::from_be_bytes(array(&mut bytes)?))
            }
            b't' => {
                let [negative] = array(&mut bytes)?;
                let days = u32::from_be_bytes(array(&mut bytes)?);
                let [h, mi, s] = array(&mut bytes)?;
                let us = u32::from_be_bytes(array(&mut bytes)?);
                Value::Time(negative != 0, days, h, mi, s, us)
            }
            other => return Err(format!("unknown value tag {other:#04x}")),
        });
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_every_value_kind_reads_back_exactly() {
        let key = vec![
            Value::NULL,
            Value::Int(-42),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Double(-0.0),
            Value::Bytes(vec![0, 0xff, b'\'', b'\\', 0x80]),
            Value::Bytes(Vec::new()),
            Value::Date(2026, 11, 26, 23, 59, 58, 999_999),
            Value::Time(true, 34, 22, 1, 2, 3),
        ];
        let bytes = encode_key(&key);
        let back = decode_key(&bytes).unwrap();
        assert_eq!(back.len(), key.len());
        for (a, b) in key.iter().zip(&back) {
            // -0.0 == 0.0 as floats: compare the bits.
            match (a, b) {
                (Value::Double(x), Value::Double(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_wrong_key() {
        let bytes = encode_key(&[Value::Int(7), Value::Bytes(b"abc".to_vec())]);
        assert!(decode_key(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_key(&bytes[..4]).is_err());
        assert!(decode_key(b"X").is_err());
        assert_eq!(decode_key(b"").unwrap(), Vec::<Value>::new());
    }
}
