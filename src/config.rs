//! From parsed flags to one validated [`Config`].
//!
//! In: [`crate::cli::Parsed`], the `--conf` ini file, the terminal (for `--ask-pass`). Out: a
//! [`Config`] every other module reads and none mutates, or a [`ConfigError`] that names the flag
//! and what to write instead. Nothing here touches a server (a `--statsd-addr` host name is
//! looked up, so that one that does not resolve is a config error).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Flags, Parsed};
use crate::inspect::alter::{self, Alter};
use crate::metrics;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{0} is required")]
    Missing(&'static str),
    #[error("--{flag}={value} is out of range: {expected}")]
    OutOfRange {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("--{flag}: {message}")]
    Invalid { flag: &'static str, message: String },
    #[error("--conf {path}: {message}")]
    Conf { path: String, message: String },
    /// Flags this build cannot honour ([`NOT_IMPLEMENTED`]), one refusal per line.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
}

/// How the tables are swapped at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutOverMode {
    Atomic,
    TwoStep,
}

/// One `Name=threshold` of `--max-load` / `--critical-load`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadThreshold {
    pub variable: String,
    pub threshold: f64,
}

/// TLS settings for every connection wraith makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub allow_insecure: bool,
}

/// Everything a migration needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The flags as given (defaults filled in), for values that need no further validation.
    pub flags: Flags,
    pub database: String,
    pub table: String,
    pub alter: Alter,
    pub user: String,
    pub password: String,
    pub master_user: String,
    pub master_password: String,
    /// `None`: plain connections.
    pub tls: Option<Tls>,
    pub connect_timeout: Duration,
    pub cut_over: CutOverMode,
    /// Flags given that this build does not act on yet and whose absence is harmless (warned
    /// about once at start).
    pub not_yet_acted_on: Vec<&'static NotImplemented>,
    /// When the run started, as `YYYYMMDDhhmmss` UTC.
    pub started_at: Option<String>,
    /// Where metrics go, and how often.
    pub metrics: metrics::Settings,
}

impl Config {
    /// True for a real run (`--execute`); false for gh-ost's default noop run.
    pub fn execute(&self) -> bool {
        self.flags.execute
    }

    /// The prefix of helper table names: `--force-table-names`, or the table's own name.
    fn helper_base(&self) -> &str {
        if self.flags.force_table_names.is_empty() {
            &self.table
        } else {
            &self.flags.force_table_names
        }
    }

    /// The table that is filled and swapped in: `_<t>_gho`; with `--revert`, the old table of
    /// the migration it undoes (`--old-table`), brought up to date.
    pub fn ghost_table(&self) -> String {
        match &self.flags.old_table {
            Some(old) if self.flags.revert => old.clone(),
            _ => format!("_{}_gho", self.helper_base()),
        }
    }

    pub fn changelog_table(&self) -> String {
        format!("_{}_ghc", self.helper_base())
    }

    /// `_<t>_ghk`: where `--checkpoint` writes (`crate::checkpoint`).
    pub fn checkpoint_table(&self) -> String {
        format!("_{}_ghk", self.helper_base())
    }

    /// Checkpoints are written: `--checkpoint`, or `--resume` (a resumed run goes on writing
    /// them, as gh-ost's documented resume command does not repeat `--checkpoint`); not by a
    /// `--revert` run, which copies nothing.
    pub fn checkpointing(&self) -> bool {
        (self.flags.checkpoint || self.flags.resume) && !self.flags.revert
    }

    /// `_<t>_del`, or `_<t>_<YYYYMMDDhhmmss>_del` with `--timestamp-old-table` (the time the
    /// run started, UTC).
    pub fn old_table(&self) -> String {
        if self.flags.revert {
            // The migrated table, swapped out by the revert.
            return format!("_{}_rev_del", self.helper_base());
        }
        match &self.started_at {
            Some(stamp) if self.flags.timestamp_old_table => {
                format!("_{}_{stamp}_del", self.helper_base())
            }
            _ => format!("_{}_del", self.helper_base()),
        }
    }
}

/// What wraith does with a gh-ost flag it accepts but does not implement yet (docs/architecture.md,
/// invariant 9: a promise wraith cannot keep is refused, not ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Ignoring it could change what happens to the data, on which server, or how hard wraith
    /// works the servers, or take away a control an operator relies on: the run stops before
    /// connecting to anything.
    Refused,
    /// Its absence is harmless: named in a warning at start, and the run goes on.
    Warned,
}

/// One gh-ost flag this build parses but does not act on.
#[derive(Debug)]
pub struct NotImplemented {
    /// The flag as typed, without dashes: `test-on-replica`.
    pub flag: &'static str,
    pub handling: Handling,
    /// Whether this run asks for it (the command line and `--conf` applied; `--x=false` and a
    /// gh-ost default ask for nothing).
    pub asked: fn(&Flags) -> bool,
    /// What would happen without it (refused), or what is not done (warned).
    pub consequence: &'static str,
    /// What to do instead (refused flags).
    pub instead: &'static str,
}

impl NotImplemented {
    const fn refused(
        flag: &'static str,
        asked: fn(&Flags) -> bool,
        consequence: &'static str,
        instead: &'static str,
    ) -> NotImplemented {
        NotImplemented {
            flag,
            handling: Handling::Refused,
            asked,
            consequence,
            instead,
        }
    }

    const fn warned(
        flag: &'static str,
        asked: fn(&Flags) -> bool,
        consequence: &'static str,
    ) -> NotImplemented {
        NotImplemented {
            flag,
            handling: Handling::Warned,
            asked,
            consequence,
            instead: "",
        }
    }

    /// Why the run is refused, and what to do.
    pub fn refusal(&self) -> String {
        format!(
            "--{} is not implemented in this version of wraith; {}. {}",
            self.flag, self.consequence, self.instead
        )
    }

    /// The warning at start.
    pub fn warning(&self) -> String {
        format!(
            "--{} is accepted but not acted on by this build yet: {}",
            self.flag, self.consequence
        )
    }
}

/// Every gh-ost flag wraith accepts but does not implement yet, and what it does with each.
///
/// Not listed, because what they ask for happens: `--timestamp-old-table`,
/// `--allow-setup-metadata-lock-instruments`, `--discard-foreign-keys` (the ghost table is made
/// with `CREATE TABLE ... LIKE`, which copies no foreign key), `--allow-zero-in-date` (writer
/// sessions always allow zero dates), `--skip-port-validation` (wraith never compares `@@port`
/// with `--port`), `--verbose` (info is the default level), `--panic-on-warnings` (a copy
/// warning that means a lost or changed row always fails the run; with the flag, any warning
/// while the binlog is applied does too, `--skip-strict-mode` or not).
pub const NOT_IMPLEMENTED: &[NotImplemented] = &[
    // ---- Refused: run modes. Each decides which server's table is changed, or whether a run
    // starts over; ignored, wraith would migrate and swap the primary's table.
    // ---- Refused: what the new table is, and how it is made.
    NotImplemented::refused(
        "analyze-ghost-table-before-cutover",
        |f| f.analyze_ghost_table_before_cutover,
        "the new table would be swapped in without fresh index statistics",
        "Run without it and ANALYZE TABLE right after the swap, or use gh-ost",
    ),
    // ---- Warned: gh-ost relaxes some of its own checks with these. wraith's checks stay as
    // they are; one that fails refuses the run before anything is created.
    NotImplemented::warned(
        "aliyun-rds",
        |f| f.aliyun_rds,
        "no check is relaxed for Aliyun RDS; one that fails there refuses the run",
    ),
    NotImplemented::warned(
        "gcp",
        |f| f.gcp,
        "no check is relaxed for Google Cloud SQL; one that fails there refuses the run",
    ),
    NotImplemented::warned(
        "azure",
        |f| f.azure,
        "no check is relaxed for Azure; one that fails there refuses the run",
    ),
    NotImplemented::warned(
        "tungsten",
        |f| f.tungsten,
        "no topology check is relaxed for Tungsten; one that fails refuses the run",
    ),
    NotImplemented::warned(
        "skip-metadata-lock-check",
        |f| f.skip_metadata_lock_check,
        "the metadata lock check of the atomic cut-over still runs",
    ),
    NotImplemented::warned(
        "switch-to-rbr",
        |f| f.switch_to_rbr,
        "binlog_format is not changed; if it is not ROW, the preflight check refuses the run",
    ),
    // ---- Warned: how wraith keeps track, not what it writes.
    NotImplemented::warned(
        "gtid",
        |f| f.gtid,
        "the binlog is followed by file and position; the same changes are applied",
    ),
    NotImplemented::warned(
        "concurrent-rowcount",
        |f| f.exact_rowcount && f.concurrent_rowcount,
        "the exact row count runs before the copy, not alongside it; only the progress estimate's timing differs",
    ),
    NotImplemented::warned(
        "replication-lag-query",
        |f| !f.replication_lag_query.is_empty(),
        "deprecated, and ignored by gh-ost too; lag is measured by wraith's heartbeat",
    ),
    // ---- Warned: output only.
    NotImplemented::warned(
        "stack",
        |f| f.stack,
        "errors carry no stack trace",
    ),
];

/// The flags of `flags` this build does not implement, refused ones first.
fn not_implemented(flags: &Flags) -> (Vec<&'static NotImplemented>, Vec<&'static NotImplemented>) {
    NOT_IMPLEMENTED
        .iter()
        .filter(|n| (n.asked)(flags))
        .partition(|n| n.handling == Handling::Refused)
}

/// Builds the config. `read_password` is asked for the password with `--ask-pass`.
pub fn build(
    parsed: Parsed,
    read_password: impl FnOnce() -> std::io::Result<String>,
) -> Result<Config, ConfigError> {
    let mut flags = parsed.flags.clone();
    if let Some(path) = flags.conf.clone() {
        apply_conf_file(&path, &parsed, &mut flags)?;
    }
    let (refused, not_yet_acted_on) = not_implemented(&flags);
    if !refused.is_empty() {
        return Err(ConfigError::Refused(
            refused.iter().map(|n| n.refusal()).collect(),
        ));
    }

    // --revert undoes the change its checkpoint names; an --alter given with it is not used.
    let alter = match (&flags.alter, flags.revert) {
        (_, true) => Alter::default(),
        (Some(text), false) => alter::parse(text).map_err(|e| ConfigError::Invalid {
            flag: "alter",
            message: e.to_string(),
        })?,
        (None, false) => return Err(ConfigError::Missing("alter")),
    };
    let table = match (&flags.table, &alter.table) {
        (Some(t), Some(a)) if t != a => {
            return Err(ConfigError::Invalid {
                flag: "alter",
                message: format!("it names table `{a}` but --table is `{t}`; make them agree"),
            })
        }
        (Some(t), _) => t.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => return Err(ConfigError::Missing("table")),
    };
    let database = match (&flags.database, &alter.schema) {
        (Some(d), Some(a)) if d != a => {
            return Err(ConfigError::Invalid {
                flag: "alter",
                message: format!(
                    "it names database `{a}` but --database is `{d}`; make them agree"
                ),
            })
        }
        (Some(d), _) => d.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => return Err(ConfigError::Missing("database")),
    };
    if table.is_empty() {
        return Err(ConfigError::Missing("table"));
    }
    if database.is_empty() {
        return Err(ConfigError::Missing("database"));
    }

    range("chunk-size", flags.chunk_size, 10, 100_000)?;
    range("dml-batch-size", flags.dml_batch_size, 1, 100)?;
    range("max-lag-millis", flags.max_lag_millis, 100, i64::MAX)?;
    throttle_flags(&flags)?;
    range(
        "cut-over-lock-timeout-seconds",
        flags.cut_over_lock_timeout_seconds,
        1,
        10,
    )?;
    range(
        "heartbeat-interval-millis",
        flags.heartbeat_interval_millis,
        10,
        60_000,
    )?;
    range("default-retries", flags.default_retries, 1, i64::MAX)?;
    range("copy-workers", flags.copy_workers as i64, 1, 64)?;
    range("cpu-nice", flags.cpu_nice as i64, 0, 19)?;
    range(
        "exponential-backoff-max-interval",
        flags.exponential_backoff_max_interval,
        2,
        i64::MAX,
    )?;
    nice_ratio(&flags.nice_ratio.to_string())?;
    range(
        "chunk-target-millis",
        flags.chunk_target_millis as i64,
        0,
        60_000,
    )?;
    range(
        "apply-batch-millis",
        flags.apply_batch_millis as i64,
        0,
        10_000,
    )?;
    if !(0.0..=100.0).contains(&flags.backlog_nice_ratio) {
        return Err(ConfigError::OutOfRange {
            flag: "backlog-nice-ratio",
            value: flags.backlog_nice_ratio.to_string(),
            expected: "expected 0 to 100",
        });
    }
    if !(flags.pace_latency_ratio == 0.0 || (1.0..=100.0).contains(&flags.pace_latency_ratio)) {
        return Err(ConfigError::OutOfRange {
            flag: "pace-latency-ratio",
            value: flags.pace_latency_ratio.to_string(),
            expected: "expected 0 (off) or 1 to 100",
        });
    }
    if flags.mysql_timeout < 0.0 || !flags.mysql_timeout.is_finite() {
        return Err(ConfigError::OutOfRange {
            flag: "mysql-timeout",
            value: flags.mysql_timeout.to_string(),
            expected: "expected seconds, 0 or more",
        });
    }
    if flags.replica_server_id == 0 {
        return Err(ConfigError::OutOfRange {
            flag: "replica-server-id",
            value: "0".into(),
            expected: "expected 1 to 4294967295, unique in the topology",
        });
    }
    let cut_over = match flags.cut_over.as_str() {
        "atomic" | "default" | "" => CutOverMode::Atomic,
        "two-step" => CutOverMode::TwoStep,
        other => {
            return Err(ConfigError::Invalid {
                flag: "cut-over",
                message: format!("unknown cut-over type `{other}`; use atomic or two-step"),
            })
        }
    };
    if flags.approve_renamed_columns && flags.skip_renamed_columns {
        return Err(ConfigError::Invalid {
            flag: "skip-renamed-columns",
            message: "cannot be combined with --approve-renamed-columns; choose one".into(),
        });
    }
    if flags.test_on_replica && flags.migrate_on_replica {
        return Err(ConfigError::Invalid {
            flag: "migrate-on-replica",
            message: "cannot be combined with --test-on-replica; choose one".into(),
        });
    }
    if !flags.include_triggers
        && (!flags.trigger_suffix.is_empty() || flags.remove_trigger_suffix_if_exists)
    {
        return Err(ConfigError::Invalid {
            flag: if flags.trigger_suffix.is_empty() {
                "remove-trigger-suffix-if-exists"
            } else {
                "trigger-suffix"
            },
            message:
                "requires --include-triggers (it names the triggers carried over to the new table)"
                    .into(),
        });
    }
    if flags.remove_trigger_suffix_if_exists && flags.trigger_suffix.is_empty() {
        return Err(ConfigError::Invalid {
            flag: "remove-trigger-suffix-if-exists",
            message: "requires --trigger-suffix (the suffix to remove)".into(),
        });
    }
    if flags.test_on_replica_skip_replica_stop && !flags.test_on_replica {
        return Err(ConfigError::Invalid {
            flag: "test-on-replica-skip-replica-stop",
            message: "requires --test-on-replica".into(),
        });
    }
    if flags.checkpoint_seconds < 1 {
        return Err(ConfigError::Invalid {
            flag: "checkpoint-seconds",
            message: format!("must be at least 1 (got {})", flags.checkpoint_seconds),
        });
    }
    if flags.revert && flags.old_table.is_none() {
        return Err(ConfigError::Missing("old-table"));
    }
    if flags.old_table.is_some() && !flags.revert {
        return Err(ConfigError::Invalid {
            flag: "old-table",
            message: "names the table --revert brings back; it requires --revert".into(),
        });
    }
    if flags.panic_on_warnings && flags.allow_skipped_rows {
        return Err(ConfigError::Invalid {
            flag: "panic-on-warnings",
            message: "cannot be combined with --allow-skipped-rows: that drops a row the new table cannot hold, with a warning, which --panic-on-warnings stops the run for. Pass one of them".into(),
        });
    }
    if flags.revert && flags.resume {
        return Err(ConfigError::Invalid {
            flag: "revert",
            message: "cannot be combined with --resume: a revert starts from the migration's cut-over checkpoint (run it again to start over)".into(),
        });
    }
    if flags.revert && flags.defer_secondary_indexes {
        return Err(ConfigError::Invalid {
            flag: "defer-secondary-indexes",
            message: "cannot be combined with --revert: a revert copies nothing (the old table it brings back has its indexes). Leave it out".into(),
        });
    }
    if !flags.storage_engine.eq_ignore_ascii_case("innodb") {
        return Err(ConfigError::Invalid {
            flag: "storage-engine",
            message: format!(
                "`{}` is not supported; wraith migrates InnoDB tables (--storage-engine=innodb)",
                flags.storage_engine
            ),
        });
    }
    if flags.charset.is_empty()
        || !flags
            .charset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(ConfigError::Invalid {
            flag: "charset",
            message: format!("`{}` is not a character set name", flags.charset),
        });
    }

    let user = flags.user.clone().unwrap_or_else(|| "root".to_string());
    let mut password = flags.password.clone().unwrap_or_default();
    if flags.ask_pass {
        password = read_password().map_err(|e| ConfigError::Invalid {
            flag: "ask-pass",
            message: format!("could not read the password: {e}"),
        })?;
    }
    // On the replica itself (--migrate-on-replica), every connection is the inspected one's.
    let on_replica = flags.migrate_on_replica || flags.test_on_replica;
    let master_user = match &flags.master_user {
        Some(u) if !on_replica => u.clone(),
        _ => user.clone(),
    };
    let master_password = match &flags.master_password {
        Some(p) if !on_replica => p.clone(),
        _ => password.clone(),
    };

    let tls = (flags.ssl
        || flags.ssl_allow_insecure
        || flags.ssl_ca.is_some()
        || flags.ssl_cert.is_some()
        || flags.ssl_key.is_some())
    .then(|| Tls {
        ca: flags.ssl_ca.as_ref().map(PathBuf::from),
        cert: flags.ssl_cert.as_ref().map(PathBuf::from),
        key: flags.ssl_key.as_ref().map(PathBuf::from),
        allow_insecure: flags.ssl_allow_insecure,
    });
    if let Some(tls) = &tls {
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(ConfigError::Invalid {
                flag: "ssl-cert",
                message: "--ssl-cert and --ssl-key go together; give both or neither".into(),
            });
        }
    }
    let metrics = metrics_settings(&parsed, &flags)?;
    let connect_timeout = if flags.mysql_timeout > 0.0 {
        Duration::from_secs_f64(flags.mysql_timeout)
    } else {
        Duration::from_secs(10)
    };

    Ok(Config {
        flags,
        database,
        table,
        alter,
        user,
        password,
        master_user,
        master_password,
        tls,
        connect_timeout,
        cut_over,
        not_yet_acted_on,
        started_at: Some(utc_stamp(std::time::SystemTime::now())),
        metrics,
    })
}

/// `YYYYMMDDhhmmss` in UTC.
fn utc_stamp(t: std::time::SystemTime) -> String {
    let [year, month, day, hour, minute, second] = utc_parts(t);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

/// `t` in UTC: year, month, day, hour, minute, second (times before 1970 read as 1970).
pub fn utc_parts(t: std::time::SystemTime) -> [i64; 6] {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year, month, day, rem / 3600, rem % 3600 / 60, rem % 60]
}

/// `value` lies in `min..=max`, or the error names the flag and the range.
pub(crate) fn range(flag: &'static str, value: i64, min: i64, max: i64) -> Result<(), ConfigError> {
    if value < min || value > max {
        let expected: &'static str = match flag {
            "chunk-size" => "expected 10 to 100000",
            "dml-batch-size" => "expected 1 to 100",
            "max-lag-millis" => "expected 100 or more",
            "cut-over-lock-timeout-seconds" => "expected 1 to 10",
            "heartbeat-interval-millis" => "expected 10 to 60000",
            "copy-workers" => "expected 1 to 64",
            "exponential-backoff-max-interval" => "expected 2 or more",
            "critical-load-interval-millis" | "critical-load-hibernate-seconds" => {
                "expected 0 or more"
            }
            "throttle-http-interval-millis" => "expected 10 or more",
            _ => "expected 1 or more",
        };
        return Err(ConfigError::OutOfRange {
            flag,
            value: value.to_string(),
            expected,
        });
    }
    Ok(())
}

/// The throttle sources' flags: thresholds that parse, an `http://` URL, replicas as
/// `host[:port]`.
fn throttle_flags(flags: &Flags) -> Result<(), ConfigError> {
    parse_load("max-load", &flags.max_load)?;
    parse_load("critical-load", &flags.critical_load)?;
    range(
        "critical-load-interval-millis",
        flags.critical_load_interval_millis,
        0,
        i64::MAX,
    )?;
    range(
        "critical-load-hibernate-seconds",
        flags.critical_load_hibernate_seconds,
        0,
        i64::MAX,
    )?;
    range(
        "throttle-http-interval-millis",
        flags.throttle_http_interval_millis,
        10,
        i64::MAX,
    )?;
    range(
        "throttle-http-timeout-millis",
        flags.throttle_http_timeout_millis,
        1,
        i64::MAX,
    )?;
    check_throttle_http(&flags.throttle_http)?;
    check_control_replicas(&flags.throttle_control_replicas)
}

/// `--throttle-http`: empty, or a plain `http://` URL.
pub(crate) fn check_throttle_http(url: &str) -> Result<(), ConfigError> {
    if url.is_empty() {
        return Ok(());
    }
    crate::throttle::http::split_url(url).map_err(|e| ConfigError::Invalid {
        flag: "throttle-http",
        message: format!("{e}; put a plain http:// endpoint in front of it, or use gh-ost"),
    })?;
    Ok(())
}

/// `--throttle-control-replicas`: `host[:port]`, comma-separated.
pub(crate) fn check_control_replicas(list: &str) -> Result<(), ConfigError> {
    for replica in list.split(',') {
        if !replica.trim().is_empty() && crate::mysql::Endpoint::parse(replica, 3306).is_none() {
            return Err(ConfigError::Invalid {
                flag: "throttle-control-replicas",
                message: format!("`{replica}` is not host or host:port"),
            });
        }
    }
    Ok(())
}

/// `--nice-ratio`: a number from 0 to 100.
pub(crate) fn nice_ratio(text: &str) -> Result<f64, ConfigError> {
    let out_of_range = || ConfigError::OutOfRange {
        flag: "nice-ratio",
        value: text.to_string(),
        expected: "expected 0 to 100",
    };
    let ratio: f64 = text.trim().parse().map_err(|_| out_of_range())?;
    if !(0.0..=100.0).contains(&ratio) {
        return Err(out_of_range());
    }
    Ok(ratio)
}

/// Parses `Threads_running=25,Threads_connected=200`, the form of `--max-load` and
/// `--critical-load`.
pub fn parse_load(flag: &'static str, text: &str) -> Result<Vec<LoadThreshold>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError::Invalid {
            flag,
            message: format!(
                "`{part}` is not of the form status_variable=number (e.g. Threads_running=25)"
            ),
        };
        let (name, value) = part.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        let threshold: f64 = value.trim().parse().map_err(|_| bad())?;
        out.push(LoadThreshold {
            variable: name.to_string(),
            threshold,
        });
    }
    Ok(out)
}

/// The metrics flags: `--statsd-addr` as a `host:port` that resolves, `--statsd-tags` as
/// `key:value` pairs, `--runtime-metrics-interval` as a duration, and the address of
/// `--metrics-port`. Tags without an address are ignored, as gh-ost does.
fn metrics_settings(parsed: &Parsed, flags: &Flags) -> Result<metrics::Settings, ConfigError> {
    let interval = if flags.runtime_metrics_interval.trim().is_empty() {
        None
    } else {
        match parse_duration(&flags.runtime_metrics_interval) {
            Some(d) if d.is_zero() || d >= Duration::from_millis(10) => Some(d),
            _ => {
                return Err(ConfigError::OutOfRange {
                    flag: "runtime-metrics-interval",
                    value: flags.runtime_metrics_interval.clone(),
                    expected: "expected a duration of 10ms or more (10s, 500ms, 1m30s, or 10 for seconds), or 0",
                })
            }
        }
    };
    let statsd = if flags.statsd_addr.is_empty() {
        None
    } else {
        Some(metrics::StatsdTarget {
            given: flags.statsd_addr.clone(),
            addr: resolve("statsd-addr", &flags.statsd_addr, None)?,
            tags: statsd_tags(&flags.statsd_tags)?,
        })
    };
    let prometheus = match flags.metrics_port {
        0 if parsed.is_explicit("metrics_bind") => {
            return Err(ConfigError::Invalid {
                flag: "metrics-bind",
                message: "given without --metrics-port, so nothing would be served; add --metrics-port=<port>".into(),
            })
        }
        0 => None,
        port => Some(resolve("metrics-bind", &flags.metrics_bind, Some(port))?),
    };
    let ticking = interval.filter(|d| !d.is_zero());
    Ok(metrics::Settings {
        prometheus,
        statsd,
        interval: ticking.unwrap_or(metrics::DEFAULT_INTERVAL),
        runtime: interval != Some(Duration::ZERO),
        log_runtime: ticking.is_some(),
    })
}

/// `host:port` (or `host` with `port` given apart) to the first address it resolves to.
fn resolve(
    flag: &'static str,
    text: &str,
    port: Option<u16>,
) -> Result<std::net::SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let invalid = |message: String| ConfigError::Invalid { flag, message };
    let (host, port) = match port {
        Some(port) => (text, port),
        None => {
            if text.contains("://") {
                return Err(invalid(format!(
                    "`{text}`: only host:port (UDP) is supported, e.g. 127.0.0.1:8125"
                )));
            }
            let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
            let port = port.parse::<u16>().map_err(|_| {
                invalid(format!(
                    "`{text}` is not host:port (e.g. 127.0.0.1:8125 or [::1]:8125)"
                ))
            })?;
            (host, port)
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let resolved = (host, port)
        .to_socket_addrs()
        .map_err(|e| invalid(format!("cannot resolve `{host}`: {e}")))?
        .next();
    resolved.ok_or_else(|| invalid(format!("`{host}` resolves to no address")))
}

/// `--statsd-tags` values (each `key:value,key:value`) as one list of `key:value`.
fn statsd_tags(values: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut tags = Vec::new();
    for tag in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if tag.is_empty() {
            continue;
        }
        let well_formed = tag.split_once(':').is_some_and(|(k, _)| !k.is_empty())
            && !tag.contains(['|', '#', '@', '\n', ' ']);
        if !well_formed {
            return Err(ConfigError::Invalid {
                flag: "statsd-tags",
                message: format!(
                    "`{tag}` is not key:value (without spaces or any of | # @), e.g. env:prod"
                ),
            });
        }
        tags.push(tag.to_string());
    }
    Ok(tags)
}

/// Go's duration syntax (`10s`, `1m30s`, `1.5h`, `500ms`, `0`), or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    const UNITS: [(&str, f64); 7] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit))?;
        total += number * scale;
        rest = &rest[unit.len()..];
    }
    if text.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Reads gh-ost's `--conf` ini file: `[client] user, password` and `[osc] chunk_size,
/// dml_batch_size, max_lag_millis, replication_lag_query, max_load`. A flag given on the command
/// line wins over the file.
fn apply_conf_file(path: &str, parsed: &Parsed, flags: &mut Flags) -> Result<(), ConfigError> {
    let conf_err = |message: String| ConfigError::Conf {
        path: path.to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| conf_err(format!("cannot read it: {e}")))?;
    let sections = parse_ini(&text).map_err(conf_err)?;
    let get = |section: &str, key: &str| {
        sections
            .get(&(section.to_string(), key.to_string()))
            .cloned()
    };
    let explicit = |id: &str| parsed.is_explicit(id);
    if !explicit("user") {
        if let Some(v) = get("client", "user") {
            flags.user = Some(v);
        }
    }
    if !explicit("password") {
        if let Some(v) = get("client", "password") {
            flags.password = Some(v);
        }
    }
    let number = |key: &str, v: String| {
        v.parse::<i64>()
            .map_err(|_| conf_err(format!("[osc] {key}={v} is not a whole number")))
    };
    if let (false, Some(v)) = (explicit("chunk_size"), get("osc", "chunk_size")) {
        flags.chunk_size = number("chunk_size", v)?;
    }
    if let (false, Some(v)) = (explicit("dml_batch_size"), get("osc", "dml_batch_size")) {
        flags.dml_batch_size = number("dml_batch_size", v)?;
    }
    if let (false, Some(v)) = (explicit("max_lag_millis"), get("osc", "max_lag_millis")) {
        flags.max_lag_millis = number("max_lag_millis", v)?;
    }
    if let (false, Some(v)) = (
        explicit("replication_lag_query"),
        get("osc", "replication_lag_query"),
    ) {
        flags.replication_lag_query = v;
    }
    if let (false, Some(v)) = (explicit("max_load"), get("osc", "max_load")) {
        flags.max_load = v;
    }
    Ok(())
}

/// A small ini reader: `[section]`, `key = value` or `key=value`, `#`/`;` comments, optional
/// double quotes around values. Keys are (section, key), both lower-cased.
fn parse_ini(text: &str) -> Result<BTreeMap<(String, String), String>, String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected key=value, found `{line}`", n + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.insert(
            (
                section.clone(),
                key.trim().to_ascii_lowercase().replace('-', "_"),
            ),
            value.to_string(),
        );
    }
    Ok(out)
}

/// A config for unit tests elsewhere: `d`.`t`, a trivial ALTER, and `extra` flags.
#[cfg(test)]
pub(crate) fn for_tests(extra: &[&str]) -> Config {
    let mut argv = vec![
        "wraith",
        "--database=d",
        "--table=t",
        "--alter=ADD COLUMN c INT",
    ];
    argv.extend_from_slice(extra);
    build(crate::cli::parse(argv).unwrap(), || Ok(String::new())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli;

    fn build_args(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["wraith"];
        argv.extend_from_slice(args);
        build(cli::parse(argv).unwrap(), || Ok("from-terminal".into()))
    }

    const BASE: [&str; 3] = ["--database=d", "--table=t", "--alter=ADD COLUMN c INT"];

    fn with(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut args = BASE.to_vec();
        args.extend_from_slice(extra);
        build_args(&args)
    }

    #[test]
    fn the_three_mandatory_flags_are_named_when_missing() {
        assert_eq!(
            build_args(&["--table=t", "--alter=ADD c INT"])
                .unwrap_err()
                .to_string(),
            "--database is required"
        );
        assert_eq!(
            build_args(&["--database=d", "--alter=ADD c INT"])
                .unwrap_err()
                .to_string(),
            "--table is required"
        );
        assert_eq!(
            build_args(&["--database=d", "--table=t"])
                .unwrap_err()
                .to_string(),
            "--alter is required"
        );
    }

    #[test]
    fn table_and_database_may_come_from_the_alter() {
        let c = build_args(&["--alter=ALTER TABLE app.orders ADD COLUMN c INT"]).unwrap();
        assert_eq!((c.database.as_str(), c.table.as_str()), ("app", "orders"));
        assert_eq!(c.alter.body, "ADD COLUMN c INT");
        let e = build_args(&[
            "--database=d",
            "--table=t",
            "--alter=ALTER TABLE u ADD c INT",
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("names table `u` but --table is `t`"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_flag() {
        let e = with(&["--chunk-size=5"]).unwrap_err().to_string();
        assert_eq!(e, "--chunk-size=5 is out of range: expected 10 to 100000");
        assert!(with(&["--dml-batch-size=101"])
            .unwrap_err()
            .to_string()
            .starts_with("--dml-batch-size=101"));
        assert!(with(&["--cut-over-lock-timeout-seconds=0"]).is_err());
        assert!(with(&["--cut-over=fast"])
            .unwrap_err()
            .to_string()
            .contains("--cut-over"));
        assert!(parse_load("max-load", "Threads_running")
            .unwrap_err()
            .to_string()
            .starts_with("--max-load"));
        assert!(with(&["--chunk-size=10", "--dml-batch-size=100"]).is_ok());
    }

    #[test]
    fn load_thresholds_parse() {
        let load = parse_load("max-load", "Threads_running=25, Threads_connected=200.5").unwrap();
        assert_eq!(load.len(), 2);
        assert_eq!(load[1].variable, "Threads_connected");
        assert_eq!(load[1].threshold, 200.5);
    }

    #[test]
    fn ask_pass_reads_the_password() {
        let c = with(&["--ask-pass", "--password=ignored"]).unwrap();
        assert_eq!(c.password, "from-terminal");
        assert_eq!(c.master_password, "from-terminal");
    }

    #[test]
    fn conf_file_supplies_credentials_and_osc_settings_but_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ghost.conf");
        std::fs::write(
            &path,
            "[client]\nuser=gromit\npassword = \"s3cret\"\n\n[osc]\nchunk_size=500\nmax_lag_millis=2500\n",
        )
        .unwrap();
        let conf = format!("--conf={}", path.display());
        let c = with(&[&conf]).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("gromit", "s3cret"));
        assert_eq!(c.flags.chunk_size, 500);
        assert_eq!(c.flags.max_lag_millis, 2500);
        let c = with(&[&conf, "--user=wallace", "--chunk-size=2000"]).unwrap();
        assert_eq!(c.user, "wallace");
        assert_eq!(c.flags.chunk_size, 2000);
        let e = with(&["--conf=/nonexistent/ghost.conf"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--conf /nonexistent/ghost.conf: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn helper_table_names_follow_gh_ost() {
        let c = with(&[]).unwrap();
        assert_eq!(
            (c.ghost_table(), c.changelog_table(), c.old_table()),
            ("_t_gho".into(), "_t_ghc".into(), "_t_del".into())
        );
        let c = with(&["--force-table-names=x"]).unwrap();
        assert_eq!(c.ghost_table(), "_x_gho");
    }

    #[test]
    fn the_old_table_can_carry_a_timestamp() {
        let mut c = with(&["--timestamp-old-table"]).unwrap();
        c.started_at = Some(utc_stamp(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_000_000),
        ));
        assert_eq!(c.old_table(), "_t_20251124160000_del");
        assert_eq!(
            utc_stamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "20000229000000"
        );
    }

    fn refusal(extra: &[&str]) -> String {
        match with(extra) {
            Err(ConfigError::Refused(lines)) => lines.join("\n"),
            other => panic!("{extra:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn a_flag_wraith_cannot_honour_refuses_the_run_naming_it_and_what_to_do() {
        let e = refusal(&["--analyze-ghost-table-before-cutover", "--stack"]);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 1, "{e}");
        assert!(
            lines[0].starts_with("--analyze-ghost-table-before-cutover is not implemented"),
            "{e}"
        );
    }

    #[test]
    fn a_revert_swaps_the_old_table_back_in_and_needs_no_alter() {
        let c = build_args(&[
            "--database=d",
            "--table=t",
            "--revert",
            "--old-table=_t_del",
        ])
        .unwrap();
        assert_eq!(c.ghost_table(), "_t_del");
        assert_eq!(c.old_table(), "_t_rev_del");
        assert!(!c.checkpointing());
        let e = with(&["--old-table=_t_del"]).unwrap_err();
        assert!(e.to_string().contains("requires --revert"), "{e}");
        let e = with(&["--revert", "--old-table=_t_del", "--resume"]).unwrap_err();
        assert!(
            e.to_string().contains("cannot be combined with --resume"),
            "{e}"
        );
        let e = with(&[
            "--revert",
            "--old-table=_t_del",
            "--defer-secondary-indexes",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("a revert copies nothing"), "{e}");
        let e = with(&["--revert"]).unwrap_err();
        assert!(e.to_string().contains("old-table"), "{e}");
    }

    #[test]
    fn checkpoints_are_written_with_checkpoint_or_resume_at_least_a_second_apart() {
        assert!(!with(&[]).unwrap().checkpointing());
        assert!(with(&["--checkpoint"]).unwrap().checkpointing());
        assert!(with(&["--resume"]).unwrap().checkpointing());
        assert_eq!(with(&["--resume"]).unwrap().checkpoint_table(), "_t_ghk");
        let e = with(&["--checkpoint", "--checkpoint-seconds=0"]).unwrap_err();
        assert!(e.to_string().contains("checkpoint-seconds"), "{e}");
    }

    #[test]
    fn a_flag_set_off_or_to_gh_osts_default_asks_for_nothing() {
        let c = with(&[]).unwrap();
        assert!(c.not_yet_acted_on.is_empty());
        let c = with(&[
            "--test-on-replica=false",
            "--throttle-query=",
            "--serve-tcp-port=0",
            "--checkpoint-seconds=300",
            "--concurrent-rowcount",
        ])
        .unwrap();
        assert!(c.not_yet_acted_on.is_empty());
    }

    #[test]
    fn max_load_from_the_conf_file_is_checked_like_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ghost.conf");
        std::fs::write(&path, "[osc]\nmax_load=Threads_running=30\n").unwrap();
        let c = with(&[&format!("--conf={}", path.display())]).unwrap();
        assert_eq!(c.flags.max_load, "Threads_running=30");
        std::fs::write(&path, "[osc]\nmax_load=Threads_running\n").unwrap();
        let e = with(&[&format!("--conf={}", path.display())]).unwrap_err();
        assert!(e.to_string().starts_with("--max-load"), "{e}");
    }

    #[test]
    fn throttle_sources_are_accepted_and_checked() {
        let c = with(&[
            "--max-load=Threads_running=25",
            "--critical-load=Threads_running=1000",
            "--critical-load-interval-millis=100",
            "--critical-load-hibernate-seconds=5",
            "--throttle-query=SELECT 0",
            "--throttle-http=http://127.0.0.1:8080/throttle",
            "--throttle-http-interval-millis=500",
            "--ignore-http-errors",
            "--throttle-control-replicas=r1:3307,r2",
        ])
        .unwrap();
        assert!(c.not_yet_acted_on.is_empty());
        let e = with(&["--throttle-http=https://x/"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--throttle-http: only http://"), "{e}");
        let e = with(&["--critical-load=Threads_running:9"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--critical-load"), "{e}");
        let e = with(&["--throttle-control-replicas=r1:x"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--throttle-control-replicas"), "{e}");
    }

    #[test]
    fn panic_on_warnings_is_acted_on_and_refused_only_beside_allow_skipped_rows() {
        assert!(with(&["--panic-on-warnings"])
            .unwrap()
            .not_yet_acted_on
            .is_empty());
        assert!(with(&["--panic-on-warnings", "--skip-strict-mode"]).is_ok());
        let e = with(&["--panic-on-warnings", "--allow-skipped-rows"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be combined with --allow-skipped-rows"),
            "{e}"
        );
    }

    #[test]
    fn harmless_flags_not_acted_on_are_warned_about_by_name() {
        let c = with(&["--stack", "--gcp", "--exact-rowcount"]).unwrap();
        let flags: Vec<&str> = c.not_yet_acted_on.iter().map(|n| n.flag).collect();
        assert_eq!(flags, vec!["gcp", "concurrent-rowcount", "stack"]);
        assert_eq!(
            c.not_yet_acted_on[0].warning(),
            "--gcp is accepted but not acted on by this build yet: no check is relaxed for \
             Google Cloud SQL; one that fails there refuses the run"
        );
    }

    #[test]
    fn metrics_flags_are_acted_on_not_warned_about() {
        let c = with(&[
            "--statsd-addr=127.0.0.1:8125",
            "--statsd-tags=env:prod, team:db",
            "--statsd-tags=service:wraith",
            "--runtime-metrics-interval=10s",
            "--metrics-port=9102",
        ])
        .unwrap();
        assert!(c.not_yet_acted_on.is_empty());
        let statsd = c.metrics.statsd.as_ref().unwrap();
        assert_eq!(statsd.addr, "127.0.0.1:8125".parse().unwrap());
        assert_eq!(statsd.tags, ["env:prod", "team:db", "service:wraith"]);
        assert_eq!(c.metrics.interval, Duration::from_secs(10));
        assert!(c.metrics.runtime && c.metrics.log_runtime);
        assert_eq!(
            c.metrics.prometheus,
            Some("127.0.0.1:9102".parse().unwrap())
        );
        let c = with(&["--metrics-port=9102", "--metrics-bind=::"]).unwrap();
        assert_eq!(c.metrics.prometheus, Some("[::]:9102".parse().unwrap()));
        let c = with(&["--statsd-addr=[::1]:8125"]).unwrap();
        let statsd = c.metrics.statsd.unwrap();
        assert_eq!(statsd.addr, "[::1]:8125".parse().unwrap());
        assert!(statsd.tags.is_empty());
    }

    #[test]
    fn without_metrics_flags_nothing_is_sent_or_served() {
        let m = with(&[]).unwrap().metrics;
        assert_eq!((m.prometheus, m.statsd), (None, None));
        assert_eq!(m.interval, metrics::DEFAULT_INTERVAL);
        assert!(m.runtime && !m.log_runtime);
        let m = with(&["--runtime-metrics-interval=0", "--statsd-tags=a:b"])
            .unwrap()
            .metrics;
        assert_eq!(m.statsd, None);
        assert_eq!(m.interval, metrics::DEFAULT_INTERVAL);
        assert!(!m.runtime && !m.log_runtime);
    }

    #[test]
    fn bad_metrics_flags_name_the_flag() {
        for (args, starts) in [
            (
                vec!["--statsd-addr=localhost"],
                "--statsd-addr: `localhost` is not host:port",
            ),
            (
                vec!["--statsd-addr=127.0.0.1:x"],
                "--statsd-addr: `127.0.0.1:x` is not host:port",
            ),
            (
                vec!["--statsd-addr=unix:///tmp/s"],
                "--statsd-addr: `unix:///tmp/s`: only host:port",
            ),
            (
                vec!["--statsd-addr=127.0.0.1:8125", "--statsd-tags=env"],
                "--statsd-tags: `env` is not key:value",
            ),
            (
                vec!["--statsd-addr=127.0.0.1:8125", "--statsd-tags=a:b|c"],
                "--statsd-tags: `a:b|c` is not key:value",
            ),
            (
                vec!["--runtime-metrics-interval=soon"],
                "--runtime-metrics-interval=soon is out of range",
            ),
            (
                vec!["--runtime-metrics-interval=1ms"],
                "--runtime-metrics-interval=1ms is out of range",
            ),
            (
                vec!["--metrics-bind=0.0.0.0"],
                "--metrics-bind: given without --metrics-port",
            ),
        ] {
            let e = with(&args).unwrap_err().to_string();
            assert!(e.starts_with(starts), "{args:?}: {e}");
        }
    }

    #[test]
    fn durations_read_as_go_writes_them_or_as_seconds() {
        let d = |s| parse_duration(s);
        assert_eq!(d("10s"), Some(Duration::from_secs(10)));
        assert_eq!(d("10"), Some(Duration::from_secs(10)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(d("250us"), Some(Duration::from_micros(250)));
        for bad in ["", "s", "10x", "-1s", "-5", "1s2", "ten"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_not_implemented_table_names_real_flags_once_each() {
        use clap::CommandFactory;
        let cmd = cli::Flags::command();
        let mut seen = std::collections::BTreeSet::new();
        for n in NOT_IMPLEMENTED {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(n.flag)),
                "--{} is not a flag",
                n.flag
            );
            assert!(seen.insert(n.flag), "--{} is listed twice", n.flag);
            assert_eq!(
                n.instead.is_empty(),
                n.handling == Handling::Warned,
                "--{}: a refusal says what to do instead, a warning does not",
                n.flag
            );
        }
    }

    #[test]
    fn tls_flags_imply_ssl() {
        assert!(with(&[]).unwrap().tls.is_none());
        let c = with(&["--ssl-ca=/ca.pem"]).unwrap();
        assert_eq!(c.tls.unwrap().ca, Some(PathBuf::from("/ca.pem")));
        assert!(with(&["--ssl-cert=/c.pem"]).is_err());
    }
}

/// The startup warning is honest: every flag the command line accepts is either read by the
/// code that acts on it, or listed in [`NOT_IMPLEMENTED`]; and no flag listed as only warned
/// about is read anywhere (the warning would then say something false).
#[cfg(test)]
mod flags_read {
    use std::collections::BTreeSet;
    use std::path::Path;

    use clap::CommandFactory;

    use super::{Handling, NOT_IMPLEMENTED};

    /// The source of `src/` that reads flags: everything but the command line's definition and
    /// the table of flags not acted on.
    fn readers() -> String {
        fn walk(dir: &Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/cli.rs")
                {
                    let mut text = std::fs::read_to_string(&path).unwrap();
                    if path.ends_with("src/config.rs") {
                        let start = text.find("pub const NOT_IMPLEMENTED").unwrap();
                        let end = start + text[start..].find("\n];\n").unwrap();
                        text.replace_range(start..end, "");
                        let tests = text.find("#[cfg(test)]").unwrap();
                        text.truncate(tests);
                    }
                    out.push_str(&text);
                }
            }
        }
        let mut out = String::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        // A method chain split over lines (`flags\n    .field`) reads as one.
        let mut joined = String::with_capacity(out.len());
        for line in out.lines() {
            if !line.trim_start().starts_with('.') {
                joined.push('\n');
            }
            joined.push_str(line.trim_start());
        }
        joined
    }

    /// Flags whose request holds with no code reading them (see [`NOT_IMPLEMENTED`]'s doc).
    const HONOURED_WITHOUT_READING: &[(&str, &str)] = &[
        (
            "skip-port-validation",
            "wraith never compares @@port with --port",
        ),
        (
            "allow-zero-in-date",
            "writer sessions always allow zero dates",
        ),
        ("verbose", "info is the default log level"),
    ];

    /// `flags.field` or `f.field` (the names the code gives [`Flags`]), read rather than
    /// assigned (`--conf` assigns).
    fn reads(source: &str, field: &str) -> bool {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        ["flags.", "f."].iter().any(|receiver| {
            let needle = format!("{receiver}{field}");
            source.match_indices(&needle).any(|(i, _)| {
                let before = source[..i].chars().next_back();
                let after = source[i + needle.len()..].trim_start();
                let assigned = after.starts_with('=') && !after.starts_with("==");
                !before.is_some_and(ident) && !after.chars().next().is_some_and(ident) && !assigned
            })
        })
    }

    #[test]
    fn the_flags_not_acted_on_are_exactly_the_ones_no_code_reads() {
        let source = readers();
        let listed: BTreeSet<&str> = NOT_IMPLEMENTED.iter().map(|n| n.flag).collect();
        let mut unread = Vec::new();
        let mut warned_but_read = Vec::new();
        let command = crate::cli::Flags::command();
        for arg in command.get_arguments() {
            let Some(flag) = arg.get_long() else { continue };
            if matches!(flag, "help" | "version") {
                continue;
            }
            let field = arg.get_id().as_str();
            let read = reads(&source, field);
            let honoured = HONOURED_WITHOUT_READING.iter().any(|(f, _)| *f == flag);
            if !read && !listed.contains(flag) && !honoured {
                unread.push(flag);
            }
            let warned = NOT_IMPLEMENTED
                .iter()
                .any(|n| n.flag == flag && n.handling == Handling::Warned);
            if read && warned {
                warned_but_read.push(flag);
            }
        }
        assert!(
            unread.is_empty(),
            "parsed, never read, and not in NOT_IMPLEMENTED (silently ignored): {unread:?}"
        );
        assert!(
            warned_but_read.is_empty(),
            "warned about as not acted on, yet read by the code: {warned_but_read:?}"
        );
    }
}
