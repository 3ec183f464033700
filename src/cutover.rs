//! Swapping the ghost table in.
//!
//! In: a copy that is complete, an apply loop that has caught up (and takes [`Control`]), and
//! connections to the primary. Out: `t` is the migrated table and `_t_del` the original, or,
//! on any failure, everything as it was (locks released, the original in place) and an error
//! saying why, so the coordinator can retry. Invariants owned here (design.md, 4 and 5): the swap
//! happens only after a marker written while writes were blocked has come back through the
//! binlog with everything before it applied; and it is atomic or nothing.
//!
//! The atomic swap is gh-ost's, with the race it has on MariaDB closed (mysql-notes.md, "The
//! cut-over"):
//! 1. connection A creates the sentry `_t_del` and takes `LOCK TABLES t WRITE, _t_del WRITE`;
//! 2. the marker is written and awaited through the binlog; the loop then holds any later event
//!    of `t` instead of applying it;
//! 3. connection B issues `RENAME TABLE t TO _t_del, _t_gho TO t`, which waits on the sentry;
//! 4. A drops the sentry; B is granted `_t_del` and `_t_gho` and queues on `t`;
//! 5. A unlocks only once the server shows that B is queued on `t` itself (not on another name):
//!    B holds the ghost table's lock (so it is past the sentry) and a later look shows it
//!    waiting, so B is granted `t` before any writer waiting on it; otherwise B is killed and A
//!    unlocks with nothing swapped;
//! 6. after the swap, the binlog must show the RENAME with no change to `t` between the marker and
//!    it; if one slipped through, the swap is reported as not proven, loudly.
//!
//! If wraith dies before step 4, the sentry makes B's rename fail, so no swap can happen with
//! unapplied events.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::apply::{Control, LoopStatus};
use crate::changelog::Changelog;
use crate::mysql::{self, sql, ConnectError, Credentials, Endpoint, Flavor};

#[derive(Debug, thiserror::Error)]
pub enum CutOverError {
    #[error("cut-over: {step}: {source}")]
    Sql {
        step: &'static str,
        source: mysql_async::Error,
    },
    #[error("cut-over: {0}")]
    Timeout(String),
    #[error("cut-over: could not prove that the RENAME was queued on the original table before unlocking; nothing was swapped")]
    NotProven,
    #[error("cut-over: the swap happened, but {0} change(s) to the original table reached the binlog after the marker and before the RENAME; they are NOT in the new table. Compare `{1}` with the new table and re-apply them")]
    LostWrites(usize, String),
    #[error("cut-over: the swap happened, but its RENAME did not come back through the binlog within {0:?}; cannot prove that no write was lost")]
    RenameNotSeen(Duration),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("cut-over: the apply loop stopped")]
    LoopGone,
}

fn step(step: &'static str) -> impl FnOnce(mysql_async::Error) -> CutOverError {
    move |source| CutOverError::Sql { step, source }
}

/// What a cut-over needs to know.
#[derive(Debug, Clone)]
pub struct CutOverSpec {
    pub primary: Endpoint,
    pub creds: Credentials,
    pub flavor: Flavor,
    pub schema: String,
    pub table: String,
    pub ghost: String,
    pub old: String,
    pub changelog: String,
    pub lock_timeout: Duration,
}

/// What a successful swap measured.
#[derive(Debug, Clone)]
pub struct Swapped {
    /// From the lock request to the unlock: the longest a writer could have waited.
    pub locked_for: Duration,
}

/// The sentry's comment, so a leftover sentry is never mistaken for an old table.
const SENTRY_COMMENT: &str = "wraith cut-over sentry";

/// One attempt at the atomic swap.
pub async fn atomic(
    spec: &CutOverSpec,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
) -> Result<Swapped, CutOverError> {
    let mut a = connect_with_lock_timeout(spec, spec.lock_timeout).await?;
    let mut b =
        connect_with_lock_timeout(spec, spec.lock_timeout * 3 + Duration::from_secs(5)).await?;
    let mut c = mysql::connect(&spec.primary, &spec.creds).await?;
    let b_id: u64 = b
        .query_first("SELECT CONNECTION_ID()")
        .await
        .map_err(step("reading the rename connection id"))?
        .unwrap_or(0);

    a.query_drop(sql::create_sentry(&spec.schema, &spec.old, SENTRY_COMMENT))
        .await
        .map_err(step("creating the sentry table"))?;
    let started = Instant::now();
    if let Err(e) = a
        .query_drop(sql::lock_tables_write(
            &spec.schema,
            &[&spec.table, &spec.old],
        ))
        .await
    {
        drop_sentry(&mut a, spec).await;
        return Err(CutOverError::Sql {
            step: "locking the original table",
            source: e,
        });
    }
    let outcome = locked(
        spec, &mut a, b, &mut c, b_id, control, status, token, started,
    )
    .await;
    match outcome {
        Ok(swapped) => {
            let locked_for = swapped;
            // Prove it from the binlog.
            let proven = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    if status.borrow().rename_seen {
                        return Ok(status.borrow().held_after_marker);
                    }
                    if status.changed().await.is_err() {
                        return Err(CutOverError::LoopGone);
                    }
                }
            })
            .await;
            match proven {
                Ok(Ok(0)) => Ok(Swapped { locked_for }),
                Ok(Ok(n)) => Err(CutOverError::LostWrites(n, spec.old.clone())),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(CutOverError::RenameNotSeen(Duration::from_secs(30))),
            }
        }
        Err(e) => {
            // Nothing was swapped: release and let the loop apply what it held.
            let _ = a.query_drop("UNLOCK TABLES").await;
            drop_sentry(&mut a, spec).await;
            let _ = control.send(Control::Apply);
            Err(e)
        }
    }
}

/// Steps 2 to 5, with `t` locked by `a`. Returns how long writers were blocked.
#[allow(clippy::too_many_arguments)]
async fn locked(
    spec: &CutOverSpec,
    a: &mut Conn,
    mut b: Conn,
    c: &mut Conn,
    b_id: u64,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
    started: Instant,
) -> Result<Duration, CutOverError> {
    // 2. The marker, written while writes to t are blocked, awaited through the binlog.
    drain_to_marker(spec, c, control, status, token).await?;

    // 3. The rename, queued behind the lock.
    let rename = sql::rename_swap(&spec.schema, &spec.table, &spec.old, &spec.ghost);
    let mut renaming = tokio::spawn(async move {
        let r = b.query_drop(rename).await;
        (b, r)
    });
    if !wait_for_state(c, b_id, "Waiting for table metadata lock").await {
        return abort_rename(
            c,
            b_id,
            &mut renaming,
            "the RENAME never started waiting on the lock",
        )
        .await;
    }
    // 4. Drop the sentry; the rename moves on to wait for t.
    a.query_drop(sql::drop_table_if_exists(&spec.schema, &spec.old))
        .await
        .map_err(step("dropping the sentry table"))?;
    // 5. Unlock only once the rename is proven to be queued on t itself.
    let proof = spec.flavor.rename_queued_on_original_sql();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut proven = false;
    while Instant::now() < deadline {
        let n: Option<u64> = c
            .exec_first(proof, (b_id, &spec.schema, &spec.table, &spec.ghost))
            .await
            .map_err(step("checking the RENAME's locks"))?;
        // Past the sentry (or pending on t); seen waiting afterwards, it waits on t itself.
        if n.unwrap_or(0) > 0 && wait_for_state(c, b_id, "Waiting for table metadata lock").await {
            proven = true;
            break;
        }
        if renaming.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if !proven {
        abort_rename(
            c,
            b_id,
            &mut renaming,
            "the RENAME was not seen queued on the original table",
        )
        .await?;
        return Err(CutOverError::NotProven);
    }
    a.query_drop("UNLOCK TABLES")
        .await
        .map_err(step("unlocking"))?;
    let locked_for = started.elapsed();
    let (_b, result) = renaming.await.map_err(|_| CutOverError::LoopGone)?;
    result.map_err(step("renaming the tables"))?;
    info!(
        "tables swapped; writers were blocked for {:.3}s",
        locked_for.as_secs_f64()
    );
    Ok(locked_for)
}

/// A connection to the primary whose statements wait at most `timeout` for metadata locks.
async fn connect_with_lock_timeout(
    spec: &CutOverSpec,
    timeout: Duration,
) -> Result<Conn, CutOverError> {
    let mut conn = mysql::connect(&spec.primary, &spec.creds).await?;
    conn.query_drop(format!(
        "SET SESSION lock_wait_timeout = {}",
        timeout.as_secs().max(1)
    ))
    .await
    .map_err(step("setting the lock wait timeout"))?;
    Ok(conn)
}

/// Tells the apply loop to expect the marker `token`, writes it (on `c`, while the original table
/// is locked), and waits up to the lock timeout until every event before it is applied.
async fn drain_to_marker(
    spec: &CutOverSpec,
    c: &mut Conn,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
) -> Result<(), CutOverError> {
    control
        .send(Control::ExpectMarker(token.to_string()))
        .map_err(|_| CutOverError::LoopGone)?;
    let changelog = Changelog {
        schema: spec.schema.clone(),
        table: spec.changelog.clone(),
    };
    changelog
        .marker(c, token)
        .await
        .map_err(step("writing the marker"))?;
    let applied = async {
        while status.borrow().marker_applied.as_deref() != Some(token) {
            status.changed().await.map_err(|_| CutOverError::LoopGone)?;
        }
        Ok(())
    };
    tokio::time::timeout(spec.lock_timeout, applied).await.map_err(|_| {
        CutOverError::Timeout(format!(
            "the marker did not come back through the binlog within {:?} (the applier is behind); will retry",
            spec.lock_timeout
        ))
    })?
}

/// Polls until connection `id` shows `state` (up to 2 s).
async fn wait_for_state(c: &mut Conn, id: u64, state: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let found: Option<String> = c
            .exec_first(
                "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .await
            .ok()
            .flatten();
        if found.as_deref().is_some_and(|s| s.starts_with(state)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// Kills the pending RENAME and waits until it has failed (so nothing can be swapped).
async fn abort_rename(
    c: &mut Conn,
    b_id: u64,
    renaming: &mut tokio::task::JoinHandle<(Conn, Result<(), mysql_async::Error>)>,
    why: &str,
) -> Result<Duration, CutOverError> {
    warn!("cut-over: {why}; cancelling the RENAME");
    let _ = c.query_drop(format!("KILL QUERY {b_id}")).await;
    match renaming.await {
        Ok((_, Err(_))) => Err(CutOverError::Timeout(format!(
            "{why}; nothing was swapped, will retry"
        ))),
        Ok((_, Ok(()))) => Err(CutOverError::Timeout(format!(
            "{why}, and the RENAME completed while the lock was held; this should be impossible"
        ))),
        Err(_) => Err(CutOverError::LoopGone),
    }
}

/// Drops the sentry `_t_del`, but only if it is the sentry (never the old table).
async fn drop_sentry(conn: &mut Conn, spec: &CutOverSpec) {
    let comment: Option<String> = conn
        .exec_first(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&spec.schema, &spec.old),
        )
        .await
        .ok()
        .flatten();
    if comment.as_deref() == Some(SENTRY_COMMENT) {
        let _ = conn
            .query_drop(sql::drop_table_if_exists(&spec.schema, &spec.old))
            .await;
    }
}

/// gh-ost's two-step cut-over: lock, drain, rename the original away, unlock, rename the ghost in.
/// Between the two renames the table does not exist (writers get errors), as with gh-ost.
pub async fn two_step(
    spec: &CutOverSpec,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
) -> Result<Swapped, CutOverError> {
    let mut a = connect_with_lock_timeout(spec, spec.lock_timeout).await?;
    let mut c = mysql::connect(&spec.primary, &spec.creds).await?;
    let started = Instant::now();
    a.query_drop(sql::lock_tables_write(&spec.schema, &[&spec.table]))
        .await
        .map_err(step("locking the original table"))?;
    let drained = drain_to_marker(spec, &mut c, control, status, token).await;
    if let Err(e) = drained {
        let _ = a.query_drop("UNLOCK TABLES").await;
        let _ = control.send(Control::Apply);
        return Err(e);
    }
    a.query_drop(sql::alter_rename(&spec.schema, &spec.table, &spec.old))
        .await
        .map_err(step("renaming the original table away"))?;
    a.query_drop("UNLOCK TABLES")
        .await
        .map_err(step("unlocking"))?;
    a.query_drop(sql::rename_table(&spec.schema, &spec.ghost, &spec.table))
        .await
        .map_err(step("renaming the ghost table in"))?;
    Ok(Swapped {
        locked_for: started.elapsed(),
    })
}
