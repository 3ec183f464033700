//! The binlog: a replica-protocol streamer and exact decoding of row events.
//!
//! In: a server's binary log (MySQL or MariaDB, row-based, full images), read over one dedicated
//! connection registered as a replica; the (schema, table) names to follow and their columns.
//! Out: [`StreamItem`]s on a bounded channel: decoded [`RowEvent`]s of the followed tables, and
//! transaction boundaries whose positions are safe places to resume from.
//!
//! - [`value`]: row images to [`Cell`]s and cells to SQL literals (the one place that does so).
//! - [`json`]: MySQL's binary JSON.
//! - [`stream`]: the streamer: connection, positions, GTIDs, reconnects.
//! - [`statement`]: which tables a statement logged as text (DDL) touches, and how.
//! - [`xa`]: XA transactions' events and ids (their changes are handed out at commit).
//!
//! Invariants owned here: every change to a followed table after the start position is handed out
//! exactly once, in binlog order, even across reconnects; and every value is decoded exactly
//! (see [`value`]).

pub mod json;
pub mod statement;
pub mod stream;
pub mod value;
pub mod xa;

pub use statement::{Statement, Touch};
pub use stream::{
    BinlogPosition, Boundary, Flavor, RowEvent, StreamConfig, StreamError, StreamItem, Streamer,
    WatchedTable,
};
pub use value::{Cell, ColumnInfo, DecodeError, RowImages, RowKind, TableDecoder};

#[cfg(test)]
mod mysql_fixture_tests;
#[cfg(test)]
mod test_files;
