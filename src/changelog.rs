//! The changelog table `_<t>_ghc`: heartbeats, states and cut-over markers.
//!
//! In: a connection to the primary. Out: rows gh-ost's scripts know: id 1 is the heartbeat (its
//! value a timestamp), hint `state` carries state changes and the cut-over marker
//! `AllEventsUpToLockProcessed:<token>`. Rows written here come back through the binlog, which is
//! how wraith measures lag and proves that the applier has caught up ([`Entry::read`]).
//! Acknowledged heartbeats also prove changes visible on the primary ([`Fence`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::binlog::Cell;
use crate::mysql::{self, sql, Credentials, Endpoint};

/// What the heartbeats prove of the changes wraith reads from the binlog: a change read before a
/// heartbeat was sent is visible, on the primary, to every snapshot taken once that heartbeat is
/// acknowledged.
///
/// In: from the heartbeat writer, when each heartbeat that succeeded was sent
/// ([`Fence::acknowledged`]). Out: to the applier, whether the changes it read by some moment are
/// proven visible ([`Fence::visible`], waiting [`Fence::new`]'s bound at most); to the heartbeat
/// writer, a request for a heartbeat now when a proof waits for one ([`Fence::wanted`]), so a
/// proof takes one heartbeat's round trip, not up to `--heartbeat-interval-millis`.
///
/// Why it holds: a change read from the binlog (the primary's, or a replica's, which got it from
/// the primary's) was in the primary's binlog when read; a heartbeat sent afterwards reaches the
/// primary later and is written to its binlog after the change; and the primary makes
/// transactions visible in binlog order (MariaDB always; MySQL with `binlog_order_commits`,
/// [`crate::mysql::Flavor::commit_order_sql`]), so once the heartbeat's commit is acknowledged
/// the change's is visible. Reading a change from the binlog alone does not prove it: the primary
/// sends a transaction's events once they are in its binlog, before the engine's commit makes
/// them visible.
#[derive(Debug)]
pub struct Fence {
    /// When the last acknowledged heartbeat was sent.
    sent: watch::Sender<Option<Instant>>,
    /// How long [`Fence::visible`] waits.
    wait: Duration,
    /// A proof waits for a heartbeat.
    wanted: tokio::sync::Notify,
}

impl Fence {
    /// A fence whose proofs wait at most `wait`: past it, the changes count as not proven.
    pub fn new(wait: Duration) -> Fence {
        Fence {
            sent: watch::channel(None).0,
            wait,
            wanted: tokio::sync::Notify::new(),
        }
    }

    /// Completes when a proof waits for a heartbeat sent from now on.
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }

    /// A heartbeat sent at `sent` is committed.
    pub fn acknowledged(&self, sent: Instant) {
        self.sent.send_if_modified(|last| {
            let later = last.is_none_or(|l| sent > l);
            if later {
                *last = Some(sent);
            }
            later
        });
    }

    /// Whether a heartbeat sent at or after `read_by` is acknowledged, or gets acknowledged
    /// within the wait: then every change read by `read_by` is visible.
    pub async fn visible(&self, read_by: Instant) -> bool {
        let mut rx = self.sent.subscribe();
        if !rx.borrow().is_some_and(|s| s >= read_by) {
            self.wanted.notify_one();
        }
        let proven = rx.wait_for(|sent| sent.is_some_and(|s| s >= read_by));
        let outcome = tokio::time::timeout(self.wait, proven).await;
        matches!(outcome, Ok(Ok(_)))
    }
}

/// The prefix of the cut-over marker's value.
pub const MARKER_PREFIX: &str = "AllEventsUpToLockProcessed:";

/// The hint of the row the copier writes in the transaction that copies the rows whose key holds
/// a NULL ([`Entry::NullKeyRowsCopied`]).
pub const NULL_KEY_ROWS_HINT: &str = "null-key-rows";

/// Seconds since the epoch, with microseconds, as the heartbeat writes it.
pub fn now_text() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

/// A changelog row read back from the binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A heartbeat and how long it took to come back.
    Heartbeat(Duration),
    /// A cut-over marker with its token.
    Marker(String),
    /// The rows whose key holds a NULL were copied: changes to them before this row in the binlog
    /// are in the copy, those after it are not.
    NullKeyRowsCopied,
    /// Any other hint/value.
    Other { hint: String, value: String },
}

impl Entry {
    /// Reads an after image of the changelog table (`id, last_update, hint, value`).
    pub fn read(image: &[Cell]) -> Option<Entry> {
        let text = |cell: &Cell| match cell {
            Cell::Bytes { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        };
        let hint = text(image.get(2)?)?;
        let value = text(image.get(3)?)?;
        if hint == "heartbeat" {
            let sent: f64 = value.parse().ok()?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            return Some(Entry::Heartbeat(Duration::from_secs_f64(
                (now - sent).max(0.0),
            )));
        }
        if hint == NULL_KEY_ROWS_HINT {
            return Some(Entry::NullKeyRowsCopied);
        }
        if hint == "state" {
            if let Some(token) = value.strip_prefix(MARKER_PREFIX) {
                return Some(Entry::Marker(token.to_string()));
            }
        }
        Some(Entry::Other { hint, value })
    }
}

/// Writes to the changelog table.
pub struct Changelog {
    pub schema: String,
    pub table: String,
}

impl Changelog {
    pub async fn heartbeat(&self, conn: &mut Conn) -> Result<(), mysql_async::Error> {
        conn.query_drop(sql::changelog_upsert(
            &self.schema,
            &self.table,
            Some(1),
            "heartbeat",
            &now_text(),
        ))
        .await
    }

    pub async fn state(&self, conn: &mut Conn, value: &str) -> Result<(), mysql_async::Error> {
        conn.query_drop(sql::changelog_upsert(
            &self.schema,
            &self.table,
            None,
            "state",
            value,
        ))
        .await
    }

    pub async fn marker(&self, conn: &mut Conn, token: &str) -> Result<(), mysql_async::Error> {
        self.state(conn, &format!("{MARKER_PREFIX}{token}")).await
    }

    /// Writes a heartbeat every `interval`, and whenever `fence` wants one, until cancelled,
    /// telling `timed` how long each write took (the copy's pacer) and `fence` when each that
    /// succeeded was sent. A failed write is logged and tried again at the next tick, on a new
    /// connection if the old one was lost.
    pub async fn heartbeat_loop(
        &self,
        mut conn: Conn,
        reconnect: (Endpoint, Credentials),
        interval: Duration,
        timed: impl Fn(Duration),
        fence: Option<std::sync::Arc<Fence>>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wanted = async || match &fence {
            Some(fence) => fence.wanted().await,
            None => std::future::pending().await,
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = wanted() => {}
                _ = cancel.cancelled() => return,
            }
            // Sent after the wait: a proof that asked for a heartbeat asked before this instant.
            let started = Instant::now();
            let Err(e) = self.heartbeat(&mut conn).await else {
                timed(started.elapsed());
                if let Some(fence) = &fence {
                    fence.acknowledged(started);
                }
                continue;
            };
            tracing::warn!("writing the heartbeat failed: {e}");
            if mysql::failure(&e) == mysql::Failure::ConnectionLost {
                if let Ok(fresh) = mysql::connect(&reconnect.0, &reconnect.1).await {
                    conn = fresh;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_proof_waiting_for_a_heartbeat_asks_for_one() {
        let fence = std::sync::Arc::new(Fence::new(Duration::from_secs(5)));
        let writer = fence.clone();
        let heartbeats = tokio::spawn(async move {
            writer.wanted().await;
            writer.acknowledged(Instant::now());
        });
        let read = Instant::now();
        assert!(fence.visible(read).await);
        heartbeats.await.unwrap();
    }

    #[tokio::test]
    async fn changes_are_proven_visible_only_by_a_heartbeat_sent_after_they_were_read() {
        let fence = Fence::new(Duration::from_millis(50));
        let earlier = Instant::now();
        fence.acknowledged(earlier);
        let read = Instant::now();
        assert!(!fence.visible(read).await, "a heartbeat sent before");
        fence.acknowledged(Instant::now());
        fence.acknowledged(earlier);
        assert!(fence.visible(read).await);
    }

    fn image(hint: &str, value: &str) -> Vec<Cell> {
        let b = |s: &str| Cell::Bytes {
            bytes: s.as_bytes().to_vec(),
            charset: Some("ascii".into()),
        };
        vec![Cell::UInt(1), Cell::Null, b(hint), b(value)]
    }

    #[test]
    fn heartbeats_and_markers_are_recognised() {
        assert!(
            matches!(Entry::read(&image("heartbeat", &now_text())), Some(Entry::Heartbeat(lag)) if lag < Duration::from_secs(1))
        );
        assert_eq!(
            Entry::read(&image("state", "AllEventsUpToLockProcessed:42")),
            Some(Entry::Marker("42".into()))
        );
        assert_eq!(
            Entry::read(&image("state", "Copy")),
            Some(Entry::Other {
                hint: "state".into(),
                value: "Copy".into()
            })
        );
    }
}
