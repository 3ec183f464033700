//! From parsed flags to one validated [`Config`].
//!
//! In: [`cli::Parsed`], the `--conf` ini file, the terminal (for `--ask-pass`). Out: a [`Config`]
//! every other module reads and none mutates, or a [`ConfigError`] that names the flag and what
//! to write instead. Nothing here touches a server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Flags, Parsed};
use crate::inspect::alter::{self, Alter};

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
    pub max_load: Vec<LoadThreshold>,
    pub critical_load: Vec<LoadThreshold>,
    /// Flags accepted that this build does not act on yet (warned about once at start).
    pub not_yet_acted_on: Vec<&'static str>,
    /// When the run started, as `YYYYMMDDhhmmss` UTC.
    pub started_at: Option<String>,
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

    pub fn ghost_table(&self) -> String {
        format!("_{}_gho", self.helper_base())
    }

    pub fn changelog_table(&self) -> String {
        format!("_{}_ghc", self.helper_base())
    }

    /// `_<t>_del`, or `_<t>_<YYYYMMDDhhmmss>_del` with `--timestamp-old-table` (the time the
    /// run started, UTC).
    pub fn old_table(&self) -> String {
        match &self.started_at {
            Some(stamp) if self.flags.timestamp_old_table => {
                format!("_{}_{stamp}_del", self.helper_base())
            }
            _ => format!("_{}_del", self.helper_base()),
        }
    }
}

/// Flags that parse but that this build does not act on yet, with gh-ost's defaults; each one a
/// user sets is warned about by name.
const NOT_YET_ACTED_ON: &[&str] = &[
    "aliyun_rds",
    "gcp",
    "azure",
    "skip_port_validation",
    "switch_to_rbr",
    "tungsten",
    "attempt_instant_ddl",
    "panic_on_warnings",
    "skip_metadata_lock_check",
    "allow_setup_metadata_lock_instruments",
    "analyze_ghost_table_before_cutover",
    "test_on_replica",
    "test_on_replica_skip_replica_stop",
    "migrate_on_replica",
    "checkpoint",
    "checkpoint_seconds",
    "resume",
    "revert",
    "old_table",
    "throttle_control_replicas",
    "replication_lag_query",
    "max_load",
    "critical_load",
    "critical_load_interval_millis",
    "critical_load_hibernate_seconds",
    "throttle_query",
    "throttle_http",
    "throttle_http_interval_millis",
    "throttle_http_timeout_millis",
    "ignore_http_errors",
    "force_named_cut_over",
    "force_named_panic",
    "panic_flag_file",
    "initially_drop_socket_file",
    "serve_socket_file",
    "serve_tcp_port",
    "hooks_path",
    "hooks_hint",
    "hooks_hint_owner",
    "hooks_hint_token",
    "hooks_status_interval",
    "statsd_addr",
    "statsd_tags",
    "runtime_metrics_interval",
    "stack",
    "gtid",
    "include_triggers",
    "trigger_suffix",
    "remove_trigger_suffix_if_exists",
    "discard_foreign_keys",
    "concurrent_rowcount",
    "timestamp_old_table",
];

/// Builds the config. `read_password` is asked for the password with `--ask-pass`.
pub fn build(
    parsed: Parsed,
    read_password: impl FnOnce() -> std::io::Result<String>,
) -> Result<Config, ConfigError> {
    let mut flags = parsed.flags.clone();
    if let Some(path) = flags.conf.clone() {
        apply_conf_file(&path, &parsed, &mut flags)?;
    }

    let alter_text = flags.alter.clone().ok_or(ConfigError::Missing("alter"))?;
    let alter = alter::parse(&alter_text).map_err(|e| ConfigError::Invalid {
        flag: "alter",
        message: e.to_string(),
    })?;
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
    range(
        "exponential-backoff-max-interval",
        flags.exponential_backoff_max_interval,
        2,
        i64::MAX,
    )?;
    if !(0.0..=100.0).contains(&flags.nice_ratio) {
        return Err(ConfigError::OutOfRange {
            flag: "nice-ratio",
            value: flags.nice_ratio.to_string(),
            expected: "expected 0 to 100",
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
    if flags.revert && flags.old_table.is_none() {
        return Err(ConfigError::Missing("old-table"));
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
    let max_load = parse_load("max-load", &flags.max_load)?;
    let critical_load = parse_load("critical-load", &flags.critical_load)?;

    let user = flags.user.clone().unwrap_or_else(|| "root".to_string());
    let mut password = flags.password.clone().unwrap_or_default();
    if flags.ask_pass {
        password = read_password().map_err(|e| ConfigError::Invalid {
            flag: "ask-pass",
            message: format!("could not read the password: {e}"),
        })?;
    }
    let master_user = flags.master_user.clone().unwrap_or_else(|| user.clone());
    let master_password = flags
        .master_password
        .clone()
        .unwrap_or_else(|| password.clone());

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
    let connect_timeout = if flags.mysql_timeout > 0.0 {
        Duration::from_secs_f64(flags.mysql_timeout)
    } else {
        Duration::from_secs(10)
    };

    let not_yet_acted_on = NOT_YET_ACTED_ON
        .iter()
        .copied()
        .filter(|id| parsed.is_explicit(id))
        .collect();

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
        max_load,
        critical_load,
        not_yet_acted_on,
        started_at: Some(utc_stamp(std::time::SystemTime::now())),
    })
}

/// `YYYYMMDDhhmmss` in UTC.
fn utc_stamp(t: std::time::SystemTime) -> String {
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
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn range(flag: &'static str, value: i64, min: i64, max: i64) -> Result<(), ConfigError> {
    if value < min || value > max {
        let expected: &'static str = match flag {
            "chunk-size" => "expected 10 to 100000",
            "dml-batch-size" => "expected 1 to 100",
            "max-lag-millis" => "expected 100 or more",
            "cut-over-lock-timeout-seconds" => "expected 1 to 10",
            "heartbeat-interval-millis" => "expected 10 to 60000",
            "copy-workers" => "expected 1 to 64",
            "exponential-backoff-max-interval" => "expected 2 or more",
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

/// Parses `Threads_running=25,Threads_connected=200`.
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
        assert!(with(&["--max-load=Threads_running"])
            .unwrap_err()
            .to_string()
            .starts_with("--max-load"));
        assert!(with(&["--chunk-size=10", "--dml-batch-size=100"]).is_ok());
    }

    #[test]
    fn load_thresholds_parse() {
        let c = with(&["--max-load=Threads_running=25, Threads_connected=200.5"]).unwrap();
        assert_eq!(c.max_load.len(), 2);
        assert_eq!(c.max_load[1].variable, "Threads_connected");
        assert_eq!(c.max_load[1].threshold, 200.5);
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
            "[client]\nuser=gromit\npassword = \"s3cret\"\n\n[osc]\nchunk_size=500\nmax_load=Threads_running=30\n",
        )
        .unwrap();
        let conf = format!("--conf={}", path.display());
        let c = with(&[&conf]).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("gromit", "s3cret"));
        assert_eq!(c.flags.chunk_size, 500);
        assert_eq!(c.max_load[0].threshold, 30.0);
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

    #[test]
    fn flags_not_yet_acted_on_are_reported() {
        let c = with(&["--throttle-query=SELECT 0", "--hooks-path=/tmp"]).unwrap();
        assert_eq!(c.not_yet_acted_on, vec!["throttle_query", "hooks_path"]);
        assert!(with(&[]).unwrap().not_yet_acted_on.is_empty());
    }

    #[test]
    fn tls_flags_imply_ssl() {
        assert!(with(&[]).unwrap().tls.is_none());
        let c = with(&["--ssl-ca=/ca.pem"]).unwrap();
        assert_eq!(c.tls.unwrap().ca, Some(PathBuf::from("/ca.pem")));
        assert!(with(&["--ssl-cert=/c.pem"]).is_err());
    }
}
