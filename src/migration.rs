//! One migration, as a state machine: Validate → Prepare → Copy → (Postpone) → CutOver → Cleanup.
//!
//! In: a validated [`Config`] and the one [`CancellationToken`] every task of the run listens to.
//! Out: a [`Report`] on success, or a [`MigrationError`] that says what happened and what was left
//! in the database. Invariants owned here: a failed preflight creates nothing; a run that stops
//! on error, on cancellation or as a noop drops the helper tables it created and leaves the
//! original table untouched; every state change is logged and written to the changelog table.

use std::fmt;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::inspect::{self, checks, plan, Facts, Plan, TableSchema};
use crate::mysql::{self, sql, topology, ConnectError, Credentials, Endpoint, Flavor};

/// The states of a migration, as written to the changelog's `state` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Validate,
    Prepare,
    Copy,
    Postpone,
    CutOver,
    Cleanup,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub inspected: Endpoint,
    pub primary: Endpoint,
    pub flavor: Flavor,
    pub plan: Plan,
    pub row_estimate: u64,
    /// The tables were swapped (false for a noop run).
    pub swapped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("preflight failed:\n{}", .0.iter().map(|f| format!("  - [{}] {}", f.check, f.message)).collect::<Vec<_>>().join("\n"))]
    Preflight(Vec<checks::Failure>),
    #[error("the server rejected the ALTER on the ghost table: {0}")]
    AlterRejected(String),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("{context}: {source}")]
    Sql {
        context: String,
        source: mysql_async::Error,
    },
    #[error("--execute: the live data path (binlog apply, row copy, cut-over) is not in this build yet; run without --execute for a noop run that validates the migration")]
    ExecuteUnavailable,
    #[error("cancelled")]
    Cancelled,
}

trait SqlContext<T> {
    fn context(self, what: impl Into<String>) -> Result<T, MigrationError>;
}

impl<T> SqlContext<T> for Result<T, mysql_async::Error> {
    fn context(self, what: impl Into<String>) -> Result<T, MigrationError> {
        self.map_err(|source| MigrationError::Sql {
            context: what.into(),
            source,
        })
    }
}

/// The failure and what the database holds afterwards; the last line of output.
#[derive(Debug)]
pub struct Failed {
    pub error: MigrationError,
    /// Helper tables still present after cleanup (kept on purpose, or not droppable).
    pub left_behind: Vec<String>,
}

impl Failed {
    /// What the database holds after the failure, for the person at the terminal.
    pub fn aftermath(&self) -> String {
        if self.left_behind.is_empty() {
            "The original table is untouched and no helper tables were left behind.".to_string()
        } else {
            format!(
                "The original table is untouched. Left behind: {} (could not be dropped; drop them by hand).",
                self.left_behind.join(", ")
            )
        }
    }
}

/// A run in progress: the connections it holds and what it has created so far.
struct Run<'a> {
    cfg: &'a Config,
    cancel: CancellationToken,
    inspected: Endpoint,
    primary: Endpoint,
    /// Connection to the primary (where helper tables live).
    pconn: Option<Conn>,
    /// Helper tables this run created (dropped on failure or noop).
    created: Vec<String>,
}

/// Runs the migration described by `cfg`.
pub async fn run(cfg: &Config, cancel: CancellationToken) -> Result<Report, Failed> {
    let mut run = Run {
        cfg,
        cancel,
        inspected: Endpoint {
            host: cfg.flags.host.clone(),
            port: cfg.flags.port,
        },
        primary: Endpoint {
            host: cfg.flags.host.clone(),
            port: cfg.flags.port,
        },
        pconn: None,
        created: Vec::new(),
    };
    let started = Instant::now();
    let outcome = run.steps().await;
    // Cleanup: a noop run and a failed run drop what they created.
    let left_behind = run.cleanup().await;
    match outcome {
        Ok(report) => {
            info!(
                elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
                swapped = report.swapped,
                "migration of {}.{} ended: {}",
                cfg.database,
                cfg.table,
                if report.swapped {
                    "swapped"
                } else {
                    "noop complete, nothing swapped"
                }
            );
            Ok(report)
        }
        Err(error) => {
            warn!(
                "migration of {}.{} ended: failed: {error}",
                cfg.database, cfg.table
            );
            Err(Failed { error, left_behind })
        }
    }
}

impl Run<'_> {
    fn enter(&self, state: State) -> Result<(), MigrationError> {
        if self.cancel.is_cancelled() {
            return Err(MigrationError::Cancelled);
        }
        info!(state = %state, "{}", state_line(state));
        Ok(())
    }

    async fn steps(&mut self) -> Result<Report, MigrationError> {
        let cfg = self.cfg;
        self.enter(State::Validate)?;
        let (facts, mut iconn) = self.validate().await?;
        let flavor = facts.inspected.flavor.clone();
        let original = facts.table.clone().expect("table-exists check passed");
        let mut pconn = match self.pconn.take() {
            Some(c) => c,
            None => mysql::connect(&self.primary, &Credentials::primary(cfg)).await?,
        };

        self.enter(State::Prepare)?;
        let plan = self.prepare(&mut pconn, &original).await;
        self.pconn = Some(pconn);
        let plan = plan?;
        let row_estimate = inspect::row_count(
            &mut iconn,
            &cfg.database,
            &cfg.table,
            cfg.flags.exact_rowcount,
        )
        .await
        .context("counting rows")?;
        info!(
            "plan: key {} ({}); {} columns copied{}{}; about {row_estimate} rows",
            plan.key.name,
            plan.key.columns.join(", "),
            plan.columns.len(),
            list_suffix(", dropped: ", &plan.dropped),
            list_suffix(", added: ", &plan.added),
        );
        self.write_state(State::Prepare).await?;

        if cfg.execute() {
            return Err(MigrationError::ExecuteUnavailable);
        }
        self.enter(State::Cleanup)?;
        info!("noop run (no --execute): validated the ALTER on {} and planned the copy; dropping the helper tables, nothing was swapped", sql::quote_ident(&cfg.ghost_table()));
        Ok(Report {
            inspected: self.inspected.clone(),
            primary: self.primary.clone(),
            flavor,
            plan,
            row_estimate,
            swapped: false,
        })
    }

    /// Connects, finds the primary, gathers facts and runs the preflight checks.
    async fn validate(&mut self) -> Result<(Facts, Conn), MigrationError> {
        let cfg = self.cfg;
        for flag in &cfg.not_yet_acted_on {
            warn!(
                "--{} is accepted but not acted on by this build yet",
                flag.replace('_', "-")
            );
        }
        let creds = Credentials::inspected(cfg);
        let mut iconn = mysql::connect(&self.inspected, &creds).await?;
        let iflavor = Flavor::detect(&mut iconn)
            .await
            .context("reading the server version")?;
        info!("inspecting {} ({iflavor})", self.inspected);
        let status = topology::replica_status(&mut iconn, &iflavor)
            .await
            .context("reading replica status")?;
        let pcreds = Credentials::primary(cfg);
        self.primary = topology::resolve_primary(
            &self.inspected,
            status,
            cfg.flags.assume_master_host.as_deref(),
            cfg.flags.allow_on_master,
            cfg.flags.allow_master_master,
            |endpoint| {
                let pcreds = pcreds.clone();
                async move {
                    let mut c = mysql::connect(&endpoint, &pcreds).await.map_err(|e| {
                        mysql_async::Error::Other(Box::new(std::io::Error::other(e.to_string())))
                    })?;
                    let f = Flavor::detect(&mut c).await?;
                    topology::replica_status(&mut c, &f).await
                }
            },
        )
        .await?;
        if self.primary != self.inspected {
            info!(
                "primary is {}; the binlog is read from {}",
                self.primary, self.inspected
            );
            self.pconn = Some(mysql::connect(&self.primary, &pcreds).await?);
        }
        let primary_endpoint = self.primary.clone();
        let facts = inspect::gather(
            cfg,
            (&mut iconn, &self.inspected),
            self.pconn.as_mut().map(|c| (c, &primary_endpoint)),
        )
        .await
        .context("inspecting the servers")?;
        let failures = checks::run(checks::Phase::BeforeStart, &facts, cfg);
        if !failures.is_empty() {
            return Err(MigrationError::Preflight(failures));
        }
        info!("preflight passed ({} checks)", checks::CHECKS.len());
        Ok((facts, iconn))
    }

    /// Creates the ghost table with the ALTER applied, plans the copy, creates the changelog.
    async fn prepare(
        &mut self,
        pconn: &mut Conn,
        original: &TableSchema,
    ) -> Result<Plan, MigrationError> {
        let cfg = self.cfg;
        let db = cfg.database.as_str();
        let ghost = cfg.ghost_table();
        let changelog = cfg.changelog_table();
        if cfg.flags.initially_drop_ghost_table {
            for t in [&ghost, &changelog] {
                pconn
                    .query_drop(sql::drop_table_if_exists(db, t))
                    .await
                    .context(format!("dropping {t}"))?;
            }
        }
        if cfg.flags.initially_drop_old_table {
            let old = cfg.old_table();
            pconn
                .query_drop(sql::drop_table_if_exists(db, &old))
                .await
                .context(format!("dropping {old}"))?;
        }
        pconn
            .query_drop(sql::create_table_like(db, &ghost, &cfg.table))
            .await
            .context(format!("creating the ghost table {ghost}"))?;
        self.created.push(ghost.clone());
        if let Err(e) = pconn
            .query_drop(sql::alter_table(db, &ghost, &cfg.alter.body))
            .await
        {
            return Err(MigrationError::AlterRejected(match e {
                mysql_async::Error::Server(s) => format!("{} (error {})", s.message, s.code),
                other => other.to_string(),
            }));
        }
        let ghost_schema = TableSchema::read(pconn, db, &ghost)
            .await
            .context("reading the ghost table")?
            .ok_or_else(|| {
                MigrationError::AlterRejected("the ghost table vanished after the ALTER".into())
            })?;
        let plan = plan::build(
            original,
            &ghost_schema,
            &cfg.alter.renames,
            cfg.flags.skip_renamed_columns,
            cfg.flags.allow_nullable_unique_key,
        )?;
        pconn
            .query_drop(sql::create_changelog(db, &changelog))
            .await
            .context(format!("creating the changelog table {changelog}"))?;
        self.created.push(changelog);
        Ok(plan)
    }

    /// Records a state change in the changelog table (hint `state`).
    async fn write_state(&mut self, state: State) -> Result<(), MigrationError> {
        let cfg = self.cfg;
        let Some(conn) = self.pconn.as_mut() else {
            return Ok(());
        };
        conn.query_drop(sql::changelog_upsert(
            &cfg.database,
            &cfg.changelog_table(),
            None,
            "state",
            &state.to_string(),
        ))
        .await
        .context("writing the state to the changelog table")
    }

    /// Drops what this run created (noop or failure). Returns what could not be dropped.
    async fn cleanup(&mut self) -> Vec<String> {
        if self.created.is_empty() {
            return Vec::new();
        }
        let cfg = self.cfg;
        let mut conn = match self.pconn.take() {
            Some(c) => c,
            None => match mysql::connect(&self.primary, &Credentials::primary(cfg)).await {
                Ok(c) => c,
                Err(_) => return std::mem::take(&mut self.created),
            },
        };
        let mut left = Vec::new();
        for table in std::mem::take(&mut self.created).into_iter().rev() {
            if let Err(e) = conn
                .query_drop(sql::drop_table_if_exists(&cfg.database, &table))
                .await
            {
                warn!("could not drop {table}: {e}");
                left.push(table);
            }
        }
        left
    }
}

fn state_line(state: State) -> &'static str {
    match state {
        State::Validate => "validating: connecting, finding the primary, preflight checks",
        State::Prepare => "preparing: ghost table with the ALTER applied, changelog table",
        State::Copy => "copying rows while applying the binlog",
        State::Postpone => "cut-over postponed",
        State::CutOver => "cutting over",
        State::Cleanup => "cleaning up",
    }
}

fn list_suffix(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("{label}{}", items.join(", "))
    }
}
