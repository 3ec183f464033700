//! The binlog streamer: one dedicated connection, registered as a replica, reading the binary log
//! from a given position and handing out decoded changes of the followed tables.
//!
//! In: [`StreamConfig`] (where to connect, the replica server id, the start position, channel
//! depth, reconnect policy), the [`WatchedTable`]s with their columns, and a
//! [`CancellationToken`]. Out: [`StreamItem`]s on a bounded channel, in binlog order: the rows
//! events of watched tables ([`RowEvent`]; watched names are compared under the server's
//! [`NameCase`]), DDL statements, and transaction boundaries
//! ([`StreamItem::Commit`]) whose positions are safe places to resume from. Rows events of every
//! other table are skipped by table id without decoding their rows.
//!
//! Invariant owned here: every committed change to a watched table after the start position is
//! handed out exactly once and in order of commit. The changes of an XA transaction are held from
//! its prepare, by xid, and handed out at its `XA COMMIT` or dropped at its `XA ROLLBACK`
//! ([`super::xa`]). When the connection drops (a network error, `KILL`, a server
//! restart), the streamer reconnects (up to [`StreamConfig::max_reconnects`] times in a row),
//! resumes from the last transaction boundary it passed, and suppresses whatever it already handed
//! out of the transaction it was in the middle of (positions within one server's binlog are
//! stable, so "already handed out" is "ends at or before the last position handed out").
//!
//! Flavor details handled here (the session statements come from `mysql::flavor`): MariaDB needs `@mariadb_slave_capability=4` and
//! `@master_binlog_checksum` before the dump; its GTID events (type 162) are parsed from the raw
//! payload; MySQL's GTID events (33, and 42 for a tagged GTID, MySQL 8.3+) name a transaction
//! `uuid:gno` or `uuid:tag:gno`; MariaDB's compressed events (165-171) are refused loudly, as are
//! MySQL's compressed transaction payloads (type 40). The fake ROTATE that starts a stream
//! carries a checksum that the decoder (which has not seen the format description yet) would
//! read as part of the file name: it is verified and stripped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::binlog::events::{
    Event, EventData, GtidEvent, QueryEvent, RotateEvent, StatusVarVal, TableMapEvent, XidEvent,
};
use mysql_async::binlog::StatusVarKey;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use thiserror::Error;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::value::{ColumnInfo, DecodeError, RowImages, RowKind, TableDecoder};
use super::xa::{self, XaQuery, Xid};
use crate::mysql::names::NameCase;

/// A place in a server's binary log: a file and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl BinlogPosition {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        BinlogPosition {
            file: file.into(),
            pos,
        }
    }
}

impl std::fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogPosition {
    /// Files compare by their numeric suffix (`bin.999999` < `bin.1000000`), then offsets.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.file.len(), &self.file, self.pos).cmp(&(other.file.len(), &other.file, other.pos))
    }
}

/// Which server family the stream comes from (decided once, by [`crate::mysql::Flavor`]).
pub use crate::mysql::flavor::Kind as Flavor;

/// A table whose row events the streamer decodes.
#[derive(Debug, Clone)]
pub struct WatchedTable {
    pub schema: String,
    pub table: String,
    /// The table's columns in ordinal order (from `inspect::schema::TableSchema::read`).
    pub columns: Vec<ColumnInfo>,
}

/// How to stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The server whose binlog is read. A dedicated connection is opened from these options
    /// (never a pooled one: a pool would reset its session).
    pub opts: Opts,
    /// The server id this replica registers with; unique among the server's replicas.
    pub server_id: u32,
    /// Where to start: the first event read is the one at this position.
    pub start: BinlogPosition,
    /// MariaDB only: start from this GTID state (`domain-server-seq,...`) instead of `start`.
    /// Reconnects always resume from a file position.
    pub start_gtid: Option<String>,
    /// Depth of the channel of [`StreamItem`]s (the backlog shown in the status line).
    pub channel_capacity: usize,
    /// Bytes of row images the channel may hold ([`super::value::images_size_hint`]); one
    /// larger event passes alone. 16 MB by default: two of the applier's largest batches ahead
    /// of it, and, decoded, about two and a half times as much memory.
    pub channel_bytes: usize,
    /// Reconnect attempts in a row after a dropped connection before giving up.
    pub max_reconnects: u32,
    /// Pause between reconnect attempts.
    pub reconnect_delay: Duration,
    /// The server sends a heartbeat after this long without events; a silence of three periods
    /// (plus 5 s) is taken as a dead connection.
    pub heartbeat: Duration,
    /// A boundary of a transaction that touched no watched table is handed out at most this often
    /// (so consumers see progress without one item per foreign transaction).
    pub progress_interval: Duration,
    /// How the server compares names (`lower_case_table_names`): a table map's schema and table
    /// are matched with the [`WatchedTable`]s under it.
    pub name_case: NameCase,
}

impl StreamConfig {
    pub fn new(opts: Opts, server_id: u32, start: BinlogPosition) -> Self {
        StreamConfig {
            opts,
            server_id,
            start,
            start_gtid: None,
            channel_capacity: 1000,
            channel_bytes: 16 << 20,
            max_reconnects: 5,
            reconnect_delay: Duration::from_secs(1),
            heartbeat: Duration::from_secs(2),
            progress_interval: Duration::from_secs(1),
            name_case: NameCase::Exact,
        }
    }
}

/// A rows event of a watched table, decoded.
#[derive(Debug, Clone)]
pub struct RowEvent {
    pub schema: String,
    pub table: String,
    pub kind: RowKind,
    /// Before and after images per row: inserts have only after, deletes only before.
    pub rows: Vec<RowImages>,
    /// The end of this event in the binlog. Not a safe resume point by itself (a transaction may
    /// still be open): resume from a [`Boundary`].
    pub position: BinlogPosition,
    /// The GTID of the transaction, if the server uses GTIDs.
    pub gtid: Option<String>,
    /// The event's timestamp (seconds since the epoch, from the server that wrote it first).
    pub timestamp: u32,
    /// Rows of an XA transaction, handed out at its commit (`position` is then the commit's):
    /// they are in the binlog with its prepare, so reading the binlog again from just before
    /// the commit does not bring them back.
    pub from_prepare: bool,
}

/// The end of a transaction (or of a statement outside one): everything before `position` has been
/// handed out, so it is a safe place to resume from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    pub position: BinlogPosition,
    pub gtid: Option<String>,
    /// The XA/InnoDB transaction id of an XID event.
    pub xid: Option<u64>,
    pub timestamp: u32,
}

/// What the streamer hands out.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// Rows of a watched table.
    Rows(RowEvent),
    /// A statement logged as text that is not a transaction wrapper: DDL (on any table),
    /// or statement-based DML. A [`StreamItem::Commit`] follows.
    Statement {
        schema: String,
        query: String,
        /// The sql_mode the statement ran under (its bits, as the event carries them): how its
        /// text reads ([`crate::mysql::lexer::Dialect::from_sql_mode`]).
        sql_mode: u64,
        position: BinlogPosition,
        gtid: Option<String>,
    },
    /// A transaction boundary. Always handed out after a transaction with rows of a watched table
    /// and after a statement; for other transactions at most once per `progress_interval`.
    Commit(Boundary),
}

/// Why the streamer stopped.
#[derive(Debug, Error)]
pub enum StreamError {
    #[error("binlog connection to the server failed: {0}")]
    Connect(#[source] mysql_async::Error),
    #[error("binlog stream from {position} failed {attempts} times in a row; last error: {last}")]
    GaveUp {
        position: BinlogPosition,
        attempts: u32,
        last: String,
    },
    #[error(
        "the server cannot send its binlog from {position}: {message} (was the binlog purged? \
         the migration must start over)"
    )]
    Unreadable {
        position: BinlogPosition,
        message: String,
    },
    #[error(
        "compressed binlog event (type {event_type}) at {position}: wraith cannot read MariaDB's \
         compressed events; set log_bin_compress=OFF on the server"
    )]
    Compressed {
        event_type: u8,
        position: BinlogPosition,
    },
    #[error(
        "compressed transaction payload at {position}: binlog_transaction_compression is on (on \
         the server, or in the session that wrote it); wraith does not read compressed \
         transactions. Run `SET GLOBAL binlog_transaction_compression=OFF` and start the \
         migration again"
    )]
    CompressedPayload { position: BinlogPosition },
    #[error("decoding the rows event that ends at {position}: {source}")]
    Decode {
        position: BinlogPosition,
        #[source]
        source: DecodeError,
    },
    #[error("malformed {what} event at {position}: {detail}")]
    Malformed {
        what: &'static str,
        position: BinlogPosition,
        detail: String,
    },
}

/// A running streamer: a task reading the binlog and the receiving end of its channel.
pub struct Streamer {
    rx: mpsc::Receiver<StreamItem>,
    /// Byte permits of the items in the channel, given back as they are received.
    budget: Arc<Semaphore>,
    /// The most permits one item takes ([`StreamConfig::channel_bytes`]).
    limit: usize,
    task: JoinHandle<Result<(), StreamError>>,
    cancel: CancellationToken,
}

impl Streamer {
    /// Starts streaming in a new task. It runs until `cancel` is cancelled, the receiver is
    /// dropped, or an error it cannot recover from (see [`Streamer::finish`]).
    pub fn start(
        config: StreamConfig,
        tables: Vec<WatchedTable>,
        cancel: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let budget = Arc::new(Semaphore::new(config.channel_bytes.max(1)));
        // Its own token under the caller's: `finish` stops this streamer, nothing else.
        let cancel = cancel.child_token();
        let task_cancel = cancel.clone();
        let limit = config.channel_bytes.clamp(1, u32::MAX as usize);
        let sender = Sender {
            tx,
            budget: budget.clone(),
            limit,
        };
        let task = tokio::spawn(async move { run(config, tables, sender, task_cancel).await });
        Streamer {
            rx,
            budget,
            limit,
            task,
            cancel,
        }
    }

    /// The next item, or `None` once the streamer has stopped (then see [`Streamer::finish`]).
    pub async fn recv(&mut self) -> Option<StreamItem> {
        let item = self.rx.recv().await?;
        self.budget.add_permits(item_cost(&item, self.limit));
        Some(item)
    }

    /// Items waiting in the channel: the backlog.
    pub fn backlog(&self) -> usize {
        self.rx.len()
    }

    /// Stops the streamer (cancelling its token) and returns how it ended.
    pub async fn finish(self) -> Result<(), StreamError> {
        self.cancel.cancel();
        drop(self.rx);
        match self.task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Ok(()),
        }
    }
}

/// The sending end of the channel: an item waits for its bytes' permits before it is sent, so
/// the channel holds at most [`StreamConfig::channel_bytes`] of row images (or one larger item).
struct Sender {
    tx: mpsc::Sender<StreamItem>,
    budget: Arc<Semaphore>,
    limit: usize,
}

impl Sender {
    /// Sends `item`; `Err` once the receiver is gone.
    async fn send(&self, item: StreamItem) -> Result<(), ()> {
        let cost = item_cost(&item, self.limit) as u32;
        self.budget
            .acquire_many(cost)
            .await
            .map_err(|_| ())?
            .forget();
        self.tx.send(item).await.map_err(|_| ())
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The permits an item takes: the bytes of its row images, at most `limit`.
fn item_cost(item: &StreamItem, limit: usize) -> usize {
    match item {
        StreamItem::Rows(event) => super::value::images_size_hint(&event.rows).min(limit),
        _ => 0,
    }
}

/// An event's place: its end position, and its index among events that share that position (the
/// inner events of a MySQL transaction payload; 0 for every other event).
type Cursor = (BinlogPosition, u32);

/// Where the stream stands; survives reconnects.
struct State {
    /// The last transaction boundary passed: where a new connection resumes.
    resume: BinlogPosition,
    /// The end of the last event handed out, if any: a replay suppresses everything up to it.
    delivered: Option<Cursor>,
    /// The end of the last event with a real position in the current file, and how many events
    /// without one (the inner events of a MySQL compressed transaction payload) followed it.
    last_pos: u64,
    sub: u32,
    /// The file the current connection is reading.
    file: String,
    /// GTID of the transaction being read.
    gtid: Option<String>,
    in_transaction: bool,
    /// The open transaction had rows of a watched table.
    had_rows: bool,
    /// The open transaction is an XA transaction: its rows are held in `xa_rows`, not handed out.
    xa_open: bool,
    xa_rows: Vec<RowEvent>,
    /// Rows of prepared XA transactions, by xid, until their commit or rollback. Kept across
    /// reconnects (a reconnect resumes after the prepare).
    prepared: HashMap<Xid, Vec<RowEvent>>,
    last_progress: Instant,
    /// No boundary passed yet since a GTID start: a new connection starts from the GTID again.
    resume_by_gtid: bool,
    /// Per table id: the decoder of a watched table (with the table map it was built from), or
    /// `None` for a table that is skipped.
    tables: HashMap<u64, Option<KnownTable>>,
}

impl State {
    /// The state of a stream that has read nothing yet from `config.start`.
    fn new(config: &StreamConfig) -> State {
        State {
            resume: config.start.clone(),
            delivered: None,
            last_pos: config.start.pos,
            sub: 0,
            file: config.start.file.clone(),
            gtid: None,
            in_transaction: false,
            had_rows: false,
            xa_open: false,
            xa_rows: Vec::new(),
            prepared: HashMap::new(),
            last_progress: Instant::now(),
            resume_by_gtid: config.start_gtid.is_some(),
            tables: HashMap::new(),
        }
    }
}

/// The watched tables' columns, keyed by names in the form the server's rule makes equal
/// ([`NameCase::key`]).
fn watched_tables(
    config: &StreamConfig,
    tables: Vec<WatchedTable>,
) -> HashMap<(String, String), Vec<ColumnInfo>> {
    let case = config.name_case;
    tables
        .into_iter()
        .map(|t| ((case.key(&t.schema), case.key(&t.table)), t.columns))
        .collect()
}

/// The streamer's event handling without a connection: events read from a binlog file are fed to
/// [`handle_event`] exactly as a session feeds the events of its stream (the tests over the real
/// MySQL binlog files of `fixtures/mysql` run this way).
#[cfg(test)]
pub(super) struct Replay {
    state: State,
    config: StreamConfig,
    watched: HashMap<(String, String), Vec<ColumnInfo>>,
    seen_fde: bool,
}

#[cfg(test)]
impl Replay {
    /// A stream that starts at `config.start` and follows `tables`.
    pub(super) fn new(config: StreamConfig, tables: Vec<WatchedTable>) -> Replay {
        Replay {
            state: State::new(&config),
            watched: watched_tables(&config, tables),
            config,
            seen_fde: false,
        }
    }

    /// Handles the next event as [`session`] does (with the server's checksums on).
    pub(super) fn feed(&mut self, event: &Event) -> Result<Vec<StreamItem>, StreamError> {
        if event.header().event_type_raw() == 15 {
            self.seen_fde = true;
        }
        handle_event(
            event,
            !self.seen_fde,
            &self.watched,
            &mut self.state,
            &self.config,
        )
    }
}

/// A watched table as the current table map describes it.
struct KnownTable {
    map: TableMapEvent<'static>,
    decoder: Arc<TableDecoder>,
    schema: String,
    table: String,
}

enum SessionEnd {
    Cancelled,
    ConsumerGone,
}

/// A session failure: whether another connection may fix it.
enum SessionError {
    Retry(String),
    Fatal(StreamError),
}

async fn run(
    config: StreamConfig,
    tables: Vec<WatchedTable>,
    tx: Sender,
    cancel: CancellationToken,
) -> Result<(), StreamError> {
    let watched = watched_tables(&config, tables);
    let mut state = State::new(&config);
    let mut failures = 0u32;
    loop {
        let use_gtid = state.resume_by_gtid;
        let mut progressed = false;
        let result = session(
            &config,
            use_gtid,
            &watched,
            &mut state,
            &tx,
            &cancel,
            &mut progressed,
        )
        .await;
        match result {
            Ok(SessionEnd::Cancelled) | Ok(SessionEnd::ConsumerGone) => return Ok(()),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Retry(last)) => {
                if progressed {
                    failures = 0;
                }
                failures += 1;
                if failures > config.max_reconnects {
                    return Err(StreamError::GaveUp {
                        position: state.resume.clone(),
                        attempts: failures,
                        last,
                    });
                }
                tracing::warn!(
                    "binlog stream interrupted ({last}); reconnecting from {} (attempt {failures} of {})",
                    state.resume,
                    config.max_reconnects
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(config.reconnect_delay) => {}
                }
            }
        }
    }
}

/// Whether a server error means the binlog itself cannot be read from here (not a network blip).
fn is_unreadable(e: &mysql_async::Error) -> Option<String> {
    match e {
        // ER_MASTER_FATAL_ERROR_READING_BINLOG: purged file, bad position, ...
        mysql_async::Error::Server(s) if s.code == 1236 => Some(s.message.clone()),
        _ => None,
    }
}

async fn connect(
    config: &StreamConfig,
    use_gtid: bool,
) -> Result<(Conn, Flavor, bool), SessionError> {
    let mut conn = Conn::new(config.opts.clone())
        .await
        .map_err(|e| SessionError::Retry(format!("connecting: {e}")))?;
    let setup: Result<(Flavor, bool), mysql_async::Error> = async {
        let server = crate::mysql::Flavor::detect(&mut conn).await?;
        let flavor = server.kind;
        let checksum: String = conn
            .query_first("SELECT @@global.binlog_checksum")
            .await?
            .unwrap_or_default();
        let checksum_on = !checksum.eq_ignore_ascii_case("NONE");
        let nanos = config.heartbeat.as_nanos().max(1_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {nanos}"))
            .await?;
        for statement in server.binlog_dump_session() {
            conn.query_drop(*statement).await?;
        }
        if use_gtid && flavor == Flavor::MariaDb {
            let gtid = config.start_gtid.clone().unwrap_or_default();
            conn.exec_drop("SET @slave_connect_state = ?", (gtid,))
                .await?;
        }
        Ok((flavor, checksum_on))
    }
    .await;
    let (flavor, checksum_on) =
        setup.map_err(|e| SessionError::Retry(format!("preparing the replica session: {e}")))?;
    Ok((conn, flavor, checksum_on))
}

#[allow(clippy::too_many_arguments)]
async fn session(
    config: &StreamConfig,
    use_gtid: bool,
    watched: &HashMap<(String, String), Vec<ColumnInfo>>,
    state: &mut State,
    tx: &Sender,
    cancel: &CancellationToken,
    progressed: &mut bool,
) -> Result<SessionEnd, SessionError> {
    let (conn, _flavor, checksum_on) = tokio::select! {
        _ = cancel.cancelled() => return Ok(SessionEnd::Cancelled),
        c = connect(config, use_gtid) => c?,
    };
    let start = state.resume.clone();
    let file = if use_gtid {
        Vec::new()
    } else {
        start.file.clone().into_bytes()
    };
    let request = BinlogStreamRequest::new(config.server_id)
        .with_filename(&file)
        .with_pos(if use_gtid { 4 } else { start.pos });
    let mut stream =
        conn.get_binlog_stream(request)
            .await
            .map_err(|e| match is_unreadable(&e) {
                Some(message) => SessionError::Fatal(StreamError::Unreadable {
                    position: start.clone(),
                    message,
                }),
                None => SessionError::Retry(format!("requesting the binlog: {e}")),
            })?;
    state.file = start.file.clone();
    state.last_pos = start.pos;
    state.sub = 0;
    state.in_transaction = false;
    state.had_rows = false;
    state.gtid = None;
    // An XA transaction cut off before its prepare is read again from the resume point.
    state.xa_open = false;
    state.xa_rows.clear();
    let idle = config.heartbeat * 3 + Duration::from_secs(5);
    let mut seen_fde = false;
    let end = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break SessionEnd::Cancelled,
            _ = tx.closed() => break SessionEnd::ConsumerGone,
            n = tokio::time::timeout(idle, stream.next()) => n,
        };
        let event = match next {
            Err(_) => {
                return Err(SessionError::Retry(format!(
                    "no event or heartbeat for {idle:?}"
                )))
            }
            Ok(None) => {
                return Err(SessionError::Retry(
                    "the server closed the binlog stream".into(),
                ))
            }
            Ok(Some(Err(e))) => {
                return Err(match is_unreadable(&e) {
                    Some(message) => SessionError::Fatal(StreamError::Unreadable {
                        position: state.resume.clone(),
                        message,
                    }),
                    None => SessionError::Retry(e.to_string()),
                })
            }
            Ok(Some(Ok(event))) => event,
        };
        *progressed = true;
        if event.header().event_type_raw() == 15 {
            seen_fde = true;
        }
        let handled = handle_event(&event, checksum_on && !seen_fde, watched, state, config);
        // The raw event (as large as the rows it carries) is not kept while the items wait for
        // room in the channel.
        drop(event);
        match handled {
            Ok(items) => {
                for item in items {
                    tokio::select! {
                        _ = cancel.cancelled() => { let _ = stream.close().await; return Ok(SessionEnd::Cancelled) }
                        sent = tx.send(item) => if sent.is_err() { break; }
                    }
                }
                if tx.is_closed() {
                    break SessionEnd::ConsumerGone;
                }
            }
            Err(e) => return Err(SessionError::Fatal(e)),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.close()).await;
    Ok(end)
}

const ROTATE: u8 = 4;
const QUERY: u8 = 2;
const XID: u8 = 16;
const TABLE_MAP: u8 = 19;
const HEARTBEAT: u8 = 27;
const MYSQL_GTID: u8 = 33;
const MYSQL_ANONYMOUS_GTID: u8 = 34;
const XA_PREPARE: u8 = 38;
const PARTIAL_UPDATE_ROWS: u8 = 39;
const TRANSACTION_PAYLOAD: u8 = 40;
/// A GTID with a tag (MySQL 8.3+: `gtid_next = 'AUTOMATIC:<tag>'`).
const MYSQL_GTID_TAGGED: u8 = 42;
const MARIADB_GTID: u8 = 162;
const ARTIFICIAL_FLAG: u16 = 0x20;

fn is_rows_event(t: u8) -> bool {
    matches!(t, 23..=25 | 30..=32 | PARTIAL_UPDATE_ROWS)
}

/// Processes one event; returns the items to hand out (already filtered for replays).
fn handle_event(
    event: &Event,
    before_fde_with_checksum: bool,
    watched: &HashMap<(String, String), Vec<ColumnInfo>>,
    state: &mut State,
    config: &StreamConfig,
) -> Result<Vec<StreamItem>, StreamError> {
    let header = event.header();
    let t = header.event_type_raw();
    let log_pos = u64::from(header.log_pos());
    if t == HEARTBEAT {
        // Sent when the server has nothing new; its position restates the last event's.
        return Ok(Vec::new());
    }
    let artificial = header.flags_raw() & ARTIFICIAL_FLAG != 0;
    // Events inside a MySQL transaction payload have no position of their own: they take the
    // payload's end and a running index, which a replay from the same boundary reproduces.
    if log_pos != 0 && !artificial {
        state.last_pos = log_pos;
        state.sub = 0;
    } else {
        state.sub += 1;
    }
    let real = !artificial && state.last_pos != 0;
    let here = BinlogPosition::new(state.file.clone(), state.last_pos);
    let cursor: Cursor = (here.clone(), state.sub);
    let malformed = |what: &'static str, detail: String| StreamError::Malformed {
        what,
        position: here.clone(),
        detail,
    };
    let mut items = Vec::new();
    if (165..=171).contains(&t) {
        return Err(StreamError::Compressed {
            event_type: t,
            position: here,
        });
    }
    if t == TRANSACTION_PAYLOAD {
        // The driver hands out the payload's inner events after it, decompressed whole in
        // memory, and none at all (silently) for a payload it cannot decompress.
        return Err(StreamError::CompressedPayload { position: here });
    }
    match t {
        ROTATE => {
            let name =
                rotate_name(event, before_fde_with_checksum).map_err(|e| malformed("ROTATE", e))?;
            let rotate: RotateEvent<'_> = event
                .read_event()
                .map_err(|e| malformed("ROTATE", e.to_string()))?;
            state.file = name;
            state.last_pos = rotate.position();
            state.sub = 0;
            // A real rotate ends a file between transactions, so the next file's start is a
            // resume point; a fake one restates where this connection starts (for a GTID start,
            // the start of the file, which is not a resume point: keep resuming by GTID).
            if !state.in_transaction && !state.resume_by_gtid {
                state.resume = BinlogPosition::new(state.file.clone(), rotate.position());
            }
        }
        MARIADB_GTID | MYSQL_GTID | MYSQL_GTID_TAGGED | MYSQL_ANONYMOUS_GTID
            if !state.xa_rows.is_empty() =>
        {
            return Err(malformed(
                "GTID",
                "a new transaction began while an XA transaction's changes were neither \
                 prepared nor committed"
                    .into(),
            ));
        }
        MARIADB_GTID => {
            let data = event.data();
            if data.len() < 13 {
                return Err(malformed("GTID", format!("{} bytes", data.len())));
            }
            let seq = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
            let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
            let flags = data[12];
            state.gtid = Some(format!("{domain}-{}-{seq}", header.server_id()));
            // FL_STANDALONE (1): a statement with no COMMIT/XID after it (DDL); its QUERY event
            // ends the transaction.
            let _standalone = flags & 1 != 0;
            state.in_transaction = true;
            state.had_rows = false;
            state.xa_open = flags & xa::MARIADB_FL_PREPARED_XA != 0;
        }
        MYSQL_GTID | MYSQL_GTID_TAGGED => {
            let gtid: GtidEvent = event
                .read_event()
                .map_err(|e| malformed("GTID", e.to_string()))?;
            let sid = uuid_text(&gtid.sid());
            state.gtid = Some(match gtid.tag() {
                Some(tag) => format!("{sid}:{}:{}", tag.as_str(), gtid.gno()),
                None => format!("{sid}:{}", gtid.gno()),
            });
            state.in_transaction = true;
            state.had_rows = false;
            state.xa_open = false;
        }
        MYSQL_ANONYMOUS_GTID => {
            state.gtid = None;
            state.in_transaction = true;
            state.had_rows = false;
            state.xa_open = false;
        }
        QUERY => {
            let q: QueryEvent<'_> = event
                .read_event()
                .map_err(|e| malformed("QUERY", e.to_string()))?;
            let query = q.query();
            let upper = query.trim_start().to_ascii_uppercase();
            let xa = XaQuery::read(&query)
                .transpose()
                .map_err(|e| malformed("QUERY", e))?;
            if let Some(XaQuery::Commit(xid) | XaQuery::Rollback(xid)) = &xa {
                // The second group of an XA transaction: hand out or drop what its prepare held.
                let held = state.prepared.remove(xid);
                let fresh = state.delivered.as_ref().is_none_or(|d| &cursor > d);
                match (&xa, held) {
                    (Some(XaQuery::Commit(_)), Some(rows)) if fresh => {
                        state.had_rows |= !rows.is_empty();
                        items.extend(rows.into_iter().map(|mut r| {
                            r.position = here.clone();
                            r.gtid = state.gtid.clone();
                            r.from_prepare = true;
                            StreamItem::Rows(r)
                        }));
                    }
                    (Some(XaQuery::Commit(_)), None) if fresh => tracing::warn!(
                        "XA COMMIT {xid} at {here} of a transaction prepared before the binlog \
                         was read from: a change it made to the migrated table was written with its \
                         prepare, which the applier never read; where the copy read those rows \
                         before this commit, the new table misses the change (the checksum before \
                         the swap finds it)"
                    ),
                    _ => {}
                }
                boundary(
                    state,
                    config,
                    &cursor,
                    None,
                    header.timestamp(),
                    real,
                    &mut items,
                );
            } else if let Some(XaQuery::Prepare(xid)) = xa {
                prepare(state, xid, false, &here, &mut items);
                boundary(
                    state,
                    config,
                    &cursor,
                    None,
                    header.timestamp(),
                    real,
                    &mut items,
                );
            } else if upper.starts_with("BEGIN") || xa.is_some() {
                // BEGIN, XA START (MySQL) or XA END: inside a transaction.
                state.in_transaction = true;
                if xa == Some(XaQuery::Start) {
                    state.xa_open = true;
                }
            } else {
                let is_commit = upper.starts_with("COMMIT") || upper.starts_with("ROLLBACK");
                if !is_commit && real && state.delivered.as_ref().is_none_or(|d| &cursor > d) {
                    items.push(StreamItem::Statement {
                        schema: q.schema().into_owned(),
                        query: query.into_owned(),
                        sql_mode: sql_mode(&q),
                        position: here.clone(),
                        gtid: state.gtid.clone(),
                    });
                    state.had_rows = true;
                }
                boundary(
                    state,
                    config,
                    &cursor,
                    None,
                    header.timestamp(),
                    real,
                    &mut items,
                );
            }
        }
        XID => {
            let xid: XidEvent = event
                .read_event()
                .map_err(|e| malformed("XID", e.to_string()))?;
            if state.xa_open {
                // Not prepared but committed: the rows held are committed here.
                state.xa_open = false;
                items.extend(state.xa_rows.drain(..).map(|mut r| {
                    r.position = here.clone();
                    StreamItem::Rows(r)
                }));
            }
            boundary(
                state,
                config,
                &cursor,
                Some(xid.xid),
                header.timestamp(),
                real,
                &mut items,
            );
        }
        XA_PREPARE => {
            let (one_phase, xid) =
                xa::read_prepare(event.data()).map_err(|e| malformed("XA_PREPARE", e))?;
            prepare(state, xid, one_phase, &here, &mut items);
            boundary(
                state,
                config,
                &cursor,
                None,
                header.timestamp(),
                real,
                &mut items,
            )
        }
        TABLE_MAP => {
            let tme: TableMapEvent<'_> = event
                .read_event()
                .map_err(|e| malformed("TABLE_MAP", e.to_string()))?;
            let id = tme.table_id();
            let (schema, table) = (
                tme.database_name().into_owned(),
                tme.table_name().into_owned(),
            );
            let case = config.name_case;
            match watched.get(&(case.key(&schema), case.key(&table))) {
                None => {
                    state.tables.insert(id, None);
                }
                Some(columns) => {
                    let fresh =
                        !matches!(state.tables.get(&id), Some(Some(known)) if known.map == tme);
                    if fresh {
                        let decoder = TableDecoder::new(&tme, columns).map_err(|source| {
                            StreamError::Decode {
                                position: here.clone(),
                                source,
                            }
                        })?;
                        let known = KnownTable {
                            map: tme.clone().into_owned(),
                            decoder: Arc::new(decoder),
                            schema,
                            table,
                        };
                        state.tables.insert(id, Some(known));
                    }
                }
            }
        }
        t if is_rows_event(t) => {
            let data = event.data();
            let table_id = data.get(..6).map(|b| {
                b.iter()
                    .rev()
                    .fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
            });
            let Some(Some(known)) = table_id.and_then(|id| state.tables.get(&id)) else {
                return Ok(items);
            };
            let decoder = known.decoder.clone();
            let (schema, table) = (known.schema.clone(), known.table.clone());
            let rows = match event
                .read_data()
                .map_err(|e| malformed("rows", e.to_string()))?
            {
                Some(EventData::RowsEvent(rows)) => rows,
                _ => return Err(malformed("rows", "not a rows event".into())),
            };
            let (kind, images) = decoder
                .decode(&rows)
                .map_err(|source| StreamError::Decode {
                    position: here.clone(),
                    source,
                })?;
            state.had_rows = true;
            if state.delivered.as_ref().is_none_or(|d| &cursor > d) {
                let event = RowEvent {
                    schema,
                    table,
                    kind,
                    rows: images,
                    position: here.clone(),
                    gtid: state.gtid.clone(),
                    timestamp: header.timestamp(),
                    from_prepare: false,
                };
                if state.xa_open {
                    // Handed out at its XA COMMIT, if it comes.
                    state.xa_rows.push(event);
                } else {
                    items.push(StreamItem::Rows(event));
                    state.delivered = Some(cursor.clone());
                }
            }
        }
        _ => {}
    }
    Ok(items)
}

/// An XA transaction's prepare: its held rows are kept under `xid` until its commit, or, for a
/// one-phase commit (MySQL), handed out now.
fn prepare(
    state: &mut State,
    xid: Xid,
    one_phase: bool,
    here: &BinlogPosition,
    items: &mut Vec<StreamItem>,
) {
    let rows = std::mem::take(&mut state.xa_rows);
    state.xa_open = false;
    if one_phase {
        items.extend(rows.into_iter().map(|mut r| {
            r.position = here.clone();
            r.from_prepare = true;
            StreamItem::Rows(r)
        }));
    } else {
        state.prepared.insert(xid, rows);
    }
}

/// The sql_mode bits of a QUERY event (0, the default reading, if it does not carry them).
fn sql_mode(q: &QueryEvent<'_>) -> u64 {
    q.status_vars()
        .get_status_var(StatusVarKey::SqlMode)
        .and_then(|v| match v.get_value() {
            Ok(StatusVarVal::SqlMode(flags)) => Some(flags.0),
            _ => None,
        })
        .unwrap_or(0)
}

/// Ends a transaction at `here`: it becomes the resume point, and a Commit is handed out if the
/// transaction had watched rows or a statement, or if progress is due.
fn boundary(
    state: &mut State,
    config: &StreamConfig,
    cursor: &Cursor,
    xid: Option<u64>,
    timestamp: u32,
    real: bool,
    items: &mut Vec<StreamItem>,
) {
    let had_rows = std::mem::take(&mut state.had_rows);
    state.in_transaction = false;
    let gtid = state.gtid.take();
    if !real {
        return;
    }
    let here = &cursor.0;
    state.resume = here.clone();
    state.resume_by_gtid = false;
    let replayed = state.delivered.as_ref().is_some_and(|d| cursor <= d);
    let due = state.last_progress.elapsed() >= config.progress_interval;
    if !replayed && (had_rows || due) {
        items.push(StreamItem::Commit(Boundary {
            position: here.clone(),
            gtid,
            xid,
            timestamp,
        }));
        state.delivered = Some(cursor.clone());
        state.last_progress = Instant::now();
    }
}

/// The file name of a ROTATE event. Before the format description event arrives, the decoder
/// does not know that events carry a CRC32, so the checksum is still glued to the name: strip it
/// when it verifies.
fn rotate_name(event: &Event, maybe_checksum: bool) -> Result<String, String> {
    let data = event.data();
    if data.len() < 8 {
        return Err(format!("{} bytes", data.len()));
    }
    let mut name = &data[8..];
    if maybe_checksum && name.len() >= 4 {
        let header = event.header();
        let mut bytes = Vec::with_capacity(19 + data.len());
        bytes.extend_from_slice(&header.timestamp().to_le_bytes());
        bytes.push(header.event_type_raw());
        bytes.extend_from_slice(&header.server_id().to_le_bytes());
        bytes.extend_from_slice(&header.event_size().to_le_bytes());
        bytes.extend_from_slice(&header.log_pos().to_le_bytes());
        bytes.extend_from_slice(&header.flags_raw().to_le_bytes());
        bytes.extend_from_slice(&data[..data.len() - 4]);
        let stored = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap_or_default());
        if crc32fast::hash(&bytes) == stored {
            name = &name[..name.len() - 4];
        }
    }
    String::from_utf8(name.to_vec()).map_err(|_| "file name is not UTF-8".to_string())
}

fn uuid_text(sid: &[u8; 16]) -> String {
    let h = super::json::hex(sid).to_ascii_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_number_then_offset() {
        let p = |f: &str, n| BinlogPosition::new(f, n);
        assert!(p("bin.000001", 900) < p("bin.000002", 4));
        assert!(p("bin.999999", 900) < p("bin.1000000", 4));
        assert!(p("bin.000002", 4) < p("bin.000002", 5));
        assert_eq!(p("bin.000002", 4).to_string(), "bin.000002:4");
    }

    fn rows(bytes: usize) -> StreamItem {
        StreamItem::Rows(RowEvent {
            schema: "d".into(),
            table: "t".into(),
            kind: RowKind::Insert,
            rows: vec![(
                None,
                Some(vec![super::super::Cell::Bytes {
                    bytes: vec![0; bytes],
                    charset: None,
                }]),
            )],
            position: BinlogPosition::new("bin.000001", 4),
            gtid: None,
            timestamp: 0,
            from_prepare: false,
        })
    }

    #[tokio::test]
    async fn the_channel_holds_at_most_its_bytes_of_row_images_or_one_larger_event() {
        let (tx, mut rx) = mpsc::channel(100);
        let budget = Arc::new(Semaphore::new(1000));
        let sender = Sender {
            tx,
            budget: budget.clone(),
            limit: 1000,
        };
        let wait = Duration::from_millis(50);
        sender.send(rows(600)).await.unwrap();
        // A second one does not fit while the first is in the channel ...
        assert!(tokio::time::timeout(wait, sender.send(rows(600)))
            .await
            .is_err());
        // ... and does once it has been received (its permits given back).
        let first = rx.recv().await.unwrap();
        budget.add_permits(item_cost(&first, 1000));
        sender.send(rows(600)).await.unwrap();
        // An event larger than the whole budget passes alone, once the channel is empty.
        assert!(tokio::time::timeout(wait, sender.send(rows(5000)))
            .await
            .is_err());
        let second = rx.recv().await.unwrap();
        budget.add_permits(item_cost(&second, 1000));
        sender.send(rows(5000)).await.unwrap();
        assert_eq!(budget.available_permits(), 0);
    }

    /// Hand-built events of an XA transaction as MySQL 8 and MariaDB 10.11 log them (the test
    /// servers are MariaDB only: the MySQL shapes are tested here), fed to `handle_event`.
    mod xa_transactions {
        use super::*;
        use crate::binlog::xa::tests::prepare_payload;
        use crate::binlog::Cell;
        use mysql_async::binlog::events::FormatDescriptionEvent;
        use mysql_async::binlog::BinlogVersion;

        /// A stream of events with increasing positions.
        struct Events {
            pos: u32,
            replay: Replay,
        }

        impl Events {
            fn new() -> Events {
                let opts = mysql_async::Opts::from_url("mysql://root@127.0.0.1:3306").unwrap();
                let mut config = StreamConfig::new(opts, 1, BinlogPosition::new("bin.000001", 4));
                config.progress_interval = Duration::from_secs(3600);
                let column = ColumnInfo::from_information_schema(
                    "id", "int", "int(11)", None, None, None, "",
                );
                let table = WatchedTable {
                    schema: "db".into(),
                    table: "t".into(),
                    columns: vec![column],
                };
                Events {
                    pos: 4,
                    replay: Replay::new(config, vec![table]),
                }
            }

            /// Feeds one event; returns the ids of the rows handed out.
            fn feed(&mut self, type_code: u8, body: &[u8]) -> Vec<i64> {
                self.pos += 19 + body.len() as u32;
                let mut bytes = Vec::new();
                bytes.extend_from_slice(&1_700_000_000u32.to_le_bytes());
                bytes.push(type_code);
                bytes.extend_from_slice(&1u32.to_le_bytes());
                bytes.extend_from_slice(&((19 + body.len()) as u32).to_le_bytes());
                bytes.extend_from_slice(&self.pos.to_le_bytes());
                bytes.extend_from_slice(&0u16.to_le_bytes());
                bytes.extend_from_slice(body);
                let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
                let event = Event::read(&fde, &bytes[..]).unwrap();
                let items = self.replay.feed(&event).unwrap();
                items
                    .into_iter()
                    .filter_map(|i| match i {
                        StreamItem::Rows(r) => Some(r),
                        _ => None,
                    })
                    .flat_map(|r| r.rows)
                    .map(|(_, after)| match after.unwrap()[0] {
                        Cell::Int(i) => i,
                        ref c => panic!("{c:?}"),
                    })
                    .collect()
            }

            fn query(&mut self, text: &str) -> Vec<i64> {
                let mut b = Vec::new();
                b.extend_from_slice(&7u32.to_le_bytes()); // thread id
                b.extend_from_slice(&0u32.to_le_bytes()); // exec time
                b.push(2); // schema length
                b.extend_from_slice(&0u16.to_le_bytes()); // error code
                b.extend_from_slice(&0u16.to_le_bytes()); // status vars length
                b.extend_from_slice(b"db\0");
                b.extend_from_slice(text.as_bytes());
                self.feed(QUERY, &b)
            }

            fn mysql_gtid(&mut self, gno: u64) -> Vec<i64> {
                let mut b = vec![1]; // flags
                b.extend_from_slice(&[0x3e; 16]); // source id
                b.extend_from_slice(&gno.to_le_bytes());
                b.push(2); // logical timestamps follow
                b.extend_from_slice(&0u64.to_le_bytes());
                b.extend_from_slice(&0u64.to_le_bytes());
                self.feed(MYSQL_GTID, &b)
            }

            fn mariadb_gtid(&mut self, seq: u64, flags: u8) -> Vec<i64> {
                let mut b = seq.to_le_bytes().to_vec();
                b.extend_from_slice(&0u32.to_le_bytes()); // domain
                b.push(flags);
                b.extend_from_slice(&[0; 6]);
                self.feed(MARIADB_GTID, &b)
            }

            fn table_map(&mut self) -> Vec<i64> {
                let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
                b.extend_from_slice(&[2, b'd', b'b', 0, 1, b't', 0]);
                b.extend_from_slice(&[1, 3, 0, 0]); // one INT column, no metadata, not nullable
                self.feed(TABLE_MAP, &b)
            }

            /// An insert of `id`: WRITE_ROWS v2 (MySQL 8) or v1 (MariaDB).
            fn insert(&mut self, id: i32, v2: bool) -> Vec<i64> {
                let mut b = vec![42, 0, 0, 0, 0, 0, 1, 0];
                if v2 {
                    b.extend_from_slice(&[2, 0]); // extra data: none
                }
                b.extend_from_slice(&[1, 0xff, 0x00]);
                b.extend_from_slice(&id.to_le_bytes());
                self.feed(if v2 { 30 } else { 23 }, &b)
            }

            fn prepare(&mut self, one_phase: bool, gtrid: &[u8]) -> Vec<i64> {
                let xid = Xid {
                    format_id: 1,
                    gtrid: gtrid.to_vec(),
                    bqual: Vec::new(),
                };
                self.feed(XA_PREPARE, &prepare_payload(one_phase, &xid))
            }

            fn xid(&mut self) -> Vec<i64> {
                self.feed(XID, &99u64.to_le_bytes())
            }
        }

        const NONE: Vec<i64> = Vec::new();

        #[test]
        fn mysql_an_xa_transaction_is_handed_out_at_commit_and_never_after_rollback() {
            let mut s = Events::new();
            // Prepared, then rolled back.
            s.mysql_gtid(1);
            assert_eq!(s.query("XA START X'61',X'',1"), NONE);
            s.table_map();
            assert_eq!(s.insert(1, true), NONE, "held at prepare time");
            s.query("XA END X'61',X'',1");
            assert_eq!(s.prepare(false, b"a"), NONE);
            // Prepared; a plain transaction commits meanwhile; then committed.
            s.mysql_gtid(2);
            s.query("XA START X'62',X'',1");
            s.table_map();
            s.insert(3, true);
            s.query("XA END X'62',X'',1");
            assert_eq!(s.prepare(false, b"b"), NONE);
            s.mysql_gtid(3);
            s.query("BEGIN");
            s.table_map();
            assert_eq!(
                s.insert(2, true),
                vec![2],
                "a plain transaction goes through"
            );
            s.xid();
            s.mysql_gtid(4);
            assert_eq!(s.query("XA ROLLBACK X'61',X'',1"), NONE);
            s.mysql_gtid(5);
            assert_eq!(s.query("XA COMMIT X'62',X'',1"), vec![3]);
            // XA COMMIT ... ONE PHASE: an XA_PREPARE event flagged one-phase commits.
            s.mysql_gtid(6);
            s.query("XA START X'63',X'',1");
            s.table_map();
            s.insert(4, true);
            s.query("XA END X'63',X'',1");
            assert_eq!(s.prepare(true, b"c"), vec![4]);
            assert!(s.replay.state.prepared.is_empty());
        }

        #[test]
        fn mariadb_an_xa_transaction_is_handed_out_at_commit_and_never_after_rollback() {
            let mut s = Events::new();
            // MariaDB opens the group with a GTID flagged FL_PREPARED_XA, no XA START.
            s.mariadb_gtid(1, xa::MARIADB_FL_PREPARED_XA);
            s.table_map();
            assert_eq!(s.insert(1, false), NONE);
            s.query("XA END X'61',X'',1");
            assert_eq!(s.prepare(false, b"a"), NONE);
            s.mariadb_gtid(2, xa::MARIADB_FL_PREPARED_XA);
            s.table_map();
            s.insert(3, false);
            s.query("XA END X'62',X'',1");
            s.prepare(false, b"b");
            s.mariadb_gtid(3, 0);
            s.table_map();
            assert_eq!(s.insert(2, false), vec![2]);
            s.xid();
            s.mariadb_gtid(4, 0x80);
            assert_eq!(s.query("XA ROLLBACK X'61',X'',1"), NONE);
            s.mariadb_gtid(5, 0x80);
            assert_eq!(s.query("XA COMMIT X'62',X'',1"), vec![3]);
            assert!(s.replay.state.prepared.is_empty());
        }
    }

    #[test]
    fn uuids_print_in_the_usual_groups() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(uuid_text(&sid), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
    }
}
