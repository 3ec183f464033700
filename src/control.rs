//! The operator's hold on a running migration: gh-ost's interactive commands, the forced
//! throttle, the postponement and the panic.
//!
//! In: commands from the control socket and TCP port ([`server`]), the `--panic-flag-file`, and
//! the run's progress for the answers. Out: changed [`Knobs`] (read by the copy, the apply loop
//! and the throttler), the gate's forced throttle, `unpostpone`, and a panic that cancels the run
//! with its reason ([`Controls::panicked`]; the run then stops without cut-over and cleans up).
//! Invariant: a command that is refused (bad value, wrong table name with
//! `--force-named-cut-over` / `--force-named-panic`, a failing `gh-ost-on-interactive-command`
//! hook) changes nothing.

pub mod command;
pub mod knobs;
pub mod server;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::mysql::sql;
use crate::progress::Progress;
use crate::throttle::Gate;

pub use command::Command;
pub use knobs::{Knob, Knobs};
pub use server::{Server, ServerError};

/// What `applier` and `inspector` answer, once the servers are known.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    pub inspected: String,
    pub primary: String,
}

/// The run's controls, shared by the command server, the migration and its stages.
#[derive(Debug)]
pub struct Controls {
    pub knobs: Arc<Knobs>,
    pub gate: Gate,
    pub progress: Arc<Progress>,
    cfg: Config,
    run_cancel: CancellationToken,
    postponing: AtomicBool,
    unpostponed: AtomicBool,
    panic: Mutex<Option<String>>,
    servers: Mutex<Servers>,
    /// Where commands are served, for `status`.
    serving: Mutex<Vec<String>>,
}

impl Controls {
    pub fn new(
        cfg: &Config,
        knobs: Knobs,
        progress: Arc<Progress>,
        run_cancel: CancellationToken,
    ) -> Controls {
        Controls {
            knobs: Arc::new(knobs),
            gate: Gate::new(crate::throttle::Pacer::new(cfg.flags.pace_latency_ratio)),
            progress,
            cfg: cfg.clone(),
            run_cancel,
            postponing: AtomicBool::new(false),
            unpostponed: AtomicBool::new(false),
            panic: Mutex::new(None),
            servers: Mutex::default(),
            serving: Mutex::default(),
        }
    }

    pub fn set_servers(&self, servers: Servers) {
        *crate::lock(&self.servers) = servers;
    }

    /// Stops the run at once, without cut-over: the run's cleanup leaves the original table as
    /// it was. The first reason wins.
    pub fn panic(&self, reason: String) {
        crate::lock(&self.panic).get_or_insert_with(|| {
            tracing::error!("panic: {reason}; stopping the migration without cut-over");
            reason
        });
        self.run_cancel.cancel();
    }

    /// Why the run was stopped by a panic, if it was.
    pub fn panicked(&self) -> Option<String> {
        crate::lock(&self.panic).clone()
    }

    /// The cut-over waits while this is true (the postpone flag file exists and no
    /// `unpostpone` came).
    pub fn cut_over_postponed(&self) -> bool {
        let file = self.knobs.postpone_flag_file();
        !self.unpostponed.load(Ordering::Relaxed) && !file.is_empty() && Path::new(&file).exists()
    }

    /// The migration is waiting in its postponement (or no longer is).
    pub fn set_postponing(&self, on: bool) {
        self.postponing.store(on, Ordering::Relaxed);
    }

    /// Carries out one command line; the answer is the text to send back (an error too).
    pub fn execute(&self, line: &str) -> Result<String, String> {
        let command = command::parse(line)?;
        let table = &self.cfg.table;
        let named = |what: &str, arg: &Option<String>, forced: bool, flag: &str| match arg {
            None if forced => Err(format!(
                "User commanded '{what}' without specifying table name, but --{flag} is set"
            )),
            Some(t) if t != table => Err(format!(
                "User commanded '{what}' on {t}, but migrated table is {table}; ignoring request."
            )),
            _ => Ok(()),
        };
        let answer = match command {
            Command::Help => command::HELP.to_string(),
            Command::Sup => format!("{}\n", self.progress.status_line()),
            Command::Status => self.status(),
            Command::Coordinates => format!("{}\n", crate::lock(&self.progress.position)),
            Command::Applier => format!("{}\n", crate::lock(&self.servers).primary),
            Command::Inspector => format!("{}\n", crate::lock(&self.servers).inspected),
            Command::Get(knob) => format!("{}\n", self.knobs.get(knob)),
            Command::Set(knob, value) => {
                self.knobs.set(knob, &value).map_err(|e| e.to_string())?;
                if knob == Knob::PostponeCutOverFlagFile && !value.is_empty() {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&value)
                        .map_err(|e| {
                            format!("{} set, but creating {value} failed: {e}", knob.name())
                        })?;
                }
                tracing::info!("command: {} set to {value:?}", knob.name());
                format!(
                    "{} = {}\n{}",
                    knob.name(),
                    self.knobs.get(knob),
                    self.status()
                )
            }
            Command::Throttle => {
                self.gate.force(true);
                tracing::info!("command: throttle");
                format!(
                    "# Note: you may only throttle for as long as your binary logs are not purged\n{}",
                    self.status()
                )
            }
            Command::NoThrottle => {
                self.gate.force(false);
                tracing::info!("command: no-throttle");
                self.status()
            }
            Command::Unpostpone(arg) => {
                named(
                    "unpostpone",
                    &arg,
                    self.cfg.flags.force_named_cut_over,
                    "force-named-cut-over",
                )?;
                if !self.postponing.load(Ordering::Relaxed) {
                    return Ok("You may only invoke this when wraith is actively postponing the cut-over. At this time it is not.\n".into());
                }
                self.unpostponed.store(true, Ordering::Relaxed);
                tracing::info!("command: unpostpone");
                format!("Unpostponed\n{}", self.status())
            }
            Command::Panic(arg) => {
                named(
                    "panic",
                    &arg,
                    self.cfg.flags.force_named_panic,
                    "force-named-panic",
                )?;
                self.panic("User commanded 'panic'".into());
                "User commanded 'panic': the migration stops now, without cut-over; the original table is left as it was and the helper tables are dropped.\n".into()
            }
        };
        Ok(answer)
    }

    /// `status`: the settings and where commands are served, then the status line.
    pub fn status(&self) -> String {
        let cfg = &self.cfg;
        let f = &cfg.flags;
        let k = &self.knobs;
        let servers = crate::lock(&self.servers).clone();
        let mut out = format!(
            "# Migrating {}; Ghost table is {}\n",
            sql::qualified(&cfg.database, &cfg.table),
            sql::qualified(&cfg.database, &cfg.ghost_table()),
        );
        if !servers.primary.is_empty() {
            out += &format!(
                "# Migrating {}; inspecting {}\n",
                servers.primary, servers.inspected
            );
        }
        out += &format!(
            "# Migration started {}s ago{}\n",
            self.progress.started.elapsed().as_secs(),
            if cfg.execute() {
                ""
            } else {
                " (noop: no --execute, nothing will be swapped)"
            }
        );
        out += &format!(
            "# chunk-size: {}; max-lag-millis: {}ms; dml-batch-size: {}; max-load: {}; critical-load: {}; nice-ratio: {}\n",
            k.chunk_size(),
            k.max_lag().as_millis(),
            k.dml_batch_size(),
            k.get(Knob::MaxLoad),
            k.get(Knob::CriticalLoad),
            k.nice_ratio(),
        );
        let mut line = |name: &str, value: String| {
            if !value.is_empty() {
                out += &format!("# {name}: {value}\n");
            }
        };
        line("throttle-flag-file", f.throttle_flag_file.clone());
        line(
            "throttle-additional-flag-file",
            f.throttle_additional_flag_file.clone(),
        );
        line("throttle-query", k.throttle_query());
        line("throttle-http", k.throttle_http());
        line(
            "throttle-control-replicas",
            k.get(Knob::ThrottleControlReplicas),
        );
        if self.gate.forced() {
            line(
                "throttled by command",
                "yes (no-throttle releases it)".into(),
            );
        }
        let postpone = k.postpone_flag_file();
        if !postpone.is_empty() {
            let set = if self.unpostponed.load(Ordering::Relaxed) {
                " [unpostponed]"
            } else if Path::new(&postpone).exists() {
                " [set]"
            } else {
                ""
            };
            line("postpone-cut-over-flag-file", format!("{postpone}{set}"));
        }
        line("panic-flag-file", f.panic_flag_file.clone());
        for serving in crate::lock(&self.serving).iter() {
            out += &format!("# Serving on {serving}\n");
        }
        out + &self.progress.status_line() + "\n"
    }

    fn serving(&self, what: String) {
        crate::lock(&self.serving).push(what);
    }
}

/// `--panic-flag-file`: checked every 100 ms until `cancel`; its appearance panics the run.
pub async fn watch_panic_file(controls: Arc<Controls>, cancel: CancellationToken) {
    let file = controls.cfg.flags.panic_flag_file.clone();
    if file.is_empty() {
        return;
    }
    loop {
        if Path::new(&file).exists() {
            controls.panic(format!("found panic-flag-file {file}"));
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
