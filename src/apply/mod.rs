//! Replaying row events on the ghost table.
//!
//! In: decoded [`RowEvent`]s of the original table, in binlog order, and the [`Plan`]. Out: writes
//! on the ghost table, a batch of events per transaction. Invariant (docs/architecture.md, 3): applying is
//! idempotent per key. Every event becomes "delete every key it names (before and after images),
//! then insert its after-images", so an insert or update upserts the full mapped after-image, an
//! update that changes the key removes the old key, and a delete deletes; replaying any suffix of
//! the stream twice leaves the same table. Except in place ([`ApplyPlan::preserve_unmapped`],
//! `--revert`): there an update that moves a key moves the row, which cannot be done twice, so
//! each batch records in its own transaction how far it applied the binlog ([`AppliedMark`],
//! [`AppliedAt`]: where a transaction ends, or, for a transaction too large for one batch, how
//! many of its rows events); a revert run again, or a batch retried after a lost connection,
//! goes on from exactly there.
//!
//! A batch is one transaction (its round trips: see Sizes below). When the key compares exactly (integers,
//! decimals, temporals, binary strings, `_bin` collations), the batch is coalesced per key (the
//! last image wins): one `DELETE ... IN` of every key touched and one multi-row `INSERT` of the
//! final rows. Otherwise events are replayed one by one in binlog order, so keys that are equal
//! only by collation (`'a'` and `'A'`) cannot be confused.
//!
//! A row whose key holds a NULL (a nullable key under `--allow-nullable-unique-key`) has no key:
//! its images are left alone until the copier has copied such rows (the changelog row
//! [`crate::changelog::Entry::NullKeyRowsCopied`]: changes before it are in that copy), and from
//! then on are applied by value: a before-image deletes one row holding its values in every
//! copied column (FLOAT and DOUBLE and JSON left out), an after-image is inserted.
//!
//! A value that does not fit the new column (strict mode) and a duplicate on a new unique key are
//! errors: the migration stops instead of losing or changing a row. Under `--allow-skipped-rows`
//! rows are inserted with `IGNORE`, and every warning those inserts raise (a row dropped or
//! changed) is read, logged and counted in [`Progress::rows_skipped_by_apply`].
//!
//! Sizes ([`Sizes`]): statements are built in place from the row images (a string's bytes go
//! once into the statement, as hex) and kept to about [`STATEMENT_BYTES`]; a batch's transaction
//! goes in round trips that each fit the primary's `max_allowed_packet`, read when the applier
//! connects (under `--allow-skipped-rows`, one statement per round trip, to read its warnings). A row whose statement alone cannot fit stops the migration ([`ApplyError::TooLarge`])
//! with the setting to raise.
//!
//! [`stream_loop`] feeds it: the loop that consumes the binlog stream.

pub mod keylog;
pub mod stream_loop;

pub use keylog::{KeyLog, Touched};
pub use stream_loop::{run_loop, Control, LoopError, LoopSpec, LoopStatus};

use crate::changelog::Fence;
use crate::copy::tombstones::{Redelete, Tombstones};
use crate::copy::CopyFront;

use std::borrow::Cow;
use std::mem::take;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::binlog::{Cell, RowEvent, RowKind};
use crate::checkpoint::{AppliedAt, AppliedMark};
use crate::inspect::Plan;
use crate::mysql::{self, sql, ConnectError, Credentials, Endpoint, Flavor};
use crate::progress::Progress;

/// How row images of the original table map onto the ghost table.
#[derive(Debug, Clone)]
pub struct ApplyPlan {
    pub schema: String,
    pub ghost: String,
    /// Ghost column names of the copied columns.
    ghost_columns: Vec<String>,
    /// For each copied column, its index in the original row image.
    image_index: Vec<usize>,
    /// Ghost names of the key columns.
    key_columns: Vec<String>,
    /// For each key column, its index in the original row image.
    key_index: Vec<usize>,
    key_nullable: bool,
    /// What is done with a row image whose key holds a NULL.
    null_key_rows: NullKeyRows,
    /// A row whose key holds a NULL is matched by these columns: (ghost column name, index in
    /// the row image); the copied columns whose values compare exactly enough.
    row_match: Vec<(String, usize)>,
    /// Keys compare byte for byte as the server compares them, so batches may be coalesced.
    exact_keys: bool,
    /// The other unique keys both tables have: (ghost column names, row image indexes). Before
    /// inserting after-images, rows holding the same values on these keys are deleted: such a row
    /// is one the copy read at a newer state than this event (a later event rewrites it). A
    /// duplicate on a key only the ghost table has still fails.
    other_unique: Vec<(Vec<String>, Vec<usize>)>,
    /// The migration key is the ghost table's only unique key: a coalesced batch may write its
    /// after-images with `INSERT ... ON DUPLICATE KEY UPDATE` (a duplicate can only be the same
    /// row), changing a row in place instead of deleting and inserting it again, which costs
    /// every secondary index twice and writes two row events for the replica to apply.
    upsert_in_place: bool,
    /// `--allow-skipped-rows`: insert with IGNORE, so a row the new table cannot hold is dropped.
    pub allow_skipped_rows: bool,
    /// The target holds values in columns the images do not map that must be kept (`--revert`:
    /// the old table's dropped columns, as they were at the swap): rows are changed in place,
    /// event by event, never deleted and inserted again.
    pub preserve_unmapped: bool,
    /// `--panic-on-warnings`: any warning a statement gets fails the batch
    /// ([`ApplyError::Warnings`]).
    pub panic_on_warnings: bool,
}

/// The usual largest statement (and round trip): a statement grows past it only to hold one row.
pub const STATEMENT_BYTES: usize = 4 << 20;

/// The apply loop sends a batch once its events hold this many bytes ([`event_bytes`]), whatever
/// their count: a batch's text is then at most about twice as large (hex).
pub const BATCH_BYTES: usize = 8 << 20;

/// key -> last after-image (None: deleted).
type Last<'e> = std::collections::HashMap<Vec<String>, Option<&'e [Cell]>>;

/// The keys a batch touches in first-touched order, and how each ends.
type Coalesced<'e> = (Vec<Vec<String>>, Last<'e>);

/// A batch of events, read once: coalesced per key when the plan coalesces
/// ([`ApplyPlan::coalesces`]), so the statements and the keys' last states come from one pass.
pub struct Batch<'e> {
    events: &'e [RowEvent],
    coalesced: Option<Coalesced<'e>>,
}

impl Batch<'_> {
    /// The keys of a coalesced batch, in first-touched order.
    pub fn keys(&self) -> Option<&[Vec<String>]> {
        self.coalesced.as_ref().map(|(order, _)| order.as_slice())
    }

    /// Leaves `keys` out of a coalesced batch: neither deleted nor written.
    pub fn leave_out(&mut self, keys: &[Vec<String>]) {
        let Some((order, last)) = &mut self.coalesced else {
            return;
        };
        if keys.is_empty() {
            return;
        }
        let keys: std::collections::HashSet<&Vec<String>> = keys.iter().collect();
        order.retain(|k| !keys.contains(k));
        last.retain(|k, _| !keys.contains(k));
    }

    /// How each key of a coalesced batch ends (`true`: written, `false`: deleted); nothing when
    /// the batch is not coalesced.
    pub fn finals(&self) -> impl Iterator<Item = (&Vec<String>, bool)> {
        self.coalesced
            .iter()
            .flat_map(|(order, last)| order.iter().map(move |k| (k, last[k].is_some())))
    }
}

/// How large the statements of a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Statements and round trips are kept to this size; only a single row may exceed it.
    pub target: usize,
    /// No statement may be larger: the server's `max_allowed_packet`, less room for the
    /// transaction's own words around it.
    pub max: usize,
    /// The server's `max_allowed_packet`, for messages.
    pub packet: usize,
}

impl Sizes {
    /// The sizes for a server whose `max_allowed_packet` is `packet` bytes.
    pub fn for_packet(packet: usize) -> Sizes {
        let max = packet.saturating_sub((packet / 64).clamp(64, 1024));
        Sizes {
            target: STATEMENT_BYTES.min(max),
            max,
            packet,
        }
    }
}

/// About how many bytes the row images of `event` hold.
pub fn event_bytes(event: &RowEvent) -> usize {
    crate::binlog::value::images_size_hint(&event.rows)
}

/// What the applier does with a row image whose key holds a NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullKeyRows {
    /// The key cannot hold a NULL.
    None,
    /// Leave it: the copier has not yet copied the rows whose key holds a NULL, and its copy will
    /// hold this change.
    Skip,
    /// Apply it by the row's values: the copy is done and did not see this change.
    Apply,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying binlog events to the ghost table failed: {message}{hint}")]
    Write { message: String, hint: &'static str },
    #[error("a row of the original table (key {key}) needs a statement of {bytes} bytes to reach the ghost table, more than the primary's max_allowed_packet allows ({packet} bytes; string values travel as hex, twice their size). Nothing was written for it. Raise it on the primary, e.g. `SET GLOBAL max_allowed_packet = {suggested}` (and in its configuration), then run the migration again")]
    TooLarge {
        key: String,
        bytes: usize,
        packet: usize,
        suggested: usize,
    },
    /// gh-ost's words under --panic-on-warnings (`applier.go`, `ApplyDMLEventQueries`), then
    /// wraith's.
    #[error("warnings detected in statement {statement} of {statements}: [{warnings}]; --panic-on-warnings stops the migration at any warning while the binlog is applied (the transaction was rolled back, nothing was swapped). Fix the data or the ALTER, or run without --panic-on-warnings")]
    Warnings {
        statement: usize,
        statements: usize,
        warnings: String,
    },
    #[error("a row event has {got} columns but the table has {expected}; was the table altered outside wraith during the migration?")]
    Shape { got: usize, expected: usize },
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

impl ApplyPlan {
    pub fn new(plan: &Plan, schema: &str, ghost: &str) -> ApplyPlan {
        let index_of = |name: &str| {
            plan.original
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .expect("plan columns come from the original table")
        };
        let key_nullable = plan.original.index_is_nullable(&plan.key);
        let row_match = plan
            .columns
            .iter()
            .filter(|m| {
                plan.original.column(&m.original).is_some_and(|c| {
                    !matches!(c.data_type.as_str(), "float" | "double" | "real" | "json")
                })
            })
            .map(|m| (m.ghost.clone(), index_of(&m.original)))
            .collect();
        ApplyPlan {
            schema: schema.to_string(),
            ghost: ghost.to_string(),
            ghost_columns: plan.columns.iter().map(|m| m.ghost.clone()).collect(),
            image_index: plan.columns.iter().map(|m| index_of(&m.original)).collect(),
            key_columns: plan.ghost_key_columns.clone(),
            key_index: plan.key.columns.iter().map(|c| index_of(c)).collect(),
            key_nullable,
            null_key_rows: if key_nullable {
                NullKeyRows::Skip
            } else {
                NullKeyRows::None
            },
            row_match,
            other_unique: plan
                .shared_unique_keys()
                .into_iter()
                .filter(|(o, _)| o.name != plan.key.name)
                .map(|(o, g)| {
                    (
                        g.columns.clone(),
                        o.columns.iter().map(|c| index_of(c)).collect(),
                    )
                })
                .collect(),
            upsert_in_place: plan.ghost.indexes.iter().filter(|i| i.unique).count() == 1,
            allow_skipped_rows: false,
            preserve_unmapped: false,
            panic_on_warnings: false,
            // Rows with a NULL key cannot be coalesced by key: replayed one event at a time.
            exact_keys: !key_nullable
                && plan.key.columns.iter().all(|c| {
                    plan.original.column(c).is_some_and(|col| {
                        exact_comparison(&col.data_type, col.collation.as_deref())
                    })
                }),
        }
    }

    /// The copier has copied the rows whose key holds a NULL: changes to them from now on are
    /// applied.
    pub fn null_key_rows_copied(&mut self) {
        if self.null_key_rows == NullKeyRows::Skip {
            self.null_key_rows = NullKeyRows::Apply;
        }
    }

    /// Whether `image`'s key holds a NULL.
    fn null_key(&self, image: &[Cell]) -> bool {
        self.null_key_rows != NullKeyRows::None
            && self
                .key_index
                .iter()
                .any(|&i| matches!(image[i], Cell::Null))
    }

    /// The statement deleting one row holding `image`'s values (a row whose key holds a NULL),
    /// within `sizes`.
    fn delete_by_values(&self, image: &[Cell], sizes: Sizes) -> Result<String, ApplyError> {
        let (columns, values): (Vec<String>, Vec<String>) = self
            .row_match
            .iter()
            .map(|(c, i)| (c.clone(), image[*i].sql_literal()))
            .unzip();
        self.fitting(
            sql::delete_one_row(&self.schema, &self.ghost, &columns, &values),
            image,
            sizes,
        )
    }

    /// `statement`, for the row `image`, if it fits `sizes.max`; else the error that says what
    /// to raise.
    fn fitting(
        &self,
        statement: String,
        image: &[Cell],
        sizes: Sizes,
    ) -> Result<String, ApplyError> {
        if statement.len() > sizes.max {
            return Err(too_large(
                &self.key_of(image).join(", "),
                statement.len(),
                sizes,
            ));
        }
        Ok(statement)
    }

    /// Whether batches are coalesced per key (the key compares exactly, rows are not changed in
    /// place): the condition for [`Batch::finals`] and for copying without shared locks.
    pub fn coalesces(&self) -> bool {
        self.exact_keys && !self.preserve_unmapped
    }

    /// Every key `events` touch, in first-touched order, with its last after-image (None:
    /// deleted).
    fn coalesce<'e>(&self, events: &'e [RowEvent]) -> Result<Coalesced<'e>, ApplyError> {
        let mut order: Vec<Vec<String>> = Vec::new();
        let mut last = Last::new();
        let mut touch = |key: Vec<String>, value: Option<&'e [Cell]>| {
            if !last.contains_key(&key) {
                order.push(key.clone());
            }
            last.insert(key, value);
        };
        for event in events {
            for (before, after) in &event.rows {
                for image in [before, after].into_iter().flatten() {
                    self.check_shape(image)?;
                }
                if let Some(before) = before {
                    touch(self.key_of(before), None);
                }
                if let (Some(after), RowKind::Insert | RowKind::Update) = (after, event.kind) {
                    touch(self.key_of(after), Some(after));
                }
            }
        }
        Ok((order, last))
    }

    /// `events` read as one batch: coalesced per key when the plan coalesces.
    pub fn batch<'e>(&self, events: &'e [RowEvent]) -> Result<Batch<'e>, ApplyError> {
        let coalesced = if self.coalesces() {
            Some(self.coalesce(events)?)
        } else {
            None
        };
        Ok(Batch { events, coalesced })
    }

    /// `DELETE`s of the rows with these keys (SQL literals of the key columns), each within
    /// `sizes`.
    pub fn delete_statements(
        &self,
        keys: &[Vec<String>],
        sizes: Sizes,
    ) -> Result<Vec<String>, ApplyError> {
        let mut out = Vec::new();
        self.push_deletes(&mut out, &self.key_columns, keys, false, sizes)?;
        Ok(out)
    }

    /// The statements for a batch of events, in order, each within `sizes`; coalesced per key
    /// when keys compare exactly.
    pub fn batch_statements(
        &self,
        events: &[RowEvent],
        sizes: Sizes,
    ) -> Result<Vec<String>, ApplyError> {
        self.statements_of(&self.batch(events)?, sizes)
    }

    /// [`ApplyPlan::batch_statements`] of a batch already read.
    pub fn statements_of(&self, batch: &Batch, sizes: Sizes) -> Result<Vec<String>, ApplyError> {
        if self.preserve_unmapped {
            return self.preserving_statements(batch.events, sizes);
        }
        let Some((order, last)) = &batch.coalesced else {
            let mut out = Vec::new();
            for event in batch.events {
                out.extend(self.statements(event, sizes)?);
            }
            return Ok(out);
        };
        // Images are borrowed from the events: a row's values are written once, into the
        // statement.
        let finals: Vec<&[Cell]> = order.iter().filter_map(|k| last[k]).collect();
        let mut out = Vec::new();
        if self.upsert_in_place && !self.allow_skipped_rows {
            // Only the key can collide: a row still there is overwritten in place, and only
            // the keys whose last image is a delete are deleted.
            let gone: Vec<Vec<String>> = order
                .iter()
                .filter(|k| last[*k].is_none())
                .cloned()
                .collect();
            self.push_deletes(&mut out, &self.key_columns, &gone, false, sizes)?;
            let tail = sql::upsert_tail(&self.ghost_columns);
            self.push_inserts(&mut out, &finals, &tail, sizes)?;
            return Ok(out);
        }
        self.push_deletes(&mut out, &self.key_columns, order, self.key_nullable, sizes)?;
        self.clear_other_unique(&mut out, &finals, sizes)?;
        self.push_inserts(&mut out, &finals, "", sizes)?;
        Ok(out)
    }

    fn width(&self) -> usize {
        self.image_index
            .iter()
            .chain(&self.key_index)
            .copied()
            .max()
            .map_or(0, |m| m + 1)
    }

    /// Deletes rows that hold, on another shared unique key, a value one of `images` takes.
    /// NULLs never conflict and are skipped.
    fn clear_other_unique(
        &self,
        out: &mut Vec<String>,
        images: &[&[Cell]],
        sizes: Sizes,
    ) -> Result<(), ApplyError> {
        for (columns, idx) in &self.other_unique {
            let values: Vec<Vec<String>> = images
                .iter()
                .map(|image| idx.iter().map(|&i| image[i].sql_literal()).collect())
                .filter(|v: &Vec<String>| v.iter().all(|l| l != "NULL"))
                .collect();
            self.push_deletes(out, columns, &values, false, sizes)?;
        }
        Ok(())
    }

    /// `DELETE`s of the rows whose `columns` hold one of `keys`, each statement within `sizes`.
    fn push_deletes(
        &self,
        out: &mut Vec<String>,
        columns: &[String],
        keys: &[Vec<String>],
        null_safe: bool,
        sizes: Sizes,
    ) -> Result<(), ApplyError> {
        // What a key adds to the condition, at most: `(`c` <=> v AND ...) OR `.
        let per_column: usize = columns.iter().map(|c| c.len() + 12).sum();
        let head = sql::delete_keys(&self.schema, &self.ghost, columns, &[], null_safe).len();
        let (mut start, mut size) = (0, head);
        for (i, key) in keys.iter().enumerate() {
            let len = per_column + 8 + key.iter().map(String::len).sum::<usize>();
            if size + len > sizes.target && i > start {
                out.push(self.delete_statement(columns, &keys[start..i], null_safe, sizes)?);
                (start, size) = (i, head);
            }
            size += len;
        }
        if start < keys.len() {
            out.push(self.delete_statement(columns, &keys[start..], null_safe, sizes)?);
        }
        Ok(())
    }

    fn delete_statement(
        &self,
        columns: &[String],
        keys: &[Vec<String>],
        null_safe: bool,
        sizes: Sizes,
    ) -> Result<String, ApplyError> {
        let statement = sql::delete_keys(&self.schema, &self.ghost, columns, keys, null_safe);
        if statement.len() > sizes.max {
            return Err(too_large(&keys[0].join(", "), statement.len(), sizes));
        }
        Ok(statement)
    }

    /// Multi-row `INSERT`s of the mapped `images`, in order, each ending with `tail` (an upsert's
    /// `ON DUPLICATE KEY UPDATE ...`, or nothing), written in place: each statement is kept to
    /// `sizes.target` unless it holds a single row, and a row whose statement would pass
    /// `sizes.max` is an error.
    fn push_inserts(
        &self,
        out: &mut Vec<String>,
        images: &[&[Cell]],
        tail: &str,
        sizes: Sizes,
    ) -> Result<(), ApplyError> {
        let head = sql::insert_head(
            &self.schema,
            &self.ghost,
            &self.ghost_columns,
            self.allow_skipped_rows,
        );
        self.push_rows(out, images, &head, tail, sizes)
    }

    /// Statements `head` (tuples) `tail` of `images`' mapped values, in order, each within
    /// `sizes`.
    fn push_rows(
        &self,
        out: &mut Vec<String>,
        images: &[&[Cell]],
        head: &str,
        tail: &str,
        sizes: Sizes,
    ) -> Result<(), ApplyError> {
        let finish = |mut statement: String| {
            statement.push_str(tail);
            statement
        };
        let mut current = String::new();
        for image in images {
            // About what the tuple takes (hex doubles a string): close the statement first
            // rather than write a large row twice.
            let estimate: usize = self
                .image_index
                .iter()
                .map(|&i| 2 * image[i].size_hint())
                .sum();
            if !current.is_empty() && current.len() + tail.len() + estimate > sizes.target {
                out.push(finish(std::mem::take(&mut current)));
            }
            let mark = current.len();
            let fresh = current.is_empty();
            if fresh {
                current.push_str(head);
            } else {
                current.push_str(", ");
            }
            self.write_tuple(&mut current, image);
            if !fresh && current.len() + tail.len() > sizes.target {
                // The estimate was short: this row starts the next statement.
                current.truncate(mark);
                out.push(finish(std::mem::take(&mut current)));
                current.push_str(head);
                self.write_tuple(&mut current, image);
            }
            if current.len() + tail.len() > sizes.max {
                return Err(too_large(
                    &self.key_of(image).join(", "),
                    current.len() + tail.len(),
                    sizes,
                ));
            }
        }
        if !current.is_empty() {
            out.push(finish(current));
        }
        Ok(())
    }

    /// `(v1, v2, ...)`: the mapped values of `image`, appended to `out`.
    fn write_tuple(&self, out: &mut String, image: &[Cell]) {
        out.push('(');
        for (n, &i) in self.image_index.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            image[i].write_sql_literal(out);
        }
        out.push(')');
    }

    /// A row image must hold every column the plan reads.
    fn check_shape(&self, image: &[Cell]) -> Result<(), ApplyError> {
        let width = self.width();
        if image.len() < width {
            return Err(ApplyError::Shape {
                got: image.len(),
                expected: width,
            });
        }
        Ok(())
    }

    /// The key of every row image of `events` (before and after images), as SQL literals of
    /// the original table's key columns. Images too short for the plan are left out.
    pub fn keys_of(&self, events: &[RowEvent]) -> Vec<Vec<String>> {
        let width = self.width();
        events
            .iter()
            .flat_map(|e| &e.rows)
            .flat_map(|(before, after)| [before, after])
            .flatten()
            .filter(|image| image.len() >= width)
            .map(|image| self.key_of(image))
            .collect()
    }

    fn key_of(&self, image: &[Cell]) -> Vec<String> {
        self.key_index
            .iter()
            .map(|&i| image[i].sql_literal())
            .collect()
    }

    /// [`ApplyPlan::statements_of`] for [`ApplyPlan::preserve_unmapped`]: a row is changed in
    /// place, so the target's columns the images do not map keep their values. An insert or an
    /// update is an upsert of the after image (idempotent); an update that moves the key first
    /// moves the row (`UPDATE ... WHERE` the old key); a delete deletes. In binlog order, with
    /// consecutive upserts in one multi-row statement (its rows are written one after the other,
    /// as separate statements would write them) and consecutive deletes in another.
    fn preserving_statements(
        &self,
        events: &[RowEvent],
        sizes: Sizes,
    ) -> Result<Vec<String>, ApplyError> {
        let head = sql::insert_head(&self.schema, &self.ghost, &self.ghost_columns, false);
        let tail = sql::upsert_tail(&self.ghost_columns);
        let mut out = Vec::new();
        let mut upserts: Vec<&[Cell]> = Vec::new();
        let mut deletes: Vec<Vec<String>> = Vec::new();
        for event in events {
            for (before, after) in &event.rows {
                for image in [before, after].into_iter().flatten() {
                    self.check_shape(image)?;
                }
                let after = after
                    .as_deref()
                    .filter(|_| matches!(event.kind, RowKind::Insert | RowKind::Update));
                match (before.as_deref(), after) {
                    (Some(before), None) => {
                        self.push_rows(&mut out, &take(&mut upserts), &head, &tail, sizes)?;
                        deletes.push(self.key_of(before));
                    }
                    (before, Some(after)) => {
                        let keys = take(&mut deletes);
                        self.push_deletes(&mut out, &self.key_columns, &keys, false, sizes)?;
                        if let Some(before) =
                            before.filter(|b| self.key_of(b) != self.key_of(after))
                        {
                            self.push_rows(&mut out, &take(&mut upserts), &head, &tail, sizes)?;
                            let values: Vec<String> = self
                                .image_index
                                .iter()
                                .map(|&i| after[i].sql_literal())
                                .collect();
                            let moved = sql::update_row(
                                &self.schema,
                                &self.ghost,
                                &self.ghost_columns,
                                &values,
                                &self.key_columns,
                                &self.key_of(before),
                            );
                            out.push(self.fitting(moved, after, sizes)?);
                        }
                        upserts.push(after);
                    }
                    (None, None) => {}
                }
            }
        }
        self.push_rows(&mut out, &upserts, &head, &tail, sizes)?;
        self.push_deletes(&mut out, &self.key_columns, &deletes, false, sizes)?;
        Ok(out)
    }

    /// The statements that make the ghost table reflect one rows event, each within `sizes`.
    pub fn statements(&self, event: &RowEvent, sizes: Sizes) -> Result<Vec<String>, ApplyError> {
        if self.preserve_unmapped {
            return self.preserving_statements(std::slice::from_ref(event), sizes);
        }
        let mut keys: Vec<Vec<String>> = Vec::new();
        let mut rows: Vec<&[Cell]> = Vec::new();
        // Rows whose key holds a NULL, deleted one by one by their values.
        let mut gone: Vec<String> = Vec::new();
        let apply_null = self.null_key_rows == NullKeyRows::Apply;
        for (before, after) in &event.rows {
            for image in [before, after].into_iter().flatten() {
                self.check_shape(image)?;
                if self.null_key(image) {
                    continue;
                }
                let key = self.key_of(image);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            if let Some(before) = before {
                if self.null_key(before) && apply_null {
                    gone.push(self.delete_by_values(before, sizes)?);
                }
            }
            if let (Some(after), RowKind::Insert | RowKind::Update) = (after, event.kind) {
                if !self.null_key(after) || apply_null {
                    rows.push(after);
                }
            }
        }
        let mut out = Vec::with_capacity(2);
        self.push_deletes(&mut out, &self.key_columns, &keys, self.key_nullable, sizes)?;
        out.extend(gone);
        self.clear_other_unique(&mut out, &rows, sizes)?;
        self.push_inserts(&mut out, &rows, "", sizes)?;
        Ok(out)
    }
}

/// The error for a row whose statement (`bytes`) cannot fit `sizes`.
fn too_large(key: &str, bytes: usize, sizes: Sizes) -> ApplyError {
    const MIB: usize = 1 << 20;
    // Room for the statement and the transaction's words, in whole MiB, within the server's
    // largest setting (1 GiB).
    let suggested = ((bytes + bytes / 8) / MIB + 1) * MIB;
    ApplyError::TooLarge {
        key: key.chars().take(100).collect(),
        bytes,
        packet: sizes.packet,
        suggested: suggested.min(1 << 30),
    }
}

/// A transaction of `statements` as round trips of at most `target` bytes each (or one
/// statement alone, sent as it is): `START TRANSACTION` first, `COMMIT` last, consecutive small
/// statements joined.
fn round_trips(statements: &[String], target: usize) -> Vec<Cow<'_, str>> {
    let all = std::iter::once("START TRANSACTION")
        .chain(statements.iter().map(String::as_str))
        .chain(std::iter::once("COMMIT"));
    fn flush<'a>(group: &mut Vec<&'a str>, trips: &mut Vec<Cow<'a, str>>) {
        match group.as_slice() {
            [] => {}
            [one] => trips.push(Cow::Borrowed(*one)),
            many => trips.push(Cow::Owned(many.join(";\n"))),
        }
        group.clear();
    }
    let mut trips = Vec::new();
    let mut group: Vec<&str> = Vec::new();
    let mut size = 0;
    for statement in all {
        if !group.is_empty() && size + 2 + statement.len() > target {
            flush(&mut group, &mut trips);
            size = 0;
        }
        size += statement.len() + 2;
        group.push(statement);
    }
    flush(&mut group, &mut trips);
    trips
}

/// Whether the server compares values of this type exactly as their literals' bytes compare.
fn exact_comparison(data_type: &str, collation: Option<&str>) -> bool {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "date"
        | "datetime" | "timestamp" | "time" | "year" | "binary" | "varbinary" | "bit" | "enum"
        | "set" => true,
        "char" | "varchar" => collation.is_some_and(|c| c.ends_with("_bin")),
        _ => false,
    }
}

/// A connection that writes the ghost table.
pub struct Applier {
    conn: Conn,
    plan: ApplyPlan,
    /// Where to reconnect after a lost connection.
    endpoint: Endpoint,
    creds: Credentials,
    strict: bool,
    /// From the primary's `max_allowed_packet`, read on every (re)connection.
    sizes: Sizes,
    /// Where rows dropped under `--allow-skipped-rows` are counted.
    progress: Option<Arc<Progress>>,
    /// While the copy reads without shared locks: the keys deleted while its chunks read, to
    /// delete again once they have committed.
    tombstones: Option<Arc<Tombstones>>,
    /// While the copy has rows still to copy: the keys whose changes it leaves to the copy.
    front: Option<Arc<CopyFront>>,
    /// What proves a batch's changes visible on the primary, for the tombstones and the front.
    fence: Option<Arc<Fence>>,
    /// Where each batch records the position it was applied through ([`Applier::mark_applied`]).
    mark: Option<AppliedMark>,
}

const RETRIES: usize = 10;

/// How long the applier retries a batch that meets deadlocks or lock wait timeouts.
const TRANSIENT_RETRY_FOR: Duration = Duration::from_secs(300);

/// The `max_allowed_packet` of `conn`'s session: the largest statement it may send.
async fn packet_sizes(conn: &mut Conn) -> Result<Sizes, mysql_async::Error> {
    let packet: Option<u64> = conn
        .query_first("SELECT @@SESSION.max_allowed_packet")
        .await?;
    Ok(Sizes::for_packet(packet.unwrap_or(4 << 20) as usize))
}

impl Applier {
    pub async fn connect(
        endpoint: &Endpoint,
        creds: &Credentials,
        plan: ApplyPlan,
        strict: bool,
    ) -> Result<Applier, ApplyError> {
        let mut conn = mysql::connect_writer(endpoint, creds, strict).await?;
        let sizes = packet_sizes(&mut conn).await.map_err(write_error)?;
        Ok(Applier {
            conn,
            plan,
            endpoint: endpoint.clone(),
            creds: creds.clone(),
            strict,
            sizes,
            progress: None,
            tombstones: None,
            front: None,
            fence: None,
            mark: None,
        })
    }

    /// Each batch records how far it applied the binlog in `mark` ([`AppliedAt`]), in its own
    /// transaction ([`Applier::marks_applied`]).
    pub fn mark_applied(&mut self, mark: AppliedMark) {
        self.mark = Some(mark);
    }

    /// Whether batches record how far they applied: the apply loop then sends whole
    /// transactions, or a part of one too large for a batch, each batch with where it ends.
    pub fn marks_applied(&self) -> bool {
        self.mark.is_some()
    }

    /// The copy reads without shared locks: record the keys each batch deletes, and delete again
    /// those [`Tombstones`] hands back.
    pub fn track_deletes_for(&mut self, tombstones: Arc<Tombstones>) {
        self.tombstones = Some(tombstones);
    }

    pub fn tombstones(&self) -> Option<&Arc<Tombstones>> {
        self.tombstones.as_ref()
    }

    /// Whether the primary makes transactions visible in the order it binlogs them
    /// ([`Flavor::commit_order_sql`]); false when it cannot be read.
    pub async fn primary_commits_in_binlog_order(&mut self, flavor: &Flavor) -> bool {
        match flavor.commit_order_sql() {
            None => true,
            Some(query) => matches!(self.conn.query_first::<i64, _>(query).await, Ok(Some(1))),
        }
    }

    /// Proves batches visible with `fence` before recording their deletes for the tombstones
    /// and before leaving any of their changes to the copy.
    pub fn prove_visible_with(&mut self, fence: Arc<Fence>) {
        self.fence = Some(fence);
    }

    /// Leaves the changes of rows the copy has yet to reach to the copy ([`CopyFront`]).
    pub fn leave_to_copy_ahead_of(&mut self, front: Arc<CopyFront>) {
        self.front = Some(front);
    }

    /// The sizes statements are built to (from the primary's `max_allowed_packet`).
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    /// The copier has copied the rows whose key holds a NULL ([`ApplyPlan::null_key_rows_copied`]).
    pub fn null_key_rows_copied(&mut self) {
        self.plan.null_key_rows_copied();
    }

    /// Counts the rows this applier drops under `--allow-skipped-rows` in `progress`.
    pub fn report_to(&mut self, progress: Arc<Progress>) {
        self.progress = Some(progress);
    }

    /// The keys `events` touch ([`ApplyPlan::keys_of`]).
    pub fn keys_of(&self, events: &[RowEvent]) -> Vec<Vec<String>> {
        self.plan.keys_of(events)
    }

    /// Applies `events` in one transaction, retrying on deadlocks and lock wait timeouts. While
    /// the copy reads without shared locks, the transaction first deletes again the keys
    /// [`Tombstones`] hands back (`events` may be empty for just that). With a mark
    /// ([`Applier::mark_applied`]), `through` (how far in the binlog the batch goes) is
    /// recorded in the same transaction. The keys the copy will bring itself are left out
    /// ([`CopyFront`]; `read_by`: when the last of `events` was read from the binlog).
    pub async fn apply(
        &mut self,
        events: &[RowEvent],
        through: Option<&AppliedAt>,
        read_by: Instant,
    ) -> Result<(), ApplyError> {
        let mark = self.mark.clone();
        let marked = mark.as_ref().zip(through);
        let mut batch = self.plan.batch(events)?;
        // Deletes recorded for chunks yet to begin, and changes left to the copy, must be
        // visible to the chunks' snapshots: proven so first (see `copy::tombstones`, `copy::front`).
        let deletes = self
            .tombstones
            .as_ref()
            .is_some_and(|t| t.chunks_may_begin())
            && batch.finals().any(|(_, written)| !written);
        let may_leave = (self.front.as_ref())
            .zip(batch.keys())
            .is_some_and(|(front, keys)| front.may_leave(keys));
        let visible = match &self.fence {
            Some(fence) if deletes || may_leave => fence.visible(read_by).await,
            _ => false,
        };
        let redelete = match &self.tombstones {
            Some(t) => {
                // Recorded before the statements run: see the invariant of `copy::tombstones`.
                // Keys left to the copy are recorded too: a key written since is never deleted
                // again, wherever the row came from.
                t.record(batch.finals());
                t.take()
            }
            None => Redelete::default(),
        };
        // Kept until the batch is written or has failed: no chunk reads the rows it leaves to
        // the copy before (`copy::front`, invariant 4).
        let left = match (&self.front, batch.keys()) {
            (Some(front), Some(keys)) => Some(front.leave_to_copy(keys, visible)),
            _ => None,
        };
        if let Some(left) = left.as_ref().filter(|l| !l.keys.is_empty()) {
            crate::failpoint::sleep_after("apply:left").await;
            batch.leave_out(&left.keys);
        }
        let build = |plan: &ApplyPlan, sizes: Sizes| -> Result<Vec<String>, ApplyError> {
            let mut out = plan.delete_statements(&redelete.keys, sizes)?;
            out.extend(plan.statements_of(&batch, sizes)?);
            if let (false, Some((mark, through))) = (out.is_empty(), marked) {
                out.push(mark.write_sql(through));
            }
            Ok(out)
        };
        let mut sizes = self.sizes;
        let mut statements = build(&self.plan, sizes)?;
        let done = |tombstones: &Option<Arc<Tombstones>>| {
            if let Some(t) = tombstones {
                t.applied(redelete.generation);
            }
        };
        if statements.is_empty() {
            done(&self.tombstones);
            return Ok(());
        }
        let mut attempt = 0;
        // Deadlocks and lock waits (with a long chunk copy holding ghost rows, say) are retried
        // for as long as this; a lost connection RETRIES times.
        let transient_until = Instant::now() + TRANSIENT_RETRY_FOR;
        loop {
            if sizes != self.sizes {
                // A new connection found another max_allowed_packet.
                sizes = self.sizes;
                statements = build(&self.plan, sizes)?;
            }
            let error = match self.transaction(&statements).await {
                Ok(Applied::Warned(warnings)) => {
                    let _ = self.conn.query_drop("ROLLBACK").await;
                    return Err(warnings);
                }
                Ok(Applied::Done { .. })
                    if let Some(e) = crate::failpoint::kill_after_commit(&mut self.conn).await =>
                {
                    e
                }
                Ok(Applied::Done { skipped }) => {
                    if let (Some(progress), true) = (&self.progress, skipped > 0) {
                        progress
                            .rows_skipped_by_apply
                            .fetch_add(skipped, Ordering::Relaxed);
                    }
                    done(&self.tombstones);
                    return Ok(());
                }
                Err(e) => e,
            };
            attempt += 1;
            let _ = self.conn.query_drop("ROLLBACK").await;
            match mysql::failure(&error) {
                mysql::Failure::Fatal => return Err(write_error(error)),
                mysql::Failure::Transient if Instant::now() > transient_until => {
                    return Err(write_error(error))
                }
                mysql::Failure::Transient => {}
                _ if attempt > RETRIES => return Err(write_error(error)),
                mysql::Failure::ConnectionLost => {
                    // The batch is one transaction: it was applied entirely or not at all, and
                    // applying it again is harmless (idempotent per key), or, marked, is not
                    // done if the mark says it was applied.
                    tracing::warn!("applier connection lost ({error}); reconnecting and applying the batch again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                    match mysql::connect_writer(&self.endpoint, &self.creds, self.strict).await {
                        Ok(mut conn) => {
                            if let Ok(sizes) = packet_sizes(&mut conn).await {
                                self.sizes = sizes;
                            }
                            // The server may still run the lost session, its batch open (its
                            // locks held, its COMMIT perhaps yet to arrive): end it.
                            let lost = self.conn.id();
                            let _ = conn.query_drop(sql::kill_connection(lost)).await;
                            // Marked: the COMMIT may have been done before the connection went
                            // (the mark is read with a lock: after the lost session's end).
                            if let Some((mark, through)) = marked {
                                match mark.read(&mut conn).await {
                                    Ok(Some(at)) if at == *through => {
                                        tracing::info!("the batch lost with the connection had been committed (applied through {through})");
                                        self.conn = conn;
                                        done(&self.tombstones);
                                        return Ok(());
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        tracing::warn!("reading where the applier got to failed ({e}); retrying");
                                        continue;
                                    }
                                }
                            }
                            self.conn = conn;
                        }
                        Err(e) if attempt >= RETRIES => return Err(e.into()),
                        Err(_) => continue,
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis((20 * attempt as u64).min(1000))).await;
        }
    }

    /// The batch as one transaction, in as few round trips as the packet allows (one, unless
    /// the batch is large); returns the rows its inserts dropped. Under `--allow-skipped-rows`
    /// and `--panic-on-warnings` the statements go one by one (each fits the packet), and the
    /// warnings of each are read before the next statement clears them: an `INSERT IGNORE`'s
    /// are rows it dropped; under `--panic-on-warnings` any warning (but a deprecation notice,
    /// 1287) stops the batch, uncommitted.
    async fn transaction(&mut self, statements: &[String]) -> Result<Applied, mysql_async::Error> {
        if !self.plan.allow_skipped_rows && !self.plan.panic_on_warnings {
            for trip in round_trips(statements, self.sizes.target) {
                self.conn.query_drop(trip.as_ref()).await?;
            }
            return Ok(Applied::Done { skipped: 0 });
        }
        self.conn.query_drop("START TRANSACTION").await?;
        let mut skipped = 0;
        let mut shown = Vec::new();
        for (n, s) in statements.iter().enumerate() {
            self.conn.query_drop(s).await?;
            if self.conn.get_warnings() == 0 {
                continue;
            }
            if self.plan.panic_on_warnings {
                let listed: Vec<(String, u32, Vec<u8>)> =
                    self.conn.query("SHOW WARNINGS LIMIT 10").await?;
                let warnings: Vec<String> = listed
                    .into_iter()
                    .filter(|(_, code, _)| *code != 1287)
                    .map(|(level, code, message)| {
                        format!("{level}: {} ({code})", String::from_utf8_lossy(&message))
                    })
                    .collect();
                if !warnings.is_empty() {
                    return Ok(Applied::Warned(ApplyError::Warnings {
                        statement: n + 1,
                        statements: statements.len(),
                        warnings: warnings.join("; "),
                    }));
                }
            }
            if !s.starts_with("INSERT") || !self.plan.allow_skipped_rows {
                continue;
            }
            // The OK packet's count stops at 65535; @@warning_count does not.
            let listed: Vec<(Vec<u8>, u32, Vec<u8>)> =
                self.conn.query("SHOW WARNINGS LIMIT 5").await?;
            let total: Option<u64> = self.conn.query_first("SELECT @@warning_count").await?;
            skipped += total.unwrap_or(0).max(listed.len() as u64);
            shown.extend(listed.into_iter().map(|(_, code, message)| {
                format!("{} (warning {code})", String::from_utf8_lossy(&message))
            }));
        }
        self.conn.query_drop("COMMIT").await?;
        if skipped > 0 {
            tracing::warn!(
                "applying the binlog skipped {skipped} rows, allowed by --allow-skipped-rows: {}",
                shown.join("; ")
            );
        }
        Ok(Applied::Done { skipped })
    }
}

/// How a batch's transaction ended, when the server took every statement.
enum Applied {
    /// Committed; `skipped` rows dropped by `INSERT IGNORE` (`--allow-skipped-rows`).
    Done { skipped: u64 },
    /// A statement got warnings under `--panic-on-warnings`: not committed.
    Warned(ApplyError),
}

fn write_error(e: mysql_async::Error) -> ApplyError {
    let (message, hint) = match &e {
        mysql_async::Error::Server(s) if s.code == 1062 => (
            s.message.clone(),
            "; the new table has a unique key that the data violates (one the ALTER adds, or changes to a shorter prefix or a collation that compares more loosely): the ALTER cannot be applied to this data",
        ),
        mysql_async::Error::Server(s) if matches!(s.code, 1264 | 1265 | 1366 | 1406 | 1292) => (
            s.message.clone(),
            "; a value does not fit the new column definition, so the ALTER would change data",
        ),
        _ => (e.to_string(), ""),
    };
    ApplyError::Write { message, hint }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binlog::BinlogPosition;
    use crate::inspect::plan;
    use crate::inspect::schema::{Column, Index, TableSchema};

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            data_type: "int".into(),
            column_type: "int(11)".into(),
            nullable: false,
            charset: None,
            collation: None,
            generated: false,
            info: crate::binlog::ColumnInfo::from_information_schema(
                name, "int", "int(11)", None, None, None, "",
            ),
        }
    }

    fn apply_plan() -> ApplyPlan {
        let original = TableSchema {
            schema: "d".into(),
            name: "t".into(),
            engine: "InnoDB".into(),
            columns: vec![col("id"), col("gone"), col("v")],
            indexes: vec![Index {
                name: "PRIMARY".into(),
                unique: true,
                columns: vec!["id".into()],
                prefixes: vec![None],
                functional: false,
            }],
        };
        let mut ghost = original.clone();
        ghost.columns.remove(1);
        let p = plan::build(&original, &ghost, &[], false, false).unwrap();
        ApplyPlan::new(&p, "d", "_t_gho")
    }

    const SIZES: Sizes = Sizes {
        target: STATEMENT_BYTES,
        max: 16 << 20,
        packet: 16 << 20,
    };

    type Image = Option<[i64; 3]>;

    /// A rows event of `d`.`t` whose before and after images are `rows`, each cell made by `img`.
    fn row_event<I>(
        kind: RowKind,
        rows: Vec<(Option<I>, Option<I>)>,
        img: impl Fn(I) -> Vec<Cell>,
    ) -> RowEvent {
        RowEvent {
            schema: "d".into(),
            table: "t".into(),
            kind,
            rows: rows
                .into_iter()
                .map(|(b, a)| (b.map(&img), a.map(&img)))
                .collect(),
            position: BinlogPosition::new("bin.000001", 4),
            gtid: None,
            timestamp: 0,
            from_prepare: false,
        }
    }

    fn event(kind: RowKind, rows: Vec<(Image, Image)>) -> RowEvent {
        row_event(kind, rows, |a: [i64; 3]| {
            a.iter().map(|&v| Cell::Int(v)).collect()
        })
    }

    #[test]
    fn preserving_unmapped_columns_changes_rows_in_place_event_by_event() {
        let mut plan = apply_plan();
        plan.preserve_unmapped = true;
        let events = [
            event(RowKind::Insert, vec![(None, Some([1, 9, 10]))]),
            event(RowKind::Update, vec![(Some([1, 9, 10]), Some([1, 9, 11]))]),
            event(RowKind::Update, vec![(Some([1, 9, 11]), Some([2, 9, 11]))]),
            event(RowKind::Delete, vec![(Some([2, 9, 11]), None)]),
        ];
        let upsert = |row: &str| {
            format!("INSERT /* wraith */ INTO `d`.`_t_gho` (`id`, `v`) VALUES {row} ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `v` = VALUES(`v`)")
        };
        assert_eq!(
            plan.batch_statements(&events, SIZES).unwrap(),
            vec![
                // Consecutive upserts in one statement, its rows written in order.
                upsert("(1, 10), (1, 11)"),
                "UPDATE /* wraith */ `d`.`_t_gho` SET `id` = 2, `v` = 11 WHERE `id` IN (1)".into(),
                upsert("(2, 11)"),
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (2)".into(),
            ]
        );
        // A delete between upserts keeps its place.
        let events = [
            event(
                RowKind::Insert,
                vec![(None, Some([3, 0, 1])), (None, Some([4, 0, 1]))],
            ),
            event(
                RowKind::Delete,
                vec![(Some([3, 0, 1]), None), (Some([4, 0, 1]), None)],
            ),
            event(RowKind::Insert, vec![(None, Some([3, 0, 2]))]),
        ];
        assert_eq!(
            plan.batch_statements(&events, SIZES).unwrap(),
            vec![
                upsert("(3, 1), (4, 1)"),
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (3, 4)".into(),
                upsert("(3, 2)"),
            ]
        );
    }

    #[test]
    fn an_insert_upserts_the_mapped_after_image() {
        let s = apply_plan()
            .statements(
                &event(
                    RowKind::Insert,
                    vec![(None, Some([1, 9, 10])), (None, Some([2, 9, 20]))],
                ),
                SIZES,
            )
            .unwrap();
        assert_eq!(
            s,
            vec![
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (1, 2)",
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`id`, `v`) VALUES (1, 10), (2, 20)",
            ]
        );
    }

    #[test]
    fn an_update_that_changes_the_key_removes_the_old_key() {
        let s = apply_plan()
            .statements(
                &event(RowKind::Update, vec![(Some([1, 0, 10]), Some([5, 0, 11]))]),
                SIZES,
            )
            .unwrap();
        assert_eq!(
            s[0],
            "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (1, 5)"
        );
        assert_eq!(
            s[1],
            "INSERT /* wraith */ INTO `d`.`_t_gho` (`id`, `v`) VALUES (5, 11)"
        );
    }

    #[test]
    fn a_batch_with_exact_keys_is_coalesced_per_key_last_image_wins() {
        let events = vec![
            event(
                RowKind::Insert,
                vec![(None, Some([1, 0, 10])), (None, Some([2, 0, 20]))],
            ),
            event(RowKind::Update, vec![(Some([1, 0, 10]), Some([1, 0, 11]))]),
            event(RowKind::Update, vec![(Some([2, 0, 20]), Some([3, 0, 21]))]),
            event(RowKind::Delete, vec![(Some([3, 0, 21]), None)]),
            event(RowKind::Insert, vec![(None, Some([4, 0, 40]))]),
        ];
        // The key is the ghost table's only unique key: rows still there are changed in place,
        // and only the keys whose last image is a delete are deleted.
        let s = apply_plan().batch_statements(&events, SIZES).unwrap();
        assert_eq!(
            s,
            vec![
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (2, 3)",
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`id`, `v`) VALUES (1, 11), (4, 40) \
                 ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `v` = VALUES(`v`)",
            ]
        );
        // Under --allow-skipped-rows (and with any other unique key, below) every key touched
        // is deleted and the last images inserted again.
        let mut plan = apply_plan();
        plan.allow_skipped_rows = true;
        assert_eq!(
            plan.batch_statements(&events, SIZES).unwrap(),
            vec![
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (1, 2, 3, 4)",
                "INSERT /* wraith */ IGNORE INTO `d`.`_t_gho` (`id`, `v`) VALUES (1, 11), (4, 40)",
            ]
        );
    }

    #[test]
    fn rows_holding_a_value_of_another_shared_unique_key_make_way() {
        let original = TableSchema {
            schema: "d".into(),
            name: "t".into(),
            engine: "InnoDB".into(),
            columns: vec![col("id"), col("gone"), col("v")],
            indexes: vec![
                Index {
                    name: "PRIMARY".into(),
                    unique: true,
                    columns: vec!["id".into()],
                    prefixes: vec![None],
                    functional: false,
                },
                Index {
                    name: "v_uidx".into(),
                    unique: true,
                    columns: vec!["v".into()],
                    prefixes: vec![None],
                    functional: false,
                },
            ],
        };
        let mut ghost = original.clone();
        ghost.columns.remove(1);
        let p = plan::build(&original, &ghost, &[], false, false).unwrap();
        let plan = ApplyPlan::new(&p, "d", "_t_gho");
        let s = plan
            .batch_statements(
                &[event(
                    RowKind::Update,
                    vec![(Some([1, 0, 10]), Some([1, 0, 11]))],
                )],
                SIZES,
            )
            .unwrap();
        assert_eq!(
            s,
            vec![
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (1)",
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `v` IN (11)",
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`id`, `v`) VALUES (1, 11)",
            ]
        );
    }

    #[test]
    fn rows_whose_key_holds_a_null_wait_for_their_copy_then_are_matched_by_value() {
        let mut u = col("u");
        u.nullable = true;
        let original = TableSchema {
            schema: "d".into(),
            name: "t".into(),
            engine: "InnoDB".into(),
            columns: vec![u, col("v")],
            indexes: vec![Index {
                name: "u_uidx".into(),
                unique: true,
                columns: vec!["u".into()],
                prefixes: vec![None],
                functional: false,
            }],
        };
        let p = plan::build(&original, &original, &[], false, true).unwrap();
        let mut plan = ApplyPlan::new(&p, "d", "_t_gho");
        type NullableImage = Option<[Option<i64>; 2]>;
        let cell = |v: Option<i64>| v.map_or(Cell::Null, Cell::Int);
        let ev = |kind, rows: Vec<(NullableImage, NullableImage)>| {
            row_event(kind, rows, |a: [Option<i64>; 2]| a.map(cell).to_vec())
        };
        let events = [
            ev(RowKind::Insert, vec![(None, Some([None, Some(5)]))]),
            ev(
                RowKind::Update,
                vec![(Some([None, Some(5)]), Some([None, Some(6)]))],
            ),
            ev(
                RowKind::Update,
                vec![(Some([None, Some(6)]), Some([Some(7), Some(6)]))],
            ),
            ev(
                RowKind::Update,
                vec![(Some([Some(7), Some(6)]), Some([None, Some(6)]))],
            ),
            ev(RowKind::Delete, vec![(Some([None, Some(6)]), None)]),
        ];
        // Before the copy of such rows: only what a key addresses.
        let before: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                plan.batch_statements(std::slice::from_ref(e), SIZES)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            before,
            vec![
                vec![],
                vec![],
                vec![
                    "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE (`u` <=> 7)".to_string(),
                    "INSERT /* wraith */ INTO `d`.`_t_gho` (`u`, `v`) VALUES (7, 6)".into(),
                ],
                vec!["DELETE /* wraith */ FROM `d`.`_t_gho` WHERE (`u` <=> 7)".into()],
                vec![],
            ]
        );
        plan.null_key_rows_copied();
        let after = plan.batch_statements(&events, SIZES).unwrap();
        let one = |v| {
            format!(
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `u` <=> NULL AND `v` <=> {v} LIMIT 1"
            )
        };
        assert_eq!(
            after,
            vec![
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`u`, `v`) VALUES (NULL, 5)".to_string(),
                one(5),
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`u`, `v`) VALUES (NULL, 6)".into(),
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE (`u` <=> 7)".into(),
                one(6),
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`u`, `v`) VALUES (7, 6)".into(),
                "DELETE /* wraith */ FROM `d`.`_t_gho` WHERE (`u` <=> 7)".into(),
                "INSERT /* wraith */ INTO `d`.`_t_gho` (`u`, `v`) VALUES (NULL, 6)".into(),
                one(6),
            ]
        );
    }

    #[test]
    fn a_delete_only_deletes() {
        let s = apply_plan()
            .statements(
                &event(RowKind::Delete, vec![(Some([3, 0, 1]), None)]),
                SIZES,
            )
            .unwrap();
        assert_eq!(
            s,
            vec!["DELETE /* wraith */ FROM `d`.`_t_gho` WHERE `id` IN (3)"]
        );
    }

    fn blob_insert(id: i64, len: usize) -> RowEvent {
        let mut e = event(RowKind::Insert, vec![(None, Some([id, 0, 0]))]);
        let after = e.rows[0].1.as_mut().unwrap();
        after[2] = Cell::Bytes {
            bytes: vec![b'x'; len],
            charset: None,
        };
        e
    }

    #[test]
    fn statements_keep_to_the_target_size_and_only_a_single_row_may_pass_it() {
        let sizes = Sizes {
            target: 200,
            max: 1000,
            packet: 1100,
        };
        let events: Vec<RowEvent> = (1..=3).map(|id| blob_insert(id, 30)).collect();
        let s = apply_plan().batch_statements(&events, sizes).unwrap();
        // Inserts only (upserts: nothing is deleted first, the key being the only unique one).
        let inserts: Vec<&String> = s.iter().filter(|s| s.starts_with("INSERT")).collect();
        assert_eq!(s.len(), inserts.len(), "{s:?}");
        let rows: usize = inserts
            .iter()
            .map(|s| s.matches("_binary X'").count())
            .sum();
        assert_eq!(rows, 3);
        for statement in &s {
            assert!(statement.len() <= sizes.max, "{statement}");
            assert!(
                statement.len() <= sizes.target || statement.matches("_binary X'").count() == 1,
                "{statement}"
            );
        }
        // A row of 200 bytes (400 in hex) goes alone, past the target but within the maximum.
        let s = apply_plan()
            .batch_statements(&[blob_insert(1, 10), blob_insert(2, 200)], sizes)
            .unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[1].len() > sizes.target && s[1].len() <= sizes.max);
        assert!(s[1].contains(&"78".repeat(200)));
    }

    #[test]
    fn a_row_whose_statement_cannot_fit_the_packet_is_an_error_that_says_what_to_raise() {
        let sizes = Sizes::for_packet(1024);
        let err = apply_plan()
            .batch_statements(&[blob_insert(7, 600)], sizes)
            .unwrap_err();
        assert!(
            matches!(err, ApplyError::TooLarge { packet: 1024, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("key 7"), "{text}");
        assert!(
            text.contains("SET GLOBAL max_allowed_packet = 1048576"),
            "{text}"
        );
    }

    #[test]
    fn sizes_follow_the_packet() {
        assert_eq!(Sizes::for_packet(64 << 20).target, STATEMENT_BYTES);
        assert_eq!(Sizes::for_packet(64 << 20).max, (64 << 20) - 1024);
        assert_eq!(Sizes::for_packet(4 << 20).target, (4 << 20) - 1024);
        assert_eq!(Sizes::for_packet(1024).max, 1024 - 64);
    }

    #[test]
    fn a_transaction_goes_in_one_round_trip_unless_its_statements_are_large() {
        let small = vec!["DELETE a".to_string(), "INSERT b".to_string()];
        let trips = round_trips(&small, 1000);
        assert_eq!(
            trips,
            vec!["START TRANSACTION;\nDELETE a;\nINSERT b;\nCOMMIT".to_string()]
        );
        let large = vec!["a".repeat(10), "b".repeat(10), "c".repeat(100)];
        let trips = round_trips(&large, 50);
        assert_eq!(trips.len(), 3, "{trips:?}");
        assert_eq!(
            trips[0],
            format!("START TRANSACTION;\n{};\n{}", large[0], large[1])
        );
        assert!(
            matches!(trips[1], Cow::Borrowed(_)),
            "a large statement is not copied"
        );
        assert_eq!(trips[1], large[2]);
        assert_eq!(trips[2], "COMMIT");
    }
}
