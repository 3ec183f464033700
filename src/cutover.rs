//! Swapping the ghost table in.
//!
//! In: a copy that is complete, an apply loop that has caught up (and takes [`Control`]), and
//! connections to the primary. Out: an [`Outcome`], decided by what the server holds after the
//! attempt, never guessed from which step failed: `t` is the migrated table and `_t_del` the
//! original ([`Outcome::Swapped`], proven through the binlog, or [`Outcome::SwappedUnproven`]),
//! or `t` is the original with every lock released ([`Outcome::NotSwapped`]), or the tables are
//! in a state wraith could not make whole, which it describes ([`Outcome::Unresolved`]).
//! Invariants owned here (docs/architecture.md, 4 and 5): the swap happens only after a marker written while
//! writes were blocked has come back through the binlog with everything before it applied; it is
//! atomic or nothing; no lock is held much past `--cut-over-lock-timeout-seconds`, and a
//! connection holding one dies within seconds of wraith (short `wait_timeout`); a queued RENAME
//! is killed on every exit path before the lock is released; `t` never stays missing while
//! wraith can restore it.
//!
//! The atomic swap is gh-ost's, with the races it has on MariaDB closed (docs/mysql-notes.md, "The
//! cut-over"; the protocol, why it is safe and where it is tested: docs/architecture.md, "The
//! cut-over"):
//! 1. connection A takes `LOCK TABLES t WRITE` at a moment when no transaction is open on `t`
//!    where the server can tell ([`lock_when_quiet`]);
//! 2. the marker is written and awaited through the binlog; the loop then holds any later event
//!    of `t` instead of applying it, and writes no more to the ghost table;
//! 3. connection B issues `RENAME TABLE t_ghg TO t_ghd, t TO _t_del, _t_gho TO t`: it takes the
//!    locks of the names that sort before `t` ([`locked_before`]: `_t_del`, `_t_gho`) and waits
//!    on `t`;
//! 4. the server must show that B is queued on `t` itself: B holds the lock of every name it
//!    locks before `t` and a later look shows it waiting, so B is granted `t` before any writer
//!    waiting on it; otherwise B is killed and A unlocks with nothing swapped; then A must still
//!    answer: had its lock been lost before (its connection killed), B would be queued behind
//!    writes made meanwhile;
//! 5. connection C opens the gate: it creates `t_ghg` ([`gate_names`]); then A unlocks;
//! 6. after the swap, the binlog must show the RENAME with no change to `t` between the marker and
//!    it; if one slipped through, the swap is reported as not proven, loudly.
//!
//! The gate's names extend `t`'s, so they sort after it: B asks for their locks only once it
//! holds `t`'s, and while the gate does not exist its RENAME then fails, renaming nothing. If
//! wraith, or A's connection alone, dies before the gate is open, B may not be queued on `t`
//! (not issued yet, or still taking the ghost's lock, which a reader of the ghost table can hold
//! for as long as it likes): writers of `t` may go first, and the missing gate makes B's rename
//! fail rather than swap away their writes or unapplied events. If it dies after, B was proven
//! queued on `t`: its rename runs once A's lock dies with its connection, and no write can have
//! reached `t` since the marker. (Until session 29 a sentry table `_t_del`, locked by A and
//! dropped after the drain, kept B from renaming early; it did not cover A dying after its drop.
//! A run still drops a sentry an older wraith left.)

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::apply::{Control, LoopStatus};
use crate::changelog::Changelog;
use crate::failpoint;
use crate::mysql::names::NameCase;
use crate::mysql::{self, sql, ConnectError, Credentials, Endpoint, Flavor};
use crate::priority;

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
    #[error("cut-over: {0}")]
    Restored(String),
    #[error("cut-over: {0} change(s) to the original table came through the binlog after the marker, more than wraith holds in memory; nothing was swapped, will retry")]
    HeldOverLimit(usize),
    #[error("cut-over: a table named `{0}` exists and wraith did not create it; the atomic cut-over needs that name for its gate. Rename that table, or use --cut-over=two-step")]
    GateTaken(String),
    #[error("cut-over: the atomic cut-over needs a gate table named `{}`, longer than the 64 characters a table name may have; nothing was swapped. Use --cut-over=two-step", gate_name(.0))]
    NoGate(String),
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
    /// How the primary compares table names: it keys its metadata locks by the folded name.
    pub names: NameCase,
    pub lock_timeout: Duration,
    /// `--include-triggers`: created on the ghost table while the original is locked and drained.
    pub triggers: Vec<crate::triggers::GhostTrigger>,
}

/// How long a lock that waits for its marker (the cut-over's, the checksum's snapshot) waits
/// for it to come back through the binlog, out of the lock's timeout: all of it but a little
/// for the steps after it. A lock taken while the binlog's lag is longer cannot see its marker
/// in time: it holds the writers for all of it, then fails.
pub fn marker_budget(lock_timeout: Duration) -> Duration {
    let reserve = (lock_timeout / 2).min(Duration::from_millis(500));
    lock_timeout - reserve
}

/// How one cut-over attempt ended, as the server shows it afterwards.
#[derive(Debug)]
pub enum Outcome {
    /// `t` is the migrated table, `_t_del` the original, and the binlog proves that no write to
    /// the original was left out.
    Swapped {
        /// From the lock request to the unlock: the longest a writer could have waited.
        locked_for: Duration,
    },
    /// `t` is the original table and no lock is held. `retry` says whether another attempt can
    /// follow (false once the apply loop has ended, e.g. after the original was renamed back).
    NotSwapped { reason: CutOverError, retry: bool },
    /// `t` is the migrated table, but the binlog does not prove that every write is in it.
    SwappedUnproven(CutOverError),
    /// The tables are in a state wraith could not make whole; the text says which exist and what
    /// to do. Nothing may be dropped automatically.
    Unresolved(String),
}

/// How long each part of the lock's time took, for the log: where writers wait.
struct Phases {
    last: Instant,
    parts: Vec<(&'static str, Duration, Option<String>)>,
}

impl Phases {
    fn new(started: Instant) -> Phases {
        Phases {
            last: started,
            parts: Vec::new(),
        }
    }

    /// The part named `name` ends now.
    fn mark(&mut self, name: &'static str) {
        self.mark_with(name, None);
    }

    /// The part named `name` ends now; `detail` says more of it (in parentheses).
    fn mark_with(&mut self, name: &'static str, detail: Option<String>) {
        let now = Instant::now();
        self.parts.push((name, now - self.last, detail));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(name, took, detail)| match detail {
                Some(d) => format!("{name} {:.3}s ({d})", took.as_secs_f64()),
                None => format!("{name} {:.3}s", took.as_secs_f64()),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The sentry's comment, so a leftover sentry is never mistaken for an old table.
const SENTRY_COMMENT: &str = "wraith cut-over sentry";

/// The gate's comment, so that a table of the gate's name that wraith did not create is never
/// dropped.
const GATE_COMMENT: &str = "wraith cut-over gate";

/// The atomic swap's gate `t_ghg` and the name the swap gives it, `t_ghd` (module docs): names
/// that sort after `t`'s (they extend it), so the RENAME asks for their locks after `t`'s. None
/// when they would be longer than a table name may be (a table of 61 to 64 characters, with
/// `--force-table-names`): such a table has no atomic swap ([`CutOverError::NoGate`]; the
/// preflight refuses it first), since one without a gate can swap writes away.
pub fn gate_names(table: &str) -> Option<(String, String)> {
    let gate = gate_name(table);
    (gate.chars().count() <= 64).then(|| (gate, format!("{table}_ghd")))
}

/// The gate's name for `table`, `t_ghg`, whether or not a table name may be that long.
pub fn gate_name(table: &str) -> String {
    format!("{table}_ghg")
}

/// How long the binlog may take to show the RENAME after the swap.
const RENAME_PROOF_WAIT: Duration = Duration::from_secs(30);

/// How long a killed RENAME may take to fail.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// Makes sure the lock instrumentation the atomic swap's proof reads is on: enables it when
/// `setup_allowed` (`--allow-setup-metadata-lock-instruments`), else leaves it as it is.
pub async fn prepare(
    conn: &mut Conn,
    flavor: &Flavor,
    setup_allowed: bool,
) -> Result<(), CutOverError> {
    if !setup_allowed {
        return Ok(());
    }
    let present: Option<u8> = conn
        .query_first(flavor.metadata_lock_instrument_sql())
        .await
        .map_err(step("checking the metadata lock instrumentation"))?;
    if present.is_none() {
        info!(
            "enabling the metadata lock instrumentation (--allow-setup-metadata-lock-instruments)"
        );
        conn.query_drop(flavor.metadata_lock_instrument_setup_sql())
            .await
            .map_err(step("enabling the metadata lock instrumentation"))?;
    }
    Ok(())
}

/// One attempt at the swap: the atomic one (`atomic`), or gh-ost's two-step one (lock, drain,
/// rename the original away, unlock, rename the ghost in; between the two renames the table does
/// not exist and writers get errors, as with gh-ost; if the second rename fails, the original is
/// renamed back, or failing that the ghost in). Its steps, then, on a failed step, the outcome
/// the server shows. `lag_low` says whether the binlog's lag is low enough to lock over
/// ([`lock_when_quiet`]).
pub async fn attempt(
    spec: &CutOverSpec,
    atomic: bool,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
    lag_low: &dyn Fn() -> bool,
) -> Outcome {
    // The writers will wait for this attempt: it must not wait for the CPU.
    let _urgent = priority::Urgent::begin();
    let mut attempt = match Attempt::open(spec, atomic).await {
        Ok(a) => a,
        Err(reason) => return not_swapped(control, reason),
    };
    let steps = if atomic {
        attempt.atomic_steps(control, status, token, lag_low).await
    } else {
        attempt
            .two_step_steps(control, status, token, lag_low)
            .await
    };
    match steps {
        Ok(locked_for) => prove(spec, status, locked_for, None).await,
        Err(reason) => attempt.settle(control, status, reason).await,
    }
}

/// Nothing was swapped and nothing is held: the loop applies what it held, and a retry may follow
/// (not for a gate that cannot be had: another attempt would fail the same way).
fn not_swapped(control: &watch::Sender<Control>, reason: CutOverError) -> Outcome {
    let retry = control.send(Control::Apply).is_ok()
        && !matches!(
            reason,
            CutOverError::LoopGone | CutOverError::GateTaken(_) | CutOverError::NoGate(_)
        );
    Outcome::NotSwapped { reason, retry }
}

/// The connections of one attempt, and how far it got.
struct Attempt<'a> {
    spec: &'a CutOverSpec,
    /// Holds the lock.
    a: Conn,
    /// Issues the atomic RENAME (until it is spawned).
    b: Option<Conn>,
    b_id: u64,
    /// Writes the marker and watches B.
    c: Conn,
    /// The RENAME in flight on B.
    renaming: Option<JoinHandle<Result<(), mysql_async::Error>>>,
    /// A holds `LOCK TABLES`.
    locked: bool,
    /// When the lock was requested.
    started: Instant,
    /// The connections' ids, for the tests' failpoints.
    ids: failpoint::Connections,
    /// Triggers may exist on the ghost table (`--include-triggers`).
    triggers_created: bool,
    /// The atomic swap's gate and the name the swap gives it ([`gate_names`]); None for the
    /// two-step cut-over.
    gate: Option<(String, String)>,
}

impl<'a> Attempt<'a> {
    async fn open(spec: &'a CutOverSpec, atomic: bool) -> Result<Attempt<'a>, CutOverError> {
        let gate = match atomic {
            true => Some(
                gate_names(&spec.table).ok_or_else(|| CutOverError::NoGate(spec.table.clone()))?,
            ),
            false => None,
        };
        let mut a = lock_session(spec).await?;
        let (b, b_id) = if atomic {
            let mut b = lock_session(spec).await?;
            let id = connection_id(&mut b).await?;
            (Some(b), id)
        } else {
            (None, 0)
        };
        let mut c = mysql::connect(&spec.primary, &spec.creds).await?;
        let mut ids = failpoint::Connections {
            rename: b_id,
            ..Default::default()
        };
        if failpoint::armed() {
            ids.lock = connection_id(&mut a).await?;
            ids.proof = connection_id(&mut c).await?;
        }
        Ok(Attempt {
            spec,
            a,
            b,
            b_id,
            c,
            renaming: None,
            locked: false,
            started: Instant::now(),
            ids,
            triggers_created: false,
            gate,
        })
    }

    /// A failpoint of the tests (nothing unless one is configured).
    async fn point(&self, name: &str) -> Result<(), CutOverError> {
        failpoint::hit(name, &self.spec.primary, &self.spec.creds, self.ids)
            .await
            .map_err(CutOverError::Timeout)
    }

    /// `--include-triggers`: the original's triggers, created on the ghost table now that writes
    /// are blocked and the applier holds everything after the marker.
    async fn create_triggers(&mut self) -> Result<(), CutOverError> {
        if self.spec.triggers.is_empty() {
            return Ok(());
        }
        self.triggers_created = true;
        crate::triggers::create(&mut self.c, &self.spec.triggers)
            .await
            .map_err(step("creating the triggers on the ghost table"))?;
        self.point("triggers:created").await
    }

    /// The gate's names; every atomic attempt has them ([`Attempt::open`]).
    fn gate(&self) -> Result<&(String, String), CutOverError> {
        self.gate
            .as_ref()
            .ok_or_else(|| CutOverError::NoGate(self.spec.table.clone()))
    }

    /// Step 5: C creates the gate. A MEMORY table takes half the time of an InnoDB one to create
    /// (1.3 ms against 3, idle); where the engine is refused, InnoDB.
    async fn open_gate(&mut self) -> Result<(), CutOverError> {
        let Some((gate, _)) = &self.gate else {
            return Err(CutOverError::NoGate(self.spec.table.clone()));
        };
        let schema = &self.spec.schema;
        let memory = sql::create_gate(schema, gate, "MEMORY", GATE_COMMENT);
        match self.c.query_drop(memory).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) => {
                tracing::debug!("the gate cannot be a MEMORY table ({e}); creating it in InnoDB");
                self.c
                    .query_drop(sql::create_gate(schema, gate, "InnoDB", GATE_COMMENT))
                    .await
                    .map_err(step("opening the gate"))?;
            }
            Err(e) => return Err(step("opening the gate")(e)),
        }
        Ok(())
    }

    /// Step 3: B issues the RENAME, which waits behind A's lock on `t`.
    fn issue_rename(&mut self) -> Result<(), CutOverError> {
        let spec = self.spec;
        let (gate, done) = self.gate()?;
        let rename = sql::rename_swap_gated(
            &spec.schema,
            (gate, done),
            &spec.table,
            &spec.old,
            &spec.ghost,
        );
        let mut b = self.b.take().ok_or(CutOverError::LoopGone)?;
        self.renaming = Some(tokio::spawn(async move { b.query_drop(rename).await }));
        Ok(())
    }

    /// The lock's deadline: every wait while it is held ends by then.
    fn deadline(&self) -> Instant {
        self.started + self.spec.lock_timeout
    }

    /// Steps 1 to 5 of the atomic swap. Returns how long writers were blocked.
    async fn atomic_steps(
        &mut self,
        control: &watch::Sender<Control>,
        status: &mut watch::Receiver<LoopStatus>,
        token: &str,
        lag_low: &dyn Fn() -> bool,
    ) -> Result<Duration, CutOverError> {
        let spec = self.spec;
        clear_gate(spec, self.gate()?).await?;
        // 1. The lock.
        let locked = lock_when_quiet(&mut self.a, spec, &[&spec.table], lag_low).await?;
        self.started = locked.requested;
        self.locked = true;
        let mut phases = Phases::new(self.started);
        phases.mark_with("lock", locked.detail());
        self.point("atomic:locked").await?;
        // 2. The marker, written while writes to t are blocked, awaited through the binlog; the
        // rest of the steps keep a little of the lock's time.
        let drain_until = self.started + marker_budget(spec.lock_timeout);
        let deadline = self.deadline();
        let trip = drain_to_marker(spec, &mut self.c, control, status, token, drain_until).await?;
        phases.mark_with("drain", Some(trip.to_string()));
        self.point("atomic:drained").await?;
        self.create_triggers().await?;
        // 3. The rename, issued only now: it takes the ghost table's lock before t's (for most
        // names), and the applier wrote to the ghost until the marker.
        self.issue_rename()?;
        self.point("atomic:issued").await?;
        // 4. Proof that it waits on t itself.
        let before = locked_before(spec.names, &spec.table, [&spec.old, &spec.ghost]);
        let proof = spec.flavor.rename_queued_on_original_sql(
            self.b_id,
            &spec.schema,
            &spec.table,
            &before,
        );
        let mut proven = false;
        while Instant::now() < deadline {
            let n: Option<u64> = self
                .c
                .query_first(&proof)
                .await
                .map_err(step("checking the RENAME's locks"))?;
            // Past every lock before t's (or pending on t); seen waiting afterwards, it waits on
            // t itself.
            if n.unwrap_or(0) > 0
                && wait_for_state(&mut self.c, self.b_id, deadline, self.renaming.as_ref()).await?
            {
                proven = true;
                break;
            }
            if self.renaming.as_ref().is_some_and(|r| r.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !proven {
            return Err(CutOverError::NotProven);
        }
        // A must still hold the lock now that B is seen queued on t: a lock lost before (A's
        // connection killed) let writers write t, and B, queued behind them, would swap their
        // writes away once the gate opens. A lock is lost only with its connection.
        self.a
            .query_drop("DO 0")
            .await
            .map_err(step("checking that the lock is still held"))?;
        held_within_limit(status)?;
        phases.mark("rename queued");
        self.point("atomic:queued").await?;
        // 5. The gate opens: from now on the RENAME, proven queued on t, may succeed.
        self.open_gate().await?;
        phases.mark("gate");
        self.point("atomic:gated").await?;
        self.a
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(step("unlocking"))?;
        self.locked = false;
        let locked_for = self.started.elapsed();
        phases.mark("unlock");
        self.point("atomic:unlocked").await?;
        let renaming = self.renaming.take().ok_or(CutOverError::LoopGone)?;
        renaming
            .await
            .map_err(|_| CutOverError::LoopGone)?
            .map_err(step("renaming the tables"))?;
        clear_gate_or_warn(spec, self.gate.as_ref()).await;
        info!(
            "tables swapped; writers were blocked for {:.3}s ({})",
            locked_for.as_secs_f64(),
            phases
        );
        Ok(locked_for)
    }

    /// The two-step swap's steps. Returns how long writers were blocked.
    async fn two_step_steps(
        &mut self,
        control: &watch::Sender<Control>,
        status: &mut watch::Receiver<LoopStatus>,
        token: &str,
        lag_low: &dyn Fn() -> bool,
    ) -> Result<Duration, CutOverError> {
        let spec = self.spec;
        let locked = lock_when_quiet(&mut self.a, spec, &[&spec.table], lag_low).await?;
        self.started = locked.requested;
        self.locked = true;
        self.point("two-step:locked").await?;
        let drain_until = self.deadline();
        let trip = drain_to_marker(spec, &mut self.c, control, status, token, drain_until).await?;
        tracing::debug!("two-step cut-over: the marker's trip: {trip}");
        held_within_limit(status)?;
        self.point("two-step:drained").await?;
        self.create_triggers().await?;
        self.a
            .query_drop(sql::alter_rename(&spec.schema, &spec.table, &spec.old))
            .await
            .map_err(step("renaming the original table away"))?;
        self.point("two-step:renamed-away").await?;
        self.a
            .query_drop("UNLOCK TABLES")
            .await
            .map_err(step("unlocking"))?;
        self.locked = false;
        self.point("two-step:unlocked").await?;
        self.a
            .query_drop(sql::rename_table(&spec.schema, &spec.ghost, &spec.table))
            .await
            .map_err(step("renaming the ghost table in"))?;
        let locked_for = self.started.elapsed();
        info!(
            "tables swapped in two steps; the table was locked or missing for {:.3}s",
            locked_for.as_secs_f64()
        );
        Ok(locked_for)
    }

    /// After a failed step: kills the RENAME (before anything is unlocked), releases the lock,
    /// then decides the outcome from what the server holds, restoring `t` when it is missing.
    async fn settle(
        mut self,
        control: &watch::Sender<Control>,
        status: &mut watch::Receiver<LoopStatus>,
        reason: CutOverError,
    ) -> Outcome {
        let spec = self.spec;
        warn!("cut-over step failed: {reason}; checking what the server holds");
        if let Some(renaming) = self.renaming.take() {
            kill_rename(spec, &mut self.c, self.b_id, renaming).await;
        }
        if self.locked {
            let _ = self.a.query_drop("UNLOCK TABLES").await;
        }
        // The lock dies with its connection whether or not UNLOCK went through.
        drop(self.a);
        let locked_for = self.started.elapsed();
        // The RENAME is over (killed, failed or done): the gate has served, whatever happened.
        clear_gate_or_warn(spec, self.gate.as_ref()).await;
        let tables = match look(spec).await {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Unresolved(format!(
                    "{reason}; then wraith could not look at the tables ({e}). Check which of {} exist before anything else: `{}` must exist; if only `{}` and `{}` do, rename `{}` back to `{}`",
                    names(spec), spec.table, spec.old, spec.ghost, spec.old, spec.table
                ))
            }
        };
        // Not swapped, the ghost table must not keep the triggers: they would fire for the
        // changes the applier replays once it resumes. (With `t` missing, the restore below
        // resumes nothing, and the ghost keeps them in case it is the table renamed in.)
        if self.triggers_created && matches!(tables, Tables::Original { .. }) {
            if let Err(e) = drop_triggers(spec).await {
                return Outcome::Unresolved(format!(
                    "{reason}; then the triggers created on `{}` could not be dropped ({e}). Drop them ({}) before anything else, then drop `{}`",
                    spec.ghost,
                    spec.triggers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "),
                    spec.ghost
                ));
            }
        }
        match tables {
            Tables::Original { sentry } => {
                if sentry {
                    drop_sentry(spec).await;
                }
                not_swapped(control, reason)
            }
            Tables::Swapped => {
                warn!("the tables were swapped despite the failed step; proving it through the binlog");
                prove(spec, status, locked_for, Some(reason)).await
            }
            Tables::OriginalAway => restore(spec, status, reason, locked_for).await,
            Tables::Other(what) => Outcome::Unresolved(format!(
                "{reason}; afterwards {what}. wraith does not know how to make this whole, so it drops nothing"
            )),
        }
    }
}

/// Drops the triggers an attempt created on the ghost table, on a connection of its own.
async fn drop_triggers(spec: &CutOverSpec) -> Result<(), CutOverError> {
    let mut conn = lock_session(spec).await?;
    crate::triggers::drop_all(&mut conn, &spec.schema, &spec.triggers)
        .await
        .map_err(step("dropping the triggers from the ghost table"))
}

/// `t` is missing, the original sits at `_t_del` and the ghost at `_t_gho` (the two-step swap
/// stopped halfway): renames the original back, or, if that fails, the ghost in.
async fn restore(
    spec: &CutOverSpec,
    status: &mut watch::Receiver<LoopStatus>,
    reason: CutOverError,
    locked_for: Duration,
) -> Outcome {
    warn!(
        "`{}` is missing after the failed step ({reason}); renaming the original back",
        spec.table
    );
    let attempt = async {
        let mut conn = lock_session(spec).await?;
        conn.query_drop(sql::rename_table(&spec.schema, &spec.old, &spec.table))
            .await
            .map_err(step("renaming the original table back"))
    };
    let back = attempt.await;
    if back.is_ok() {
        return Outcome::NotSwapped {
            reason: CutOverError::Restored(format!(
                "{reason}; the original table was renamed back to `{}` and holds every write; nothing was swapped. Run the migration again",
                spec.table
            )),
            retry: false,
        };
    }
    let forward = async {
        let mut conn = lock_session(spec).await?;
        conn.query_drop(sql::rename_table(&spec.schema, &spec.ghost, &spec.table))
            .await
            .map_err(step("renaming the ghost table in"))
    };
    match forward.await {
        Ok(()) => {
            info!("could not rename the original back; renamed the migrated table in instead");
            prove(spec, status, locked_for, None).await
        }
        Err(e) => Outcome::Unresolved(format!(
            "{reason}; `{}` is missing: the original table is `{}` and the migrated one `{}`. Renaming either to `{}` failed ({}; {e}). Run `RENAME TABLE {} TO {}` now",
            spec.table,
            spec.old,
            spec.ghost,
            spec.table,
            back.err().map(|e| e.to_string()).unwrap_or_default(),
            sql::qualified(&spec.schema, &spec.old),
            sql::qualified(&spec.schema, &spec.table),
        )),
    }
}

/// The swap happened: waits for the binlog to show the RENAME with no change to `t` since the
/// marker.
async fn prove(
    spec: &CutOverSpec,
    status: &mut watch::Receiver<LoopStatus>,
    locked_for: Duration,
    failed_step: Option<CutOverError>,
) -> Outcome {
    let seen = tokio::time::timeout(RENAME_PROOF_WAIT, async {
        loop {
            if status.borrow().rename_seen {
                return Some(status.borrow().held_after_marker);
            }
            if status.borrow().held_over_limit {
                // The loop holds no more (nor reads on to the RENAME): these changes to the
                // original table came after the marker, before the swap.
                return Some(status.borrow().held_after_marker);
            }
            if status.changed().await.is_err() {
                // The loop ended: its last status is final.
                let s = status.borrow();
                return s.rename_seen.then_some(s.held_after_marker);
            }
        }
    })
    .await;
    match seen {
        Ok(Some(0)) => {
            if let Some(e) = failed_step {
                info!("the swap is proven despite the failed step ({e})");
            }
            Outcome::Swapped { locked_for }
        }
        Ok(Some(n)) => Outcome::SwappedUnproven(CutOverError::LostWrites(n, spec.old.clone())),
        Ok(None) => Outcome::SwappedUnproven(CutOverError::LoopGone),
        Err(_) => Outcome::SwappedUnproven(CutOverError::RenameNotSeen(RENAME_PROOF_WAIT)),
    }
}

/// At the start of a run (which holds the table's lock, so no other cut-over of it runs): if an
/// earlier run was stopped between the two renames of a two-step cut-over (killed, or its host
/// lost), `t` is missing, the original sits at `_t_del` and the ghost at `_t_gho`, and the
/// changelog's last state is the cut-over. Renames the original back and says so. If an earlier
/// atomic cut-over was stopped while its sentry `_t_del` existed, drops the sentry (recognised by
/// its comment: never an old table) and says so. Otherwise changes nothing.
pub async fn recover_interrupted(spec: &CutOverSpec) -> Result<Option<String>, CutOverError> {
    // A gate an interrupted swap left: wraith's own, it never holds data. (A table of the gate's
    // name that wraith did not create stays; the atomic cut-over says so.)
    if let Some(gate) = gate_names(&spec.table) {
        match clear_gate(spec, &gate).await {
            Ok(()) | Err(CutOverError::GateTaken(_)) => {}
            Err(e) => return Err(e),
        }
    }
    match look(spec).await? {
        Tables::OriginalAway => {}
        Tables::Original { sentry: true } => {
            drop_sentry(spec).await;
            return Ok(Some(format!(
                "dropped the sentry table `{}` that an earlier run's interrupted cut-over left (`{}` was not swapped)",
                spec.old, spec.table
            )));
        }
        _ => return Ok(None),
    }
    let mut conn = lock_session(spec).await?;
    let state: Option<Option<Vec<u8>>> = conn
        .query_first(sql::changelog_state(&spec.schema, &spec.changelog))
        .await
        .unwrap_or(None);
    let state = String::from_utf8_lossy(&state.flatten().unwrap_or_default()).into_owned();
    if state != "CutOver" && !state.starts_with(crate::changelog::MARKER_PREFIX) {
        return Ok(None);
    }
    conn.query_drop(sql::rename_table(&spec.schema, &spec.old, &spec.table))
        .await
        .map_err(step("renaming the original table back"))?;
    Ok(Some(format!(
        "`{}` was missing: an earlier run stopped halfway through a two-step cut-over (its changelog `{}` says so) and left the original table at `{}`; renamed it back to `{}`",
        spec.table, spec.changelog, spec.old, spec.table
    )))
}

/// Which of `t`, `_t_gho` and `_t_del` exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tables {
    /// `t` and `_t_gho` exist: nothing was swapped. `sentry`: `_t_del` is a leftover sentry.
    Original { sentry: bool },
    /// `t` and `_t_del` (not a sentry) exist, `_t_gho` does not: the swap happened.
    Swapped,
    /// `t` is missing; the original is at `_t_del` and the ghost at `_t_gho`.
    OriginalAway,
    /// Anything else, described.
    Other(String),
}

/// Looks at the server (on a connection of its own): which of the three tables exist. A RENAME
/// still running (a killed connection's statement finishes on the server) would show a state
/// halfway through in information_schema, which takes no metadata lock; so it first reads `t`
/// through its metadata lock, which waits until such a RENAME is done.
pub async fn look(spec: &CutOverSpec) -> Result<Tables, CutOverError> {
    let mut conn = lock_session(spec).await?;
    match conn
        .query_drop(sql::probe_table(&spec.schema, &spec.table))
        .await
    {
        Ok(()) => {}
        // No such table: the answer below says so.
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => {}
        Err(e) => return Err(step("waiting for the table's metadata lock")(e)),
    }
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?, ?)",
            (&spec.schema, &spec.table, &spec.ghost, &spec.old),
        )
        .await
        .map_err(step("listing the tables"))?;
    let find = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .or_else(|| {
                // Under lower_case_table_names the server lists names in lower case.
                rows.iter()
                    .find(|(n, _)| String::from_utf8_lossy(n).to_lowercase() == name.to_lowercase())
            })
    };
    let t = find(&spec.table).is_some();
    let ghost = find(&spec.ghost).is_some();
    let old = find(&spec.old);
    let sentry = old.is_some_and(|(_, c)| c.as_deref() == Some(SENTRY_COMMENT.as_bytes()));
    let old = old.is_some() && !sentry;
    Ok(match (t, ghost, old) {
        (true, true, _) => Tables::Original { sentry },
        (true, false, true) => Tables::Swapped,
        (false, true, true) => Tables::OriginalAway,
        _ => Tables::Other(format!(
            "`{}` {}, `{}` {}, `{}` {}",
            spec.table,
            if t { "exists" } else { "is missing" },
            spec.ghost,
            if ghost { "exists" } else { "is missing" },
            spec.old,
            if old {
                "exists"
            } else if sentry {
                "is a sentry"
            } else {
                "is missing"
            },
        )),
    })
}

fn names(spec: &CutOverSpec) -> String {
    format!("`{}`, `{}` and `{}`", spec.table, spec.ghost, spec.old)
}

/// A connection to the primary for a session that takes locks: its statements wait at most the
/// lock timeout for metadata locks, and the server ends it within seconds of wraith going quiet
/// (so a dead wraith's lock dies with it). The checksum's snapshot takes its lock the same way.
pub(crate) async fn lock_session(spec: &CutOverSpec) -> Result<Conn, CutOverError> {
    let mut conn = mysql::connect(&spec.primary, &spec.creds).await?;
    conn.query_drop(sql::lock_session(spec.lock_timeout))
        .await
        .map_err(step("setting the lock session's timeouts"))?;
    Ok(conn)
}

/// How a [`lock_when_quiet`] lock was taken.
#[derive(Debug, Clone, Copy)]
pub struct Locked {
    /// When the request that was granted was sent: writers of the tables wait from then on.
    pub requested: Instant,
    /// Requests refused first, because another session held a table (MariaDB's `NOWAIT`).
    pub refused: u32,
    /// From the first request to the one granted.
    pub sought: Duration,
    /// The granted request waited (no quiet moment came in the lock timeout, or the server
    /// cannot refuse instead).
    pub waited: bool,
}

impl Locked {
    /// What the log says of how the lock was taken, when there is more to say than "at once".
    pub fn detail(&self) -> Option<String> {
        let (refused, secs) = (self.refused, self.sought.as_secs_f64());
        match (refused, self.waited) {
            (0, _) => None,
            (_, false) => Some(format!(
                "granted at a moment without open transactions on the table, after {refused} refusal(s) in {secs:.3}s"
            )),
            (_, true) => Some(format!(
                "queued behind the transactions open on the table after {refused} refusal(s) in {secs:.3}s"
            )),
        }
    }
}

/// Takes `LOCK TABLES ... WRITE` on `tables` (in `spec.schema`) with `conn`, a
/// `lock_session`, at a moment when no other session holds them if the server can tell, and
/// when `lag_low` says the binlog's lag is low enough to lock over.
///
/// A lock request that waits queues every later writer of its tables behind it until the
/// transactions already open on them end: under load the application waits for the slowest of
/// them on top of the lock's own time. Where the server can refuse instead of queueing
/// ([`Flavor::lock_tables_nowait`]), the request is sent again every millisecond until it is
/// granted, for up to the lock timeout; only then (and on MySQL at once) does it queue like
/// any statement. A refused request blocks no one. The search can last a second under load, and
/// the lag can grow meanwhile (a snapshot's marker took 18 ms back after a 1.07 s search begun
/// at a lag of 7 ms): no request is sent while `lag_low` says no.
pub async fn lock_when_quiet(
    conn: &mut Conn,
    spec: &CutOverSpec,
    tables: &[&str],
    lag_low: &dyn Fn() -> bool,
) -> Result<Locked, CutOverError> {
    let first = Instant::now();
    let mut refused = 0;
    if spec.flavor.lock_tables_nowait() {
        let nowait = sql::lock_tables_write(&spec.schema, tables, true);
        let mut lagging = Duration::ZERO;
        while first.elapsed() < spec.lock_timeout {
            if !lag_low() {
                let since = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                lagging += since.elapsed();
                continue;
            }
            let requested = Instant::now();
            match conn.query_drop(&nowait).await {
                Ok(()) => {
                    return Ok(Locked {
                        requested,
                        refused,
                        sought: requested - first,
                        waited: false,
                    })
                }
                Err(mysql_async::Error::Server(e)) if e.code == LOCK_WAIT_TIMEOUT => refused += 1,
                Err(e) => return Err(step("locking the original table")(e)),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        warn!(
            "no moment without an open transaction on {} came in {:?} ({refused} lock requests refused; {:.3}s with the binlog's lag too long to lock over, no request sent); the lock now waits for them, and new writers wait behind it",
            sql::qualified(&spec.schema, tables[0]),
            spec.lock_timeout,
            lagging.as_secs_f64()
        );
    }
    let requested = Instant::now();
    conn.query_drop(sql::lock_tables_write(&spec.schema, tables, false))
        .await
        .map_err(step("locking the original table"))?;
    Ok(Locked {
        requested,
        refused,
        sought: requested - first,
        waited: true,
    })
}

/// `ER_LOCK_WAIT_TIMEOUT`: what a `NOWAIT` lock request gets while another session holds the
/// lock.
const LOCK_WAIT_TIMEOUT: u16 = 1205;

/// The server's id of `conn`'s session.
pub(crate) async fn connection_id(conn: &mut Conn) -> Result<u64, CutOverError> {
    let id: Option<u64> = conn
        .query_first("SELECT CONNECTION_ID()")
        .await
        .map_err(step("reading a connection id"))?;
    Ok(id.unwrap_or(0))
}

/// Where the time of a marker's trip went: writing it on the primary, until the apply loop read it
/// from the binlog (the replica's apply and binlog, when reading a replica), and applying what was
/// pending then.
#[derive(Debug, Clone, Copy)]
pub struct MarkerTrip {
    pub written: Duration,
    pub read: Duration,
    pub applied: Duration,
}

impl std::fmt::Display for MarkerTrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "marker written {:.3}s, read back {:.3}s, applied {:.3}s",
            self.written.as_secs_f64(),
            self.read.as_secs_f64(),
            self.applied.as_secs_f64()
        )
    }
}

/// Tells the apply loop to expect the marker `token`, writes it (on `c`, while the original table
/// is locked), and waits until `until` for every event before it to be applied. The loop then
/// holds the events after the marker until [`Control::Apply`] (or the swap). Used by the cut-over
/// and by the checksum's snapshot. Returns where the trip's time went.
pub(crate) async fn drain_to_marker(
    spec: &CutOverSpec,
    c: &mut Conn,
    control: &watch::Sender<Control>,
    status: &mut watch::Receiver<LoopStatus>,
    token: &str,
    until: Instant,
) -> Result<MarkerTrip, CutOverError> {
    let started = Instant::now();
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
    let written = Instant::now();
    let applied = async {
        while status.borrow().marker_applied.as_deref() != Some(token) {
            status.changed().await.map_err(|_| CutOverError::LoopGone)?;
        }
        let now = Instant::now();
        // The loop may read the marker before its INSERT's answer has come back here (reading
        // the primary): that trip counts as read on writing.
        let read = status
            .borrow()
            .marker_read_at
            .unwrap_or(now)
            .clamp(written, now);
        Ok(MarkerTrip {
            written: written - started,
            read: read - written,
            applied: now - read,
        })
    };
    let budget = until.saturating_duration_since(Instant::now());
    tokio::time::timeout(budget, applied).await.map_err(|_| {
        CutOverError::Timeout(format!(
            "the marker did not come back through the binlog within {:.1}s (the applier is behind); will retry",
            budget.as_secs_f64()
        ))
    })?
}

/// Before the step that swaps: the apply loop has not had to stop holding the original table's
/// changes that came after the marker (the swap would lose them).
fn held_within_limit(status: &watch::Receiver<LoopStatus>) -> Result<(), CutOverError> {
    let s = status.borrow();
    if s.held_over_limit {
        return Err(CutOverError::HeldOverLimit(s.held_after_marker));
    }
    Ok(())
}

/// Of `others`, the names whose metadata locks a statement that locks them and `table` takes
/// before `table`'s. MariaDB and MySQL take a statement's locks in the order of their keys
/// (`MDL_key::cmp`: the schema, then the name, byte by byte, as the server keys it, folded to
/// lower case under `lower_case_table_names`), each granted before the next is asked for. A
/// migration's `_t_del` and `_t_gho` come before `t`, so the RENAME waits on the sentry first;
/// a revert's ghost `_t_del` comes before its sentry `_t_rev_del`, so the RENAME holds the
/// ghost's lock while it still waits on the sentry; `Orders` (a capital, or a digit, sorts
/// before `_`) comes first, so the RENAME waits on it from the start.
pub fn locked_before<'a>(names: NameCase, table: &str, others: [&'a str; 2]) -> Vec<&'a str> {
    let mut before: Vec<&str> = others
        .into_iter()
        .filter(|other| lock_key(names, other) < lock_key(names, table))
        .collect();
    before.dedup();
    before
}

/// What a table's metadata lock is ordered by, within one schema: its name's bytes, as the
/// server keys it.
fn lock_key(names: NameCase, name: &str) -> Vec<u8> {
    names.key(name).into_bytes()
}

/// Polls until connection `id` is waiting for a metadata lock, up to `until`, or until its
/// statement (`running`) has ended without waiting long enough to be seen.
async fn wait_for_state(
    c: &mut Conn,
    id: u64,
    until: Instant,
    running: Option<&JoinHandle<Result<(), mysql_async::Error>>>,
) -> Result<bool, CutOverError> {
    loop {
        let found: Option<Option<Vec<u8>>> = c
            .exec_first(
                "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .await
            .map_err(step("reading the RENAME's state"))?;
        if found
            .flatten()
            .is_some_and(|s| s.starts_with(b"Waiting for table metadata lock"))
        {
            return Ok(true);
        }
        if Instant::now() >= until || running.is_some_and(|r| r.is_finished()) {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Kills the pending RENAME (on `c`, or a fresh connection if `c` is broken) and waits a moment
/// for it to end. Whether it ran anyway is for [`look`] to say.
async fn kill_rename(
    spec: &CutOverSpec,
    c: &mut Conn,
    b_id: u64,
    mut renaming: JoinHandle<Result<(), mysql_async::Error>>,
) {
    if renaming.is_finished() {
        return;
    }
    warn!("cancelling the queued RENAME (connection {b_id})");
    for kill in [sql::kill_query(b_id), sql::kill_connection(b_id)] {
        if c.query_drop(&kill).await.is_err() {
            if let Ok(mut fresh) = mysql::connect(&spec.primary, &spec.creds).await {
                let _ = fresh.query_drop(&kill).await;
            }
        }
        if tokio::time::timeout(KILL_WAIT, &mut renaming).await.is_ok() {
            return;
        }
    }
    warn!("the RENAME did not end after KILL CONNECTION {b_id}");
    renaming.abort();
}

/// The tables of `schema` named as the gate or its renamed self ([`gate_names`]) that exist, each
/// with whether wraith created it (it carries the gate's comment). Read by the cut-over and the
/// preflight alike.
pub async fn gate_tables(
    conn: &mut Conn,
    schema: &str,
    (gate, done): &(String, String),
) -> Result<Vec<(String, bool)>, mysql_async::Error> {
    let found: Vec<(String, Option<String>)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)",
            (schema, gate, done),
        )
        .await?;
    Ok(found
        .into_iter()
        .map(|(name, comment)| (name, comment.as_deref() == Some(GATE_COMMENT)))
        .collect())
}

/// Drops the gate and its renamed self where wraith created them (by their comment); a table of
/// either name that wraith did not create is an error, and stays.
async fn clear_gate(spec: &CutOverSpec, gate: &(String, String)) -> Result<(), CutOverError> {
    let mut conn = mysql::connect(&spec.primary, &spec.creds).await?;
    let found = gate_tables(&mut conn, &spec.schema, gate)
        .await
        .map_err(step("looking for the cut-over's gate"))?;
    for (name, ours) in found {
        if !ours {
            return Err(CutOverError::GateTaken(name));
        }
        conn.query_drop(sql::drop_table_if_exists(&spec.schema, &name))
            .await
            .map_err(step("dropping the cut-over's gate"))?;
    }
    Ok(())
}

/// Drops an attempt's gate, once its RENAME is over; a failure is only logged (the next attempt
/// or run drops it).
async fn clear_gate_or_warn(spec: &CutOverSpec, gate: Option<&(String, String)>) {
    if let Some(gate) = gate {
        if let Err(e) = clear_gate(spec, gate).await {
            warn!("could not drop the cut-over's gate: {e}");
        }
    }
}

/// Drops the sentry `_t_del`, but only if it is the sentry (never the old table).
async fn drop_sentry(spec: &CutOverSpec) {
    if let Ok(Tables::Original { sentry: true }) = look(spec).await {
        if let Ok(mut conn) = mysql::connect(&spec.primary, &spec.creds).await {
            let _ = conn
                .query_drop(sql::drop_table_if_exists(&spec.schema, &spec.old))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CutOverSpec {
        CutOverSpec {
            primary: Endpoint {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            creds: Credentials {
                user: "root".into(),
                password: String::new(),
                charset: "utf8mb4".into(),
                tls: None,
                connect_timeout: Duration::from_secs(1),
            },
            flavor: Flavor::parse("10.11.6-MariaDB", ""),
            schema: "d".into(),
            table: "t".into(),
            ghost: "_t_gho".into(),
            old: "_t_del".into(),
            changelog: "_t_ghc".into(),
            names: NameCase::Exact,
            lock_timeout: Duration::from_secs(3),
            triggers: Vec::new(),
        }
    }

    #[test]
    fn the_rename_takes_the_locks_of_names_that_sort_before_the_table_first() {
        let exact = NameCase::Exact;
        // A migration: the sentry, then the ghost, then t.
        assert_eq!(
            locked_before(exact, "t", ["_t_del", "_t_gho"]),
            ["_t_del", "_t_gho"]
        );
        // A revert: both come before t (the ghost `_t_del` before the sentry `_t_rev_del`).
        assert_eq!(
            locked_before(exact, "t", ["_t_rev_del", "_t_del"]),
            ["_t_rev_del", "_t_del"]
        );
        // A capital or a digit sorts before `_`: t first, nothing held before it.
        assert!(locked_before(exact, "Orders", ["_Orders_del", "_Orders_gho"]).is_empty());
        assert!(locked_before(
            exact,
            "2024_orders",
            ["_2024_orders_del", "_2024_orders_gho"]
        )
        .is_empty());
        // Folded names are keyed in lower case.
        assert_eq!(
            locked_before(
                NameCase::Folded,
                "MyTable",
                ["_MyTable_del", "_MyTable_gho"]
            ),
            ["_MyTable_del", "_MyTable_gho"]
        );
        // Byte order: a prefix comes first; letters beyond ASCII after `_`; `_` against `_`.
        assert_eq!(locked_before(exact, "t", ["t_old", "_t_gho"]), ["_t_gho"]);
        assert_eq!(
            locked_before(exact, "tëst ü", ["_tëst ü_del", "_tëst ü_gho"]),
            ["_tëst ü_del", "_tëst ü_gho"]
        );
        assert_eq!(
            locked_before(exact, "_x", ["__x_del", "_x_gho"]),
            ["__x_del"]
        );
    }

    #[test]
    fn the_gate_s_locks_are_taken_after_the_table_s_for_every_name() {
        for names in [NameCase::Exact, NameCase::Folded] {
            for t in ["t", "Orders", "0rders", "_x", "tëst ü", "we`ird", "T"] {
                let (gate, done) = gate_names(t).unwrap();
                for name in [&gate, &done] {
                    assert!(
                        locked_before(names, t, [name, name]).is_empty(),
                        "{name} before {t}"
                    );
                }
            }
        }
        // The longest names leave no room for the gate's.
        assert_eq!(gate_names(&"t".repeat(60)).unwrap().0.chars().count(), 64);
        assert_eq!(gate_names(&"t".repeat(61)), None);
    }

    #[test]
    fn the_log_says_whether_the_lock_came_at_a_quiet_moment_or_queued() {
        let locked = |refused, waited| Locked {
            requested: Instant::now(),
            refused,
            sought: Duration::from_millis(12),
            waited,
        };
        assert_eq!(locked(0, false).detail(), None);
        assert_eq!(locked(0, true).detail(), None);
        assert_eq!(
            locked(3, false).detail().as_deref(),
            Some("granted at a moment without open transactions on the table, after 3 refusal(s) in 0.012s")
        );
        assert_eq!(
            locked(3, true).detail().as_deref(),
            Some("queued behind the transactions open on the table after 3 refusal(s) in 0.012s")
        );
    }

    #[test]
    fn the_lock_time_is_told_by_part_and_the_drain_by_its_marker_trip() {
        let started = Instant::now();
        let mut phases = Phases::new(started);
        phases.mark("lock");
        let trip = MarkerTrip {
            written: Duration::from_millis(2),
            read: Duration::from_millis(9),
            applied: Duration::from_millis(4),
        };
        phases.mark_with("drain", Some(trip.to_string()));
        let told = phases.to_string();
        assert!(told.starts_with("lock 0.0"), "{told}");
        assert!(
            told.contains(", drain 0.0",)
                && told.ends_with("s (marker written 0.002s, read back 0.009s, applied 0.004s)"),
            "{told}"
        );
    }

    fn over_limit(n: usize) -> LoopStatus {
        LoopStatus {
            marker_applied: Some("m".into()),
            held_after_marker: n,
            rename_seen: false,
            held_over_limit: true,
            ..LoopStatus::default()
        }
    }

    #[test]
    fn a_loop_that_held_too_much_stops_the_swap_before_it_happens() {
        let (_tx, rx) = watch::channel(over_limit(7));
        assert!(matches!(
            held_within_limit(&rx),
            Err(CutOverError::HeldOverLimit(7))
        ));
        let (_tx, rx) = watch::channel(LoopStatus::default());
        assert!(held_within_limit(&rx).is_ok());
    }

    #[tokio::test]
    async fn after_a_swap_a_loop_that_held_too_much_is_reported_at_once_as_lost_writes() {
        let (_tx, mut rx) = watch::channel(over_limit(9));
        let started = Instant::now();
        let outcome = prove(&spec(), &mut rx, Duration::ZERO, None).await;
        assert!(
            matches!(
                outcome,
                Outcome::SwappedUnproven(CutOverError::LostWrites(9, _))
            ),
            "{outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
