//! The gh-ost-compatible command line.
//!
//! In: `argv` as a script written for gh-ost would pass it: Go-style flags (`-flag v`, `-flag=v`,
//! `--flag v`, `--flag=v`, bare booleans and `--flag=false`), a repeated flag keeping its last
//! value. Out: [`Flags`], every gh-ost 1.1 flag plus wraith's own, and which of them the user
//! set explicitly ([`Parsed::explicit`]), or a clap error that names the offending flag.
//!
//! wraith's own extras are subcommands (`wraith demo`): a word, never a flag, so they cannot
//! collide with gh-ost's flags. Turning flags into a validated [`crate::config::Config`] is the
//! job of `config`.

// The flags' doc comments are their `--help` text, not rustdoc: `<table>` and `[client]` there
// are words for the terminal.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::collections::BTreeSet;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Parses a Go boolean flag value: `1 0 t f T F true false TRUE FALSE True False`.
fn go_bool() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new([
        "1", "0", "t", "f", "T", "F", "true", "false", "TRUE", "FALSE", "True", "False",
    ])
    .map(|s| matches!(s.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// gh-ost's flags, grouped as in its documentation. Defaults are gh-ost's.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "wraith",
    version,
    about = "Triggerless online schema change for MySQL and MariaDB; a drop-in for gh-ost's command line",
    after_help = "Subcommands:\n  demo                 start throw-away MariaDB servers and run a migration on a demo table\n  completions <shell>  print a completion script (bash, zsh, fish, elvish, powershell)\n  man                  print the manual page\n\n\
Flags may be written as -flag, --flag, -flag=value or --flag value, as with gh-ost.",
    args_override_self = true,
    disable_help_subcommand = true,
    subcommand_negates_reqs = true
)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Extra>,

    // ---- Connection
    /// MySQL hostname (preferably a replica, not the master)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// MySQL port (preferably a replica, not the master)
    #[arg(long, default_value_t = 3306)]
    pub port: u16,
    /// MySQL user
    #[arg(long)]
    pub user: Option<String>,
    /// MySQL password
    #[arg(long)]
    pub password: Option<String>,
    /// prompt for MySQL password
    #[arg(long)]
    pub ask_pass: bool,
    /// Config file with [client] user/password and [osc] settings
    #[arg(long)]
    pub conf: Option<String>,
    /// (optional) explicitly tell wraith the identity of the master (host or host:port)
    #[arg(long)]
    pub assume_master_host: Option<String>,
    /// MySQL user on master, if different from that on replica
    #[arg(long)]
    pub master_user: Option<String>,
    /// MySQL password on master, if different from that on replica
    #[arg(long)]
    pub master_password: Option<String>,
    /// Character set of the connections
    #[arg(long, default_value = "utf8mb4")]
    pub charset: String,
    /// Enable SSL encrypted connections to MySQL hosts
    #[arg(long)]
    pub ssl: bool,
    /// CA certificate in PEM format for TLS connections; implies --ssl
    #[arg(long)]
    pub ssl_ca: Option<String>,
    /// Certificate in PEM format for TLS connections; implies --ssl
    #[arg(long)]
    pub ssl_cert: Option<String>,
    /// Key in PEM format for TLS connections; implies --ssl
    #[arg(long)]
    pub ssl_key: Option<String>,
    /// Skips verification of the server's certificate chain and host name; implies --ssl
    #[arg(long)]
    pub ssl_allow_insecure: bool,
    /// Connect, read and write timeout for MySQL, in seconds (0: connect timeout of 10s)
    #[arg(long, default_value_t = 0.0)]
    pub mysql_timeout: f64,
    /// server id used when reading the binary log; must be unique in the replication topology
    #[arg(long, default_value_t = 99999)]
    pub replica_server_id: u32,
    /// (experimental) use GTID positions for the binlog stream
    #[arg(long)]
    pub gtid: bool,
    /// set to 'true' when you execute on Aliyun RDS
    #[arg(long)]
    pub aliyun_rds: bool,
    /// set to 'true' when you execute on a 1st generation Google Cloud Platform (GCP)
    #[arg(long)]
    pub gcp: bool,
    /// set to 'true' when you execute on Azure Database on MySQL
    #[arg(long)]
    pub azure: bool,
    /// Skip port validation for MySQL connections
    #[arg(long)]
    pub skip_port_validation: bool,
    /// how many times in a row the binlog stream reconnects before the run fails (0: 60)
    #[arg(long, default_value_t = 0)]
    pub binlogsyncer_max_reconnect_attempts: u32,

    // ---- What to migrate
    /// database name (mandatory)
    #[arg(long)]
    pub database: Option<String>,
    /// table name (mandatory)
    #[arg(long)]
    pub table: Option<String>,
    /// alter statement (mandatory), with or without `ALTER TABLE <table>`
    #[arg(long)]
    pub alter: Option<String>,
    /// table storage engine
    #[arg(long, default_value = "innodb")]
    pub storage_engine: String,
    /// actually execute the alter & migrate the table; default is noop: validate, build the
    /// ghost table, exercise the migration and clean up without swapping
    #[arg(long)]
    pub execute: bool,
    /// allow this migration to run directly on the master
    #[arg(long)]
    pub allow_on_master: bool,
    /// explicitly allow running in a master-master setup
    #[arg(long)]
    pub allow_master_master: bool,
    /// allow a unique key with nullable columns as the migration key
    #[arg(long)]
    pub allow_nullable_unique_key: bool,
    /// allow zero dates (sql_mode without NO_ZERO_IN_DATE / NO_ZERO_DATE)
    #[arg(long)]
    pub allow_zero_in_date: bool,
    /// do not enforce STRICT_ALL_TABLES sql_mode
    #[arg(long)]
    pub skip_strict_mode: bool,
    /// approve the column renames wraith detected in the ALTER
    #[arg(long)]
    pub approve_renamed_columns: bool,
    /// treat detected column renames as drop + add: data is not copied between them
    #[arg(long)]
    pub skip_renamed_columns: bool,
    /// DANGER: discard foreign keys of the migrated table; they are not recreated
    #[arg(long)]
    pub discard_foreign_keys: bool,
    /// skip checking for foreign keys; only when you are certain there are none
    #[arg(long)]
    pub skip_foreign_key_checks: bool,
    /// copy the table's triggers to the new table
    #[arg(long)]
    pub include_triggers: bool,
    /// suffix added to trigger names on the ghost table (with --include-triggers)
    #[arg(long, default_value = "")]
    pub trigger_suffix: String,
    /// remove --trigger-suffix from trigger names if it is already there
    #[arg(long)]
    pub remove_trigger_suffix_if_exists: bool,
    /// assume binlog_format=ROW on the inspected server without checking
    #[arg(long)]
    pub assume_rbr: bool,
    /// let wraith switch the inspected replica to binlog_format=ROW
    #[arg(long)]
    pub switch_to_rbr: bool,
    /// count the table's rows exactly (SELECT COUNT(*)) instead of estimating
    #[arg(long)]
    pub exact_rowcount: bool,
    /// (with --exact-rowcount) count rows concurrently with the copy
    #[arg(long, default_value = "true")]
    pub concurrent_rowcount: bool,
    /// name the old table with a timestamp: _<table>_<timestamp>_del
    #[arg(long)]
    pub timestamp_old_table: bool,
    /// explicitly let wraith know that you are running on a tungsten-replication topology
    #[arg(long)]
    pub tungsten: bool,
    /// try ALTER ... ALGORITHM=INSTANT first and finish at once when the server can
    #[arg(long)]
    pub attempt_instant_ddl: bool,
    /// fail the migration at any SQL warning of the row copy or of the binlog apply (also with --skip-strict-mode)
    #[arg(long)]
    pub panic_on_warnings: bool,
    /// skip the check for metadata locks held on the table before cut-over
    #[arg(long)]
    pub skip_metadata_lock_check: bool,
    /// enable the metadata lock instruments needed for the metadata lock check
    #[arg(long)]
    pub allow_setup_metadata_lock_instruments: bool,
    /// run ANALYZE TABLE on the ghost table before the cut-over
    #[arg(long)]
    pub analyze_ghost_table_before_cutover: bool,
    /// table name prefix for the helper tables (_<prefix>_gho, _<prefix>_ghc, _<prefix>_del)
    #[arg(long, default_value = "")]
    pub force_table_names: String,

    // ---- Run modes
    /// test the migration on a replica: stop replication at cut-over and swap there only
    #[arg(long)]
    pub test_on_replica: bool,
    /// with --test-on-replica: do not stop replication
    #[arg(long)]
    pub test_on_replica_skip_replica_stop: bool,
    /// run the whole migration on the replica (it must be a replica)
    #[arg(long)]
    pub migrate_on_replica: bool,
    /// write checkpoints (copy progress, applied binlog position) to _<table>_ghk; a failed or killed run keeps its tables for --resume
    #[arg(long)]
    pub checkpoint: bool,
    /// seconds between checkpoints
    #[arg(long, default_value_t = 300)]
    pub checkpoint_seconds: i64,
    /// go on with an interrupted --checkpoint run from its last checkpoint (the same command, with --resume)
    #[arg(long)]
    pub resume: bool,
    /// undo a migration made with --checkpoint: replay the binlog since its swap on --old-table and swap it back (the migrated table is kept as _<table>_rev_del)
    #[arg(long)]
    pub revert: bool,
    /// the old table to revert to (with --revert)
    #[arg(long)]
    pub old_table: Option<String>,

    // ---- Pace and throttling
    /// rows per copy chunk (10..100000)
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: i64,
    /// binlog events applied per transaction (1..100)
    #[arg(long, default_value_t = 10)]
    pub dml_batch_size: i64,
    /// sleep this fraction of a chunk's copy time after each chunk (0 = none, 1 = as long)
    #[arg(long, default_value_t = 0.0)]
    pub nice_ratio: f64,
    /// replication lag above which to throttle, in milliseconds (at least 100)
    #[arg(long, default_value_t = 1500)]
    pub max_lag_millis: i64,
    /// replicas whose lag throttles the migration: host:port,host:port
    #[arg(long, default_value = "")]
    pub throttle_control_replicas: String,
    /// (deprecated) query that gives the replication lag
    #[arg(long, default_value = "")]
    pub replication_lag_query: String,
    /// status thresholds that throttle: Threads_running=25,Threads_connected=200
    #[arg(long, default_value = "")]
    pub max_load: String,
    /// status thresholds that abort the migration: Threads_running=1000
    #[arg(long, default_value = "")]
    pub critical_load: String,
    /// re-check critical load after this many milliseconds before aborting (0: abort at once)
    #[arg(long, default_value_t = 0)]
    pub critical_load_interval_millis: i64,
    /// hibernate this long instead of aborting on critical load (0: abort)
    #[arg(long, default_value_t = 0)]
    pub critical_load_hibernate_seconds: i64,
    /// query that throttles when it returns a value > 0
    #[arg(long, default_value = "")]
    pub throttle_query: String,
    /// URL that throttles when it does not answer 200 OK
    #[arg(long, default_value = "")]
    pub throttle_http: String,
    /// milliseconds between --throttle-http checks
    #[arg(long, default_value_t = 100)]
    pub throttle_http_interval_millis: i64,
    /// milliseconds before a --throttle-http check times out
    #[arg(long, default_value_t = 1000)]
    pub throttle_http_timeout_millis: i64,
    /// do not throttle on --throttle-http errors
    #[arg(long)]
    pub ignore_http_errors: bool,
    /// throttle while this file exists
    #[arg(long, default_value = "")]
    pub throttle_flag_file: String,
    /// throttle while this file exists (meant for all migrations on a host)
    #[arg(long, default_value = "/tmp/gh-ost.throttle")]
    pub throttle_additional_flag_file: String,
    /// milliseconds between heartbeats written to the changelog table
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval_millis: i64,
    /// retries of a failing operation before giving up
    #[arg(long, default_value_t = 60)]
    pub default_retries: i64,
    /// wait exponentially longer between failed cut-over attempts
    #[arg(long)]
    pub cut_over_exponential_backoff: bool,
    /// longest wait, in seconds, between retries with exponential backoff
    #[arg(long, default_value_t = 64)]
    pub exponential_backoff_max_interval: i64,

    // ---- Cut-over
    /// cut-over type: atomic (default) or two-step
    #[arg(long, default_value = "atomic")]
    pub cut_over: String,
    /// longest time writers may wait on the cut-over lock, in seconds (1..10)
    #[arg(long, default_value_t = 3)]
    pub cut_over_lock_timeout_seconds: i64,
    /// `unpostpone` must name the table: unpostpone=<table>
    #[arg(long)]
    pub force_named_cut_over: bool,
    /// `panic` must name the table: panic=<table>
    #[arg(long)]
    pub force_named_panic: bool,
    /// postpone the cut-over while this file exists
    #[arg(long, default_value = "")]
    pub postpone_cut_over_flag_file: String,
    /// abort at once, without cut-over, when this file appears
    #[arg(long, default_value = "")]
    pub panic_flag_file: String,
    /// drop the old table after a successful migration
    #[arg(long)]
    pub ok_to_drop_table: bool,
    /// drop a ghost table left by an earlier run before starting
    #[arg(long)]
    pub initially_drop_ghost_table: bool,
    /// drop an old table left by an earlier run before starting
    #[arg(long)]
    pub initially_drop_old_table: bool,
    /// remove a socket file left by an earlier run before starting
    #[arg(long)]
    pub initially_drop_socket_file: bool,

    // ---- Control and output
    /// unix socket for interactive commands (default /tmp/gh-ost.<schema>.<table>.sock)
    #[arg(long, default_value = "")]
    pub serve_socket_file: String,
    /// TCP port for interactive commands (0: none)
    #[arg(long, default_value_t = 0)]
    pub serve_tcp_port: u16,
    /// folder with gh-ost-on-* hook executables
    #[arg(long, default_value = "")]
    pub hooks_path: String,
    /// free text passed to hooks as GH_OST_HOOKS_HINT
    #[arg(long, default_value = "")]
    pub hooks_hint: String,
    /// passed to hooks as GH_OST_HOOKS_HINT_OWNER
    #[arg(long, default_value = "")]
    pub hooks_hint_owner: String,
    /// passed to hooks as GH_OST_HOOKS_HINT_TOKEN
    #[arg(long, default_value = "")]
    pub hooks_hint_token: String,
    /// seconds between gh-ost-on-status hook runs
    #[arg(long, default_value_t = 60)]
    pub hooks_status_interval: i64,
    /// statsd server (host:port, UDP) to send gh-ost's gh_ost.* metrics to
    #[arg(long, default_value = "")]
    pub statsd_addr: String,
    /// tags on every statsd metric: key:value,key:value (may be repeated)
    #[arg(long, action = ArgAction::Append)]
    pub statsd_tags: Vec<String>,
    /// how often metrics are sent to statsd (default 5s) and a runtime line (memory, CPU) is
    /// logged, e.g. 10s, 500ms or 10 (seconds); 0: no runtime metrics
    #[arg(long, default_value = "")]
    pub runtime_metrics_interval: String,
    /// quiet: only warnings and errors
    #[arg(long)]
    pub quiet: bool,
    /// verbose
    #[arg(long)]
    pub verbose: bool,
    /// debug mode (very verbose)
    #[arg(long)]
    pub debug: bool,
    /// add stack traces to errors
    #[arg(long)]
    pub stack: bool,
    /// only check that the flags parse, then exit 0
    #[arg(long)]
    pub check_flag: bool,

    // ---- wraith's own
    /// wraith: number of parallel row-copy workers
    #[arg(long, default_value_t = 2)]
    pub copy_workers: u32,
    /// wraith: copy with locking reads (`LOCK IN SHARE MODE`) instead of reading each chunk's
    /// snapshot: the application's writes to rows being copied then wait for the chunk, and may
    /// deadlock with it (the default reads without locks and deletes again the rows deleted
    /// while a chunk read them; a key that compares loosely, such as a case-insensitive string,
    /// a nullable key, and --checkpoint or --resume always use locking reads)
    #[arg(long)]
    pub copy_with_shared_locks: bool,
    /// wraith: apply every change to the new table, as gh-ost does, including changes to rows
    /// the copy has not reached yet (by default, while an integer key's rows are being copied
    /// without locks, those are left to the copy, which reads them later: each such row is
    /// written once instead of twice, on the primary and on every replica)
    #[arg(long)]
    pub apply_ahead_of_copy: bool,
    /// wraith: after each chunk, resize the chunks (--chunk-size, which is then the first chunk's
    /// size) so that one takes about this many milliseconds to copy, between 10 and 100000 rows
    /// (0 = off: every chunk has --chunk-size rows, as in gh-ost)
    #[arg(long, default_value_t = 0)]
    pub chunk_target_millis: u64,
    /// wraith: the most bytes one chunk copies, by the table's average row length
    /// (information_schema): a table of wide rows is copied in chunks of fewer than --chunk-size
    /// rows, so that no chunk is a transaction of hundreds of megabytes for the primary, its
    /// binlog and the replicas (the checksum's chunks shrink alike; 0 = off: --chunk-size rows
    /// whatever their size)
    #[arg(long, default_value_t = 8 << 20)]
    pub chunk_max_bytes: u64,
    /// wraith: drop the ghost table's plain secondary indexes (not primary, unique, full-text or
    /// spatial; none when it has a foreign key) before the copy and build them in one ALTER after
    /// it: a faster copy that costs the servers less CPU, but each server builds the indexes in
    /// one statement, and a replica lags while it does (on MariaDB 10.8+ the ALTER is binlogged in
    /// two phases, so a replica with parallel replication builds them alongside its other work)
    #[arg(long)]
    pub defer_secondary_indexes: bool,
    /// wraith: slow the copy down while the primary's write latency (each heartbeat write, timed)
    /// is above this multiple of what it was before the copy began (and above the slowest tenth of
    /// the writes then, counted up to twice what it was, and at least 0.2 ms above it); the copy
    /// and the checksum then rest up to 19 times each chunk's time; a copy begun while the
    /// application writes the table starts resting 3.5 times and speeds up while the writes stay
    /// fast; writes still slow after 10 s of resting 19 times are the server's and become the
    /// baseline (0 = off)
    #[arg(long, default_value_t = 1.5)]
    pub pace_latency_ratio: f64,
    /// wraith: while the binlog brings the original table's changes one by one, gather them for
    /// up to this many milliseconds before applying them to the ghost table as one transaction
    /// (sooner once 50 times --dml-batch-size events wait; at once for the cut-over): fewer, larger
    /// transactions cost the primary and the replica less (0 = apply whenever the stream is
    /// momentarily idle)
    #[arg(long, default_value_t = 100)]
    pub apply_batch_millis: u64,
    /// wraith: while the applier drains a backlog (the binlog over a second behind, after a
    /// throttle, say), it rests this many times each full batch's time after it, so that the
    /// catching up does not take the application's latency with it; it rests only while the lag
    /// falls by at least half a second a second, and drains at full speed otherwise (0 = always
    /// full speed)
    #[arg(long, default_value_t = 1.0)]
    pub backlog_nice_ratio: f64,
    /// wraith: run at this nice value (0 to 19; 0 = at the priority wraith was started with),
    /// so that the servers on the same host get the cores before wraith's binlog reader, applier
    /// and copy; it goes back to the priority it started with while it holds a lock on the
    /// original table (the checksum's snapshot, the cut-over) and while it is a second or more
    /// behind the binlog (until it has caught up), and so lowers it only where the
    /// system lets it raise it again (root, CAP_SYS_NICE or RLIMIT_NICE; elsewhere the log says
    /// so); hooks inherit it
    #[arg(long, default_value_t = 19)]
    pub cpu_nice: i32,
    /// wraith: let rows the new table cannot hold (a duplicate on a unique key the ALTER adds, a
    /// value that does not fit) be dropped, with a warning for each, instead of failing
    #[arg(long)]
    pub allow_skipped_rows: bool,
    /// wraith: do not compare the ghost table with the original before the swap (the checksum,
    /// on by default, fails the run before the swap if any row differs; it costs a read of both
    /// tables and a brief lock of the original, bounded by --cut-over-lock-timeout-seconds)
    #[arg(long)]
    pub skip_checksum: bool,
    /// wraith: serve Prometheus metrics on this TCP port at /metrics (0: none)
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// wraith: the address --metrics-port listens on
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_bind: String,
    /// wraith: log as text, or as one JSON object per line
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// wraith's own commands; a word, so it never collides with gh-ost's flags.
#[derive(Subcommand, Debug, Clone)]
pub enum Extra {
    /// Start throw-away MariaDB servers, fill a demo table and migrate it
    Demo(DemoArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions {
        /// the shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `wraith man > wraith.1`
    Man,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// rows in the demo table
    #[arg(long, default_value_t = 200_000)]
    pub rows: u64,
    /// keep the servers running after the demo until Ctrl-C
    #[arg(long)]
    pub keep: bool,
}

/// The flags and which of them were given on the command line.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub flags: Flags,
    /// Names (as `chunk_size`) of the flags the user set explicitly.
    pub explicit: BTreeSet<String>,
}

impl Parsed {
    pub fn is_explicit(&self, id: &str) -> bool {
        self.explicit.contains(id)
    }
}

/// Parses `argv` (including the program name).
pub fn parse<I, T>(argv: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
    let mut cmd = Flags::command().mut_args(go_style_boolean);
    let normalized = normalize(&cmd, &argv);
    let matches = cmd.try_get_matches_from_mut(normalized)?;
    let flags = Flags::from_arg_matches(&matches)?;
    let explicit = explicit_ids(&cmd, &matches);
    Ok(Parsed { flags, explicit })
}

/// Turns a clap switch into a Go boolean flag: bare `--x` is true, `--x=false` is false, and
/// `--x false` does not take `false` as its value (as in Go).
fn go_style_boolean(arg: clap::Arg) -> clap::Arg {
    if !matches!(arg.get_action(), ArgAction::SetTrue) {
        return arg;
    }
    let default = match arg.get_default_values().first() {
        Some(v) if v == "true" => "true",
        _ => "false",
    };
    arg.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_value(default)
        .default_missing_value("true")
        .value_parser(go_bool())
}

fn explicit_ids(cmd: &clap::Command, matches: &ArgMatches) -> BTreeSet<String> {
    matches
        .ids()
        .filter(|id| cmd.get_arguments().any(|a| a.get_id() == *id))
        .filter(|id| {
            matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|id| id.as_str().to_string())
        .collect()
}

/// Rewrites Go-style flags into the form clap reads: `-flag` becomes `--flag`, and a value flag
/// followed by its value as a separate word becomes `--flag=value` (so a value that starts with
/// `-`, as Go allows, is never mistaken for a flag). `-h` is `--help`.
fn normalize(cmd: &clap::Command, argv: &[String]) -> Vec<String> {
    let takes_value = |name: &str| {
        cmd.get_arguments().any(|a| {
            a.get_long() == Some(name)
                && !a.is_require_equals_set()
                && a.get_action().takes_values()
        })
    };
    let mut out = Vec::with_capacity(argv.len());
    let mut words = argv.iter();
    if let Some(program) = words.next() {
        out.push(program.clone());
    }
    while let Some(word) = words.next() {
        if word == "--" || !word.starts_with('-') || word == "-" {
            out.push(word.clone());
            continue;
        }
        let body = word.trim_start_matches('-');
        if body == "h" {
            out.push("--help".into());
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        match value {
            Some(v) => out.push(format!("--{name}={v}")),
            None if takes_value(name) => match words.next() {
                Some(v) => out.push(format!("--{name}={v}")),
                None => out.push(format!("--{name}")),
            },
            None => out.push(format!("--{name}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Parsed {
        let mut argv = vec!["wraith"];
        argv.extend_from_slice(args);
        parse(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        let mut argv = vec!["wraith"];
        argv.extend_from_slice(args);
        parse(argv).unwrap_err().to_string()
    }

    #[test]
    fn all_four_go_styles_set_a_value() {
        for args in [
            vec!["-chunk-size", "500"],
            vec!["-chunk-size=500"],
            vec!["--chunk-size", "500"],
            vec!["--chunk-size=500"],
        ] {
            let parsed = p(&args);
            assert_eq!(parsed.flags.chunk_size, 500, "{args:?}");
            assert!(parsed.is_explicit("chunk_size"));
        }
    }

    #[test]
    fn booleans_are_bare_or_take_go_values_after_equals() {
        assert!(p(&["--execute"]).flags.execute);
        assert!(p(&["-execute"]).flags.execute);
        assert!(p(&["--execute=true"]).flags.execute);
        assert!(p(&["--execute=1"]).flags.execute);
        assert!(p(&["--execute=T"]).flags.execute);
        assert!(!p(&["--execute=false"]).flags.execute);
        assert!(!p(&["--execute=0"]).flags.execute);
        assert!(!p(&[]).flags.execute);
        assert!(p(&[]).flags.concurrent_rowcount, "gh-ost's default is true");
        assert!(
            !p(&["--concurrent-rowcount=false"])
                .flags
                .concurrent_rowcount
        );
    }

    #[test]
    fn a_repeated_flag_keeps_the_last_value() {
        let parsed = p(&["--chunk-size=100", "--chunk-size", "200", "-chunk-size=300"]);
        assert_eq!(parsed.flags.chunk_size, 300);
        assert!(!p(&["--execute", "--execute=false"]).flags.execute);
    }

    #[test]
    fn a_value_may_start_with_a_dash() {
        let parsed = p(&[
            "--password",
            "-secret-",
            "-alter",
            "-- comment\nADD COLUMN x INT",
        ]);
        assert_eq!(parsed.flags.password.as_deref(), Some("-secret-"));
        assert_eq!(
            parsed.flags.alter.as_deref(),
            Some("-- comment\nADD COLUMN x INT")
        );
    }

    #[test]
    fn an_unknown_flag_is_named_in_the_error() {
        let e = err(&["--no-such-flag=3"]);
        assert!(e.contains("--no-such-flag"), "{e}");
        let e = err(&["-chunk-sise", "3"]);
        assert!(e.contains("--chunk-sise"), "{e}");
    }

    #[test]
    fn a_boolean_rejects_a_non_boolean_value() {
        let e = err(&["--execute=yes"]);
        assert!(e.contains("--execute"), "{e}");
    }

    #[test]
    fn every_gh_ost_flag_parses() {
        // gh-ost 1.1's flags (docs/gh-ost.md lists them), each with a plausible value.
        let value_flags = [
            ("host", "h"),
            ("port", "3307"),
            ("user", "u"),
            ("password", "p"),
            ("conf", "/x"),
            ("assume-master-host", "m:3306"),
            ("master-user", "mu"),
            ("master-password", "mp"),
            ("charset", "utf8mb4"),
            ("ssl-ca", "/ca"),
            ("ssl-cert", "/c"),
            ("ssl-key", "/k"),
            ("mysql-timeout", "1.5"),
            ("replica-server-id", "12345"),
            ("binlogsyncer-max-reconnect-attempts", "3"),
            ("database", "d"),
            ("table", "t"),
            ("alter", "ADD COLUMN x INT"),
            ("storage-engine", "innodb"),
            ("trigger-suffix", "_x"),
            ("force-table-names", "tmp"),
            ("checkpoint-seconds", "60"),
            ("old-table", "_t_del"),
            ("chunk-size", "1000"),
            ("dml-batch-size", "10"),
            ("nice-ratio", "0.5"),
            ("max-lag-millis", "1500"),
            ("throttle-control-replicas", "r1:3306"),
            ("replication-lag-query", "SELECT 1"),
            ("max-load", "Threads_running=25"),
            ("critical-load", "Threads_running=1000"),
            ("critical-load-interval-millis", "100"),
            ("critical-load-hibernate-seconds", "5"),
            ("throttle-query", "SELECT 0"),
            ("throttle-http", "http://127.0.0.1:1/"),
            ("throttle-http-interval-millis", "100"),
            ("throttle-http-timeout-millis", "1000"),
            ("throttle-flag-file", "/tmp/t"),
            ("throttle-additional-flag-file", "/tmp/t2"),
            ("heartbeat-interval-millis", "100"),
            ("default-retries", "60"),
            ("exponential-backoff-max-interval", "64"),
            ("cut-over", "two-step"),
            ("cut-over-lock-timeout-seconds", "3"),
            ("postpone-cut-over-flag-file", "/tmp/p"),
            ("panic-flag-file", "/tmp/x"),
            ("serve-socket-file", "/tmp/s.sock"),
            ("serve-tcp-port", "9001"),
            ("hooks-path", "/tmp/h"),
            ("hooks-hint", "hint"),
            ("hooks-hint-owner", "me"),
            ("hooks-hint-token", "tok"),
            ("hooks-status-interval", "60"),
            ("statsd-addr", "127.0.0.1:8125"),
            ("statsd-tags", "a:b"),
            ("runtime-metrics-interval", "10s"),
        ];
        let bool_flags = [
            "ask-pass",
            "ssl",
            "ssl-allow-insecure",
            "gtid",
            "aliyun-rds",
            "gcp",
            "azure",
            "skip-port-validation",
            "execute",
            "allow-on-master",
            "allow-master-master",
            "allow-nullable-unique-key",
            "allow-zero-in-date",
            "skip-strict-mode",
            "approve-renamed-columns",
            "skip-renamed-columns",
            "discard-foreign-keys",
            "skip-foreign-key-checks",
            "include-triggers",
            "remove-trigger-suffix-if-exists",
            "assume-rbr",
            "switch-to-rbr",
            "exact-rowcount",
            "concurrent-rowcount",
            "timestamp-old-table",
            "tungsten",
            "attempt-instant-ddl",
            "panic-on-warnings",
            "skip-metadata-lock-check",
            "allow-setup-metadata-lock-instruments",
            "analyze-ghost-table-before-cutover",
            "test-on-replica",
            "test-on-replica-skip-replica-stop",
            "migrate-on-replica",
            "checkpoint",
            "resume",
            "revert",
            "ignore-http-errors",
            "cut-over-exponential-backoff",
            "force-named-cut-over",
            "force-named-panic",
            "ok-to-drop-table",
            "initially-drop-ghost-table",
            "initially-drop-old-table",
            "initially-drop-socket-file",
            "quiet",
            "verbose",
            "debug",
            "stack",
            "check-flag",
        ];
        let mut args: Vec<String> = Vec::new();
        for (name, value) in value_flags {
            args.push(format!("-{name}"));
            args.push(value.to_string());
        }
        for name in bool_flags {
            args.push(format!("--{name}"));
        }
        let mut argv = vec!["wraith".to_string()];
        argv.extend(args);
        let parsed = parse(argv).unwrap();
        assert_eq!(parsed.explicit.len(), value_flags.len() + bool_flags.len());
        assert_eq!(parsed.flags.cut_over, "two-step");
        assert!(parsed.flags.check_flag);
    }

    #[test]
    fn statsd_tags_may_be_repeated_and_each_is_kept() {
        let parsed = p(&[
            "--statsd-tags=env:prod,team:db",
            "-statsd-tags",
            "service:x",
        ]);
        assert_eq!(parsed.flags.statsd_tags, ["env:prod,team:db", "service:x"]);
        assert!(p(&[]).flags.statsd_tags.is_empty());
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(p(&[]).flags.log_format, LogFormat::Text);
        assert_eq!(
            p(&["--log-format", "json"]).flags.log_format,
            LogFormat::Json
        );
        let e = err(&["--log-format=xml"]);
        assert!(e.contains("--log-format"), "{e}");
    }

    #[test]
    fn demo_is_a_subcommand_not_a_flag() {
        let parsed = p(&["demo", "--rows", "1000"]);
        match parsed.flags.command {
            Some(Extra::Demo(d)) => assert_eq!(d.rows, 1000),
            other => panic!("{other:?}"),
        }
    }
}
