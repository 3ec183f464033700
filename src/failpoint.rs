//! Faults injected at named points of the cut-over, the checksum and the deferred indexes'
//! build, for the tests; inert in release builds.
//!
//! In: `WRAITH_FAILPOINT=<point>:<action>` in the environment of a debug build, and at each
//! point the ids of the connections the cut-over (or the checksum's snapshot) holds. Out: at the
//! named point, the action: `kill-lock`, `kill-rename`, `kill-proof` (`KILL CONNECTION` of the
//! connection that holds the lock, issues the RENAME, or writes the marker and reads the proof),
//! `sigkill`, `sigterm`, `sigstop` (the signal to wraith itself), or `fail` (the step returns an
//! error), once per process; or `panic` at a point of [`panic_at`] (`apply:batch`, each batch the
//! apply loop applies), `sleep` there ([`sleep_at`]: 4 ms per event applied), `sleep` at
//! `copy:rows` ([`copy_rows_condition`]: each row a copy chunk reads takes 5 ms), `sleep` at
//! `checksum:chunk` ([`sleep_after`]: 300 ms after each chunk the checksum compares), `sleep`
//! at `apply:left` (300 ms after a batch left keys to the copy, before it is written), or
//! `kill-connection` at `apply:committed` ([`kill_after_commit`]). Points are named in
//! `src/cutover.rs` (`atomic:locked`, `two-step:unlocked`, ...), `src/checksum.rs`
//! (`checksum:locked`, `checksum:drained`) and `src/migration.rs` (`indexes:build`, just before
//! the deferred indexes' ALTER).
//! Invariant: without the variable, or in a release build, [`hit`] does nothing.

use std::sync::OnceLock;

use mysql_async::prelude::Queryable;

use crate::mysql::{self, sql, Credentials, Endpoint};

/// The cut-over's connections, by `CONNECTION_ID()` (0: not open).
#[derive(Debug, Clone, Copy, Default)]
pub struct Connections {
    pub lock: u64,
    pub rename: u64,
    pub proof: u64,
}

/// The failpoint configured for this process, if any: (point, action).
fn configured() -> Option<&'static (String, String)> {
    static CONFIG: OnceLock<Option<(String, String)>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            if !cfg!(debug_assertions) {
                return None;
            }
            let text = std::env::var("WRAITH_FAILPOINT").ok()?;
            let (point, action) = text.rsplit_once(':')?;
            Some((point.to_string(), action.to_string()))
        })
        .as_ref()
}

/// True when a failpoint is configured (so the cut-over reads the ids [`hit`] needs).
pub fn armed() -> bool {
    configured().is_some()
}

/// Panics if `point` is configured with the action `panic` (for points in code that cannot
/// await, such as the apply loop's batches).
pub fn panic_at(point: &str) {
    if configured_as(point, "panic") {
        panic!("failpoint {point}: panic");
    }
}

/// Whether `point` is the configured point, with `action` (every time: these actions do not fire
/// once per process, as [`hit`]'s do).
fn configured_as(point: &str, action: &str) -> bool {
    configured().is_some_and(|(at, configured)| at == point && configured == action)
}

/// Sleeps 4 ms per event if `point` is configured with the action `sleep` (`apply:batch`: the
/// apply loop applies at most 250 events a second, whatever its batches, so a backlog drains
/// for seconds).
pub async fn sleep_at(point: &str, events: usize) {
    if configured_as(point, "sleep") {
        tokio::time::sleep(std::time::Duration::from_millis(4 * events as u64)).await;
    }
}

/// Sleeps 300 ms if `point` is configured with the action `sleep` (`checksum:chunk`: after each
/// chunk the checksum compares, where it rests, so a checksum of a small table lasts seconds).
pub async fn sleep_after(point: &str) {
    if configured_as(point, "sleep") {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// The extra `WHERE` condition of each copy chunk's read under `copy:rows:sleep`: 5 ms per row
/// read, so a chunk reads its rows from a snapshot for seconds while the test changes them.
pub fn copy_rows_condition() -> Option<&'static str> {
    configured_as("copy:rows", "sleep").then_some("SLEEP(0.005) = 0")
}

/// The configured action, if `point` is the configured point and no failpoint has fired yet in
/// this process (a retried step then goes through).
fn fire(point: &str) -> Option<&'static str> {
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let (at, action) = configured()?;
    if at != point || FIRED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    tracing::warn!("failpoint {point}: {action}");
    Some(action)
}

/// At `apply:committed:kill-connection`: the applier's connection `conn` is killed just after
/// it committed a batch, as if the COMMIT's reply were lost; returns the error the connection
/// then meets, for the applier to handle as a lost connection.
pub async fn kill_after_commit(conn: &mut mysql_async::Conn) -> Option<mysql_async::Error> {
    if fire("apply:committed")? != "kill-connection" {
        return None;
    }
    let id = conn.id();
    let _ = conn.query_drop(sql::kill_connection(id)).await;
    conn.query_drop("DO 1").await.err()
}

/// Runs the configured action if `point` is the configured point. `Err` for `fail`.
pub async fn hit(
    point: &str,
    primary: &Endpoint,
    creds: &Credentials,
    ids: Connections,
) -> Result<(), String> {
    let Some(action) = fire(point) else {
        return Ok(());
    };
    let kill = |id: u64| async move {
        if let Ok(mut c) = mysql::connect(primary, creds).await {
            let _ = c.query_drop(sql::kill_connection(id)).await;
        }
    };
    match action {
        "kill-lock" => kill(ids.lock).await,
        "kill-rename" => kill(ids.rename).await,
        "kill-proof" => kill(ids.proof).await,
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
        "sigkill" => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
        "sigterm" => unsafe {
            libc::kill(libc::getpid(), libc::SIGTERM);
        },
        // A wraith frozen (or cut off) with its connections open.
        "sigstop" => unsafe {
            libc::kill(libc::getpid(), libc::SIGSTOP);
        },
        "fail" => return Err(format!("failpoint {point}")),
        other => tracing::warn!("failpoint {point}: unknown action {other}"),
    }
    // Let a signal be delivered and handled before the step goes on.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(())
}
