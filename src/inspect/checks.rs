//! The preflight checks: a registry of small named functions over gathered [`Facts`].
//!
//! In: [`Facts`] (read from the servers once, by `inspect::gather`) and the [`Config`]. Out: for
//! each check that fails, a [`Failure`] that says what is wrong and how to fix it. A check is one
//! function and one line in [`CHECKS`]; it declares the [`Phase`] it runs in. Checks never touch a
//! server, so each is unit-testable on hand-made facts.
//!
//! Where gh-ost refuses the same thing, the message opens with gh-ost's own sentence, as gh-ost
//! 1.1.x prints it (its source file under gh-ost's `go/logic/` and the function are named next to
//! each), so that scripts and runbooks that grep gh-ost's output keep working; wraith's
//! explanation and what to do follow.

use super::Facts;
use crate::config::Config;
use crate::mysql::sql::quote_ident;

/// When a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before anything is created.
    BeforeStart,
}

/// A failed check: its name and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub check: &'static str,
    pub message: String,
}

/// The outcome of one check.
pub type Outcome = Result<(), String>;

pub struct Check {
    pub name: &'static str,
    pub phase: Phase,
    pub run: fn(&Facts, &Config) -> Outcome,
}

/// Every check, in the order they run.
pub const CHECKS: &[Check] = &[
    Check {
        name: "server-version",
        phase: Phase::BeforeStart,
        run: server_version,
    },
    Check {
        name: "log-bin",
        phase: Phase::BeforeStart,
        run: log_bin,
    },
    Check {
        name: "binlog-format",
        phase: Phase::BeforeStart,
        run: binlog_format,
    },
    Check {
        name: "binlog-row-image",
        phase: Phase::BeforeStart,
        run: binlog_row_image,
    },
    Check {
        name: "log-slave-updates",
        phase: Phase::BeforeStart,
        run: log_slave_updates,
    },
    Check {
        name: "binlog-compression",
        phase: Phase::BeforeStart,
        run: binlog_compression,
    },
    Check {
        name: "partial-json",
        phase: Phase::BeforeStart,
        run: partial_json,
    },
    Check {
        name: "privileges",
        phase: Phase::BeforeStart,
        run: privileges,
    },
    Check {
        name: "replica-server-id",
        phase: Phase::BeforeStart,
        run: replica_server_id,
    },
    Check {
        name: "table-exists",
        phase: Phase::BeforeStart,
        run: table_exists,
    },
    Check {
        name: "base-table",
        phase: Phase::BeforeStart,
        run: base_table,
    },
    Check {
        name: "functional-key-parts",
        phase: Phase::BeforeStart,
        run: functional_key_parts,
    },
    Check {
        name: "table-engine",
        phase: Phase::BeforeStart,
        run: table_engine,
    },
    Check {
        name: "foreign-keys",
        phase: Phase::BeforeStart,
        run: foreign_keys,
    },
    Check {
        name: "triggers",
        phase: Phase::BeforeStart,
        run: triggers,
    },
    Check {
        name: "alter-engine",
        phase: Phase::BeforeStart,
        run: alter_engine,
    },
    Check {
        name: "alter-renames-table",
        phase: Phase::BeforeStart,
        run: alter_renames_table,
    },
    Check {
        name: "helper-table-names",
        phase: Phase::BeforeStart,
        run: helper_table_names,
    },
    Check {
        name: "column-renames",
        phase: Phase::BeforeStart,
        run: column_renames,
    },
    Check {
        name: "cut-over-lock-proof",
        phase: Phase::BeforeStart,
        run: cut_over_lock_proof,
    },
    Check {
        name: "cut-over-gate",
        phase: Phase::BeforeStart,
        run: cut_over_gate,
    },
    Check {
        name: "disk-space",
        phase: Phase::BeforeStart,
        run: disk_space,
    },
    Check {
        name: "leftover-helper-tables",
        phase: Phase::BeforeStart,
        run: leftover_helper_tables,
    },
];

/// Runs every check of `phase` and returns all failures.
pub fn run(phase: Phase, facts: &Facts, cfg: &Config) -> Vec<Failure> {
    CHECKS
        .iter()
        .filter(|c| c.phase == phase)
        .filter_map(|c| {
            (c.run)(facts, cfg).err().map(|message| Failure {
                check: c.name,
                message,
            })
        })
        .collect()
}

fn server_version(f: &Facts, _: &Config) -> Outcome {
    f.inspected.flavor.check_supported()?;
    f.primary.flavor.check_supported()
}

fn log_bin(f: &Facts, _: &Config) -> Outcome {
    if f.inspected.log_bin {
        Ok(())
    } else {
        // The first sentence is gh-ost's (inspect.go, validateBinlogs), for scripts.
        Err(format!(
            "{} must have binary logs enabled: binary logging is off (log_bin=OFF), and wraith reads row changes from the binlog. Start the server with --log-bin (and --binlog-format=ROW)",
            f.inspected.endpoint
        ))
    }
}

fn binlog_format(f: &Facts, cfg: &Config) -> Outcome {
    if cfg.flags.assume_rbr || f.inspected.binlog_format.eq_ignore_ascii_case("ROW") {
        return Ok(());
    }
    // The first sentence is gh-ost's (inspect.go, validateBinlogs), for scripts; wraith does not
    // switch the format itself, so gh-ost's offer of --switch-to-rbr is left out.
    Err(format!(
        "You must be using ROW binlog format. binlog_format is {} on {}; wraith needs ROW. Run `SET GLOBAL binlog_format='ROW'` (and restart replication on a replica so its SQL thread picks it up), or set it in the server's configuration",
        f.inspected.binlog_format, f.inspected.endpoint
    ))
}

fn binlog_row_image(f: &Facts, _: &Config) -> Outcome {
    if f.inspected.binlog_row_image.eq_ignore_ascii_case("FULL") {
        return Ok(());
    }
    // The first two sentences are gh-ost's (inspect.go, validateBinlogs), for scripts.
    Err(format!(
        "{} has '{}' binlog_row_image, and only 'FULL' is supported. This operation cannot proceed. wraith needs FULL row images, or changed rows would lose columns. Run `SET GLOBAL binlog_row_image='FULL'` and set it in the server's configuration",
        f.inspected.endpoint,
        f.inspected.binlog_row_image.to_ascii_uppercase()
    ))
}

fn log_slave_updates(f: &Facts, _: &Config) -> Outcome {
    if !f.reading_replica() || f.inspected.log_replica_updates {
        return Ok(());
    }
    // The first sentence is gh-ost's (inspect.go, validateLogSlaveUpdates), for scripts: it names
    // log_slave_updates whatever the server calls it.
    Err(format!(
        "{0} must have log_slave_updates enabled for executing migration: {0} is a replica without {1}=ON, so the changes it replicates are not in its own binlog and wraith would miss them. Enable it in the replica's configuration (it needs a restart), or run on the primary with --allow-on-master",
        f.inspected.endpoint,
        f.inspected.flavor.log_replica_updates_variable()
    ))
}

fn binlog_compression(f: &Facts, _: &Config) -> Outcome {
    let s = &f.inspected;
    let (Some(variable), Some(fix)) = (
        s.flavor.binlog_compression_variable(),
        s.flavor.binlog_compression_off_sql(),
    ) else {
        return Ok(());
    };
    if !s.binlog_compression {
        return Ok(());
    }
    let what = match s.flavor.kind {
        crate::mysql::flavor::Kind::MariaDb => {
            "MariaDB writes compressed binlog events that wraith cannot decode"
        }
        crate::mysql::flavor::Kind::MySql => {
            "MySQL writes each transaction as one compressed payload, which wraith does not read (its driver decompresses a whole transaction in memory at once, and skips one it cannot decompress without an error)"
        }
    };
    Err(format!(
        "{variable}=ON on {}: {what}. Run `{fix}` for the duration of the migration",
        s.endpoint
    ))
}

fn partial_json(f: &Facts, _: &Config) -> Outcome {
    if f.inspected
        .binlog_row_value_options
        .to_ascii_uppercase()
        .contains("PARTIAL_JSON")
    {
        return Err(format!(
            "binlog_row_value_options=PARTIAL_JSON on {}: JSON updates are logged as partial diffs that cannot be replayed as full rows. Run `SET GLOBAL binlog_row_value_options=''`",
            f.inspected.endpoint
        ));
    }
    Ok(())
}

/// What the grants of one user allow, read from `SHOW GRANTS`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grants {
    pub all_global: bool,
    pub super_priv: bool,
    pub replication_slave: bool,
    pub replication_client: bool,
    pub all_on_schema: bool,
    /// Roles are granted: their privileges are not listed, so missing ones are only suspected.
    pub has_roles: bool,
}

impl Grants {
    /// Reads `SHOW GRANTS` lines for the user, with `schema` the database migrated.
    pub fn parse(lines: &[String], schema: &str) -> Grants {
        let mut g = Grants::default();
        // As SHOW GRANTS quotes the schema (a grant may escape `_`, its wildcard).
        let schema_patterns = [
            format!("ON {}.*", quote_ident(&schema.replace('_', "\\_"))),
            format!("ON {}.*", quote_ident(schema)),
        ];
        for line in lines {
            let upper = line.to_ascii_uppercase();
            let Some(rest) = upper.strip_prefix("GRANT ") else {
                continue;
            };
            let Some(on_at) = rest.find(" ON ") else {
                // `GRANT role TO user`
                g.has_roles = true;
                continue;
            };
            let privs = &rest[..on_at];
            let target = &line["GRANT ".len() + on_at..];
            let global = target.starts_with(" ON *.*");
            let has = |p: &str| privs.split(',').any(|x| x.trim() == p);
            let all = privs.trim().starts_with("ALL");
            if global {
                g.all_global |= all;
                g.super_priv |= has("SUPER");
                g.replication_slave |= all || has("REPLICATION SLAVE");
                g.replication_client |=
                    all || has("REPLICATION CLIENT") || has("BINLOG MONITOR") || has("SUPER");
            }
            if all
                && (global
                    || schema_patterns
                        .iter()
                        .any(|p| target.trim_start().starts_with(p.trim_start())))
            {
                g.all_on_schema = true;
            }
        }
        g
    }

    fn missing(&self) -> Vec<&'static str> {
        if self.all_global {
            return vec![];
        }
        let mut missing = vec![];
        if !self.replication_slave {
            missing.push("REPLICATION SLAVE ON *.*");
        }
        if !self.replication_client {
            missing.push("REPLICATION CLIENT ON *.* (BINLOG MONITOR on MariaDB)");
        }
        if !self.all_on_schema {
            missing.push("ALL PRIVILEGES ON <database>.*");
        }
        missing
    }
}

fn privileges(f: &Facts, cfg: &Config) -> Outcome {
    let mut problems = Vec::new();
    for (who, server) in [("inspected", &f.inspected), ("primary", &f.primary)] {
        let missing = server.grants.missing();
        if missing.is_empty() || server.grants.has_roles {
            continue;
        }
        problems.push(format!(
            "the user on the {who} server {} lacks {}",
            server.endpoint,
            missing
                .join(", ")
                .replace("<database>", &crate::mysql::sql::quote_ident(&cfg.database))
        ));
        if f.same_server() {
            break;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let database = crate::mysql::sql::quote_ident(&cfg.database);
        // The first two sentences are gh-ost's (inspect.go, validateGrants), for scripts.
        Err(format!(
            "User has insufficient privileges for migration. Needed: SUPER|REPLICATION CLIENT, REPLICATION SLAVE and ALL on {database}.*: {}; grant them (e.g. GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ...; GRANT ALL ON {database}.* TO ...)",
            problems.join("; "),
        ))
    }
}

fn replica_server_id(f: &Facts, cfg: &Config) -> Outcome {
    let id = cfg.flags.replica_server_id;
    if f.inspected.server_id == id || f.primary.server_id == id {
        return Err(format!(
            "--replica-server-id={id} is the server_id of a server in the topology; choose another with --replica-server-id"
        ));
    }
    if f.registered_replica_ids.contains(&id) {
        return Err(format!(
            "--replica-server-id={id} is already used by a replica of {} (is another wraith or gh-ost running?); choose another with --replica-server-id",
            f.inspected.endpoint
        ));
    }
    Ok(())
}

fn table_exists(f: &Facts, cfg: &Config) -> Outcome {
    if f.table.is_some() || f.table_type.is_some() {
        return Ok(());
    }
    // The first sentence is gh-ost's (inspect.go, validateTable), for scripts.
    Err(format!(
        "Cannot find table {}! It does not exist on {}; check --database and --table",
        crate::mysql::sql::qualified(&cfg.database, &cfg.table),
        f.inspected.endpoint
    ))
}

/// `--table` names a base table, not a view, a sequence or a system-versioned table.
fn base_table(f: &Facts, cfg: &Config) -> Outcome {
    match f.table_type.as_deref() {
        None | Some("BASE TABLE") => Ok(()),
        // The first sentence is gh-ost's (inspect.go, validateTable), for scripts; gh-ost
        // refuses views only, so the other kinds keep wraith's own words.
        Some("VIEW") => Err(format!(
            "{} is a VIEW, not a real table. Bailing out: wraith migrates base tables only",
            crate::mysql::sql::qualified(&cfg.database, &cfg.table)
        )),
        Some(kind) => Err(format!(
            "{}.{} is a {}, not a base table; wraith migrates base tables only",
            crate::mysql::sql::quote_ident(&cfg.database),
            crate::mysql::sql::quote_ident(&cfg.table),
            if kind.ends_with("VERSIONED") {
                format!("{kind} table")
            } else {
                kind.to_string()
            }
        )),
    }
}

/// An index with a functional key part (MySQL 8) is built on a hidden column that
/// `information_schema` does not show: wraith can neither key the copy by it nor trust the
/// column list it reads.
fn functional_key_parts(f: &Facts, _: &Config) -> Outcome {
    let Some(table) = &f.table else {
        return Ok(());
    };
    let functional: Vec<String> = table
        .indexes
        .iter()
        .filter(|i| i.functional)
        .map(|i| crate::mysql::sql::quote_ident(&i.name))
        .collect();
    if functional.is_empty() {
        return Ok(());
    }
    Err(format!(
        "index {} has a functional key part; wraith cannot copy by or recreate it yet. Drop it \
         first (a separate ALTER) and add it back after the migration, or use gh-ost",
        functional.join(", ")
    ))
}

fn table_engine(f: &Facts, cfg: &Config) -> Outcome {
    match &f.table {
        Some(t) if !t.engine.eq_ignore_ascii_case("InnoDB") => Err(format!(
            "table {} uses the {} engine; wraith migrates InnoDB tables only",
            crate::mysql::sql::quote_ident(&cfg.table),
            t.engine
        )),
        _ => Ok(()),
    }
}

fn foreign_keys(f: &Facts, cfg: &Config) -> Outcome {
    if cfg.flags.skip_foreign_key_checks {
        return Ok(());
    }
    // The first two sentences of each are gh-ost's (inspect.go, validateTableForeignKeys), for
    // scripts; the number counts constraints (gh-ost's counts their columns).
    let table = crate::mysql::sql::qualified(&cfg.database, &cfg.table);
    if !f.parent_foreign_keys.is_empty() {
        return Err(format!(
            "Found {} parent-side foreign keys on {table}. Parent-side foreign keys are not supported. Bailing out: table {} is referenced by foreign keys ({}); swapping it would leave them pointing at the old table. wraith does not migrate parent tables of foreign keys",
            f.parent_foreign_keys.len(),
            crate::mysql::sql::quote_ident(&cfg.table),
            f.parent_foreign_keys.join(", ")
        ));
    }
    if !f.child_foreign_keys.is_empty() && !cfg.flags.discard_foreign_keys {
        return Err(format!(
            "Found {} child-side foreign keys on {table}. Child-side foreign keys are not supported. Bailing out: table {} has foreign keys ({}); pass --discard-foreign-keys to migrate it without them (they are not recreated), or drop them first",
            f.child_foreign_keys.len(),
            crate::mysql::sql::quote_ident(&cfg.table),
            f.child_foreign_keys.join(", ")
        ));
    }
    Ok(())
}

/// The swap would leave the table's triggers on the old table, unless `--include-triggers`
/// carries them over (`crate::triggers`).
fn triggers(f: &Facts, cfg: &Config) -> Outcome {
    if f.triggers.is_empty() || cfg.flags.include_triggers {
        return Ok(());
    }
    // The first two sentences are gh-ost's (inspect.go, validateTableTriggers), for scripts: as
    // gh-ost said them before it had --include-triggers, which is what wraith can do today.
    Err(format!(
        "Found triggers on {}. Tables with triggers are supported only when using \"include-triggers\" flag. Bailing out: table {} has triggers ({}); pass --include-triggers (with --trigger-suffix) to carry them over to the new table, or drop them first and recreate them after the swap",
        crate::mysql::sql::qualified(&cfg.database, &cfg.table),
        crate::mysql::sql::quote_ident(&cfg.table),
        f.triggers.join(", ")
    ))
}

/// The new table is InnoDB, as the original is: an ALTER that names another engine is refused
/// here; one the parser cannot read (an engine in an executable comment, say) is caught when the
/// ghost table is built (`plan::check_built`).
fn alter_engine(_: &Facts, cfg: &Config) -> Outcome {
    match &cfg.alter.engine {
        Some(engine) if !engine.eq_ignore_ascii_case("InnoDB") => Err(format!(
            "the ALTER sets ENGINE={engine}; wraith builds InnoDB tables only (another engine may lose rows, or not roll back a failed write). Take the ENGINE option out of the ALTER, and change the engine in a separate step if you must"
        )),
        _ => Ok(()),
    }
}

fn alter_renames_table(_: &Facts, cfg: &Config) -> Outcome {
    match &cfg.alter.table_rename {
        // The first sentence is gh-ost's (migrator.go, validateStatement), for scripts.
        Some(to) => Err(format!(
            "ALTER statement seems to RENAME the table. This is not supported: the ALTER renames the table (RENAME {to}), and wraith changes a table in place and cannot rename it. Rename it separately with RENAME TABLE"
        )),
        None => Ok(()),
    }
}

fn column_renames(_: &Facts, cfg: &Config) -> Outcome {
    let renames = &cfg.alter.renames;
    if renames.is_empty() || cfg.flags.approve_renamed_columns || cfg.flags.skip_renamed_columns {
        return Ok(());
    }
    let list: Vec<String> = renames
        .iter()
        .map(|r| format!("{} -> {}", r.from, r.to))
        .collect();
    // The first sentence is gh-ost's (migrator.go, validateStatement), for scripts, with the
    // renames as gh-ost prints them (a Go map: `map[from:to ...]`, by name).
    let as_go_map: std::collections::BTreeMap<&str, &str> = renames
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    let as_go_map: Vec<String> = as_go_map
        .iter()
        .map(|(from, to)| format!("{from}:{to}"))
        .collect();
    Err(format!(
        "gh-ost believes the ALTER statement renames columns, as follows: map[{}]; pass --approve-renamed-columns to copy their values under the new names ({}), or --skip-renamed-columns to treat them as dropped and added",
        as_go_map.join(" "),
        list.join(", ")
    ))
}

/// The atomic cut-over unlocks only once the server shows its RENAME queued on the original
/// table; that needs the server's metadata lock instrumentation.
fn cut_over_lock_proof(f: &Facts, cfg: &Config) -> Outcome {
    use crate::config::CutOverMode;
    if !cfg.execute()
        || cfg.cut_over != CutOverMode::Atomic
        || f.primary_lock_instrument
        || cfg.flags.allow_setup_metadata_lock_instruments
    {
        return Ok(());
    }
    Err(format!(
        "the atomic cut-over proves that no write can slip past the swap by reading the server's metadata locks, and {} does not show them. Pass --allow-setup-metadata-lock-instruments to let wraith enable them (`{}`), enable them yourself, or use --cut-over=two-step",
        f.primary.endpoint,
        f.primary.flavor.metadata_lock_instrument_setup_sql()
    ))
}

/// The atomic cut-over's RENAME renames its gate table (`crate::cutover`, module docs), whose names
/// extend the table's: a name too long for that (61 to 64 characters) has no atomic swap, and a
/// table of those names that wraith did not create would fail every attempt at the end of the
/// copy; it is never dropped.
fn cut_over_gate(f: &Facts, cfg: &Config) -> Outcome {
    use crate::config::CutOverMode;
    if !cfg.execute() || cfg.cut_over != CutOverMode::Atomic {
        return Ok(());
    }
    if crate::cutover::gate_names(&cfg.table).is_none() {
        let gate = crate::cutover::gate_name(&cfg.table);
        return Err(format!(
            "the atomic cut-over needs a gate table named {} ({} characters), longer than the {MAX_TABLE_NAME}-character limit of a table name: use --cut-over=two-step for this table",
            crate::mysql::sql::quote_ident(&gate),
            gate.chars().count()
        ));
    }
    if f.foreign_gate_tables.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = f
        .foreign_gate_tables
        .iter()
        .map(|n| crate::mysql::sql::quote_ident(n))
        .collect();
    Err(format!(
        "the atomic cut-over needs the name{} {} for its gate table, and a table of that name exists that wraith did not create: rename it, or use --cut-over=two-step",
        if names.len() > 1 { "s" } else { "" },
        names.join(" and ")
    ))
}

/// The copy needs about as much room as the table takes now; ask for a tenth more.
fn disk_space(f: &Facts, _: &Config) -> Outcome {
    let Some(free) = f.primary_free_bytes else {
        return Ok(());
    };
    let needed = f.table_bytes + f.table_bytes / 10;
    if free >= needed {
        return Ok(());
    }
    let mib = |b: u64| b / (1 << 20);
    Err(format!(
        "{} has {} MiB free where it keeps its data, and the copy of the table needs about {} MiB; free some space first",
        f.primary.endpoint,
        mib(free),
        mib(needed)
    ))
}

/// The longest table name MySQL and MariaDB accept, in characters.
const MAX_TABLE_NAME: usize = 64;

/// Every helper table's name fits the server's limit, or the run is refused before anything is
/// created (rather than failing at the ghost's creation, or at the cut-over after the whole copy).
fn helper_table_names(_: &Facts, cfg: &Config) -> Outcome {
    let names = [cfg.ghost_table(), cfg.changelog_table(), cfg.old_table()];
    let too_long: Vec<String> = names
        .iter()
        .filter(|n| n.chars().count() > MAX_TABLE_NAME)
        .map(|n| {
            format!(
                "{} ({} characters)",
                crate::mysql::sql::quote_ident(n),
                n.chars().count()
            )
        })
        .collect();
    if too_long.is_empty() {
        return Ok(());
    }
    let old = &names[2];
    // gh-ost's sentence (applier.go, ValidateOrDropExistingTables), for scripts, where it applies.
    let timestamped_too_long = if cfg.flags.timestamp_old_table
        && old.chars().count() > MAX_TABLE_NAME
    {
        format!("--timestamp-old-table defined, but resulting table name ({old}) is too long (only {MAX_TABLE_NAME} characters allowed). ")
    } else {
        String::new()
    };
    let only_the_stamp = names[..2]
        .iter()
        .all(|n| n.chars().count() <= MAX_TABLE_NAME);
    Err(format!(
        "{timestamped_too_long}helper table names would be longer than the {MAX_TABLE_NAME}-character limit of a table name: {}; \
         {}name them from a shorter prefix with --force-table-names=<prefix>",
        too_long.join(", "),
        if only_the_stamp && cfg.flags.timestamp_old_table {
            "run without --timestamp-old-table, or "
        } else {
            ""
        }
    ))
}

fn leftover_helper_tables(f: &Facts, cfg: &Config) -> Outcome {
    let mut problems = Vec::new();
    for name in &f.existing_helper_tables {
        // What --resume goes on with (it checks them itself).
        let resumed = [
            cfg.ghost_table(),
            cfg.changelog_table(),
            cfg.checkpoint_table(),
        ];
        if cfg.flags.resume && resumed.contains(name) {
            continue;
        }
        // What --revert works with: the old table (its "ghost") and the checkpoint table.
        if cfg.flags.revert && (*name == cfg.ghost_table() || *name == cfg.checkpoint_table()) {
            continue;
        }
        let (flag, dropped_at_start) = if *name == cfg.old_table() {
            (
                "--initially-drop-old-table",
                cfg.flags.initially_drop_old_table,
            )
        } else {
            (
                "--initially-drop-ghost-table",
                cfg.flags.initially_drop_ghost_table,
            )
        };
        if dropped_at_start {
            continue;
        }
        let quoted = crate::mysql::sql::quote_ident(name);
        // For the ghost and the old table, gh-ost's sentence (applier.go,
        // ValidateOrDropExistingTables), for scripts; gh-ost drops a leftover changelog table
        // without asking, so that one is named in wraith's own words.
        problems.push(if *name == cfg.checkpoint_table() {
            format!("The checkpoint table {quoted} already exists: an earlier run with --checkpoint was interrupted. Resume it with --resume (the same command otherwise), or pass {flag} to start over.")
        } else if *name == cfg.changelog_table() {
            format!("The changelog table {quoted} already exists: drop it, or pass {flag}.")
        } else {
            format!("Table {quoted} already exists. Panicking. Use {flag} to force dropping it, though I really prefer that you drop it or rename it away.")
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} Such helper tables are left by an earlier run: make sure no other migration of this table is running before you drop them",
            problems.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::ServerFacts;
    use crate::mysql::{Endpoint, Flavor};

    fn server() -> ServerFacts {
        ServerFacts {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            flavor: Flavor::parse("10.11.6-MariaDB", ""),
            server_id: 1,
            log_bin: true,
            binlog_format: "ROW".into(),
            binlog_row_image: "FULL".into(),
            log_replica_updates: true,
            binlog_compression: false,
            binlog_row_value_options: String::new(),
            name_case: Default::default(),
            grants: Grants {
                all_global: true,
                ..Grants::default()
            },
        }
    }

    fn facts() -> Facts {
        Facts {
            inspected: server(),
            primary: server(),
            table: None,
            table_type: None,
            child_foreign_keys: vec![],
            parent_foreign_keys: vec![],
            triggers: vec![],
            existing_helper_tables: vec![],
            foreign_gate_tables: vec![],
            registered_replica_ids: vec![],
            primary_lock_instrument: true,
            table_bytes: 100 << 20,
            avg_row_bytes: 0,
            primary_free_bytes: None,
        }
    }

    fn config() -> Config {
        let parsed =
            crate::cli::parse(["wraith", "--database=d", "--table=t", "--alter=ADD c INT"])
                .unwrap();
        crate::config::build(parsed, || Ok(String::new())).unwrap()
    }

    #[test]
    fn binlog_compression_is_refused_with_each_flavors_fix() {
        let mut f = facts();
        assert_eq!(binlog_compression(&f, &config()), Ok(()));
        f.inspected.binlog_compression = true;
        let e = binlog_compression(&f, &config()).unwrap_err();
        assert!(
            e.starts_with("log_bin_compress=ON") && e.contains("`SET GLOBAL log_bin_compress=OFF`"),
            "{e}"
        );
        f.inspected.flavor = Flavor::parse("8.0.36", "MySQL Community Server - GPL");
        let e = binlog_compression(&f, &config()).unwrap_err();
        assert!(
            e.starts_with("binlog_transaction_compression=ON")
                && e.contains("`SET GLOBAL binlog_transaction_compression=OFF`"),
            "{e}"
        );
        // MySQL before 8.0.20 has no such setting.
        f.inspected.flavor = Flavor::parse("5.7.44", "");
        assert_eq!(binlog_compression(&f, &config()), Ok(()));
    }

    #[test]
    fn the_copy_needs_room_for_the_table_when_free_space_is_known() {
        let mut f = facts();
        assert_eq!(
            disk_space(&f, &config()),
            Ok(()),
            "unknown free space is not a failure"
        );
        f.primary_free_bytes = Some(50 << 20);
        let e = disk_space(&f, &config()).unwrap_err();
        assert!(
            e.contains("50 MiB free") && e.contains("about 110 MiB"),
            "{e}"
        );
        f.primary_free_bytes = Some(200 << 20);
        assert_eq!(disk_space(&f, &config()), Ok(()));
    }

    fn config_with(flags: &[&str]) -> Config {
        let mut args = vec!["wraith", "--database=d", "--alter=ADD c INT"];
        args.extend_from_slice(flags);
        crate::config::build(crate::cli::parse(args).unwrap(), || Ok(String::new())).unwrap()
    }

    #[test]
    fn helper_table_names_must_fit_the_64_character_limit() {
        let f = facts();
        let fits = format!("--table={}", "t".repeat(59));
        assert_eq!(helper_table_names(&f, &config_with(&[&fits])), Ok(()));
        let long = format!("--table={}", "t".repeat(60));
        let e = helper_table_names(&f, &config_with(&[&long])).unwrap_err();
        assert!(
            e.contains("64-character limit") && e.contains("(65 characters)"),
            "{e}"
        );
        assert!(e.contains("--force-table-names"), "{e}");
        let short_prefix = config_with(&[&long, "--force-table-names=short"]);
        assert_eq!(helper_table_names(&f, &short_prefix), Ok(()));
        // The timestamped old table is 15 characters longer.
        let mid = format!("--table={}", "t".repeat(50));
        assert_eq!(helper_table_names(&f, &config_with(&[&mid])), Ok(()));
        let e = helper_table_names(&f, &config_with(&[&mid, "--timestamp-old-table"])).unwrap_err();
        assert!(e.contains("run without --timestamp-old-table"), "{e}");
    }

    #[test]
    fn a_table_name_without_room_for_the_gate_is_refused_for_the_atomic_cut_over() {
        let f = facts();
        let table = format!("--table={}", "t".repeat(61));
        let prefix = "--force-table-names=short";
        let e = cut_over_gate(&f, &config_with(&[&table, prefix, "--execute"])).unwrap_err();
        assert!(
            e.contains("(65 characters)") && e.contains("--cut-over=two-step"),
            "{e}"
        );
        let two_step = config_with(&[&table, prefix, "--execute", "--cut-over=two-step"]);
        assert_eq!(cut_over_gate(&f, &two_step), Ok(()));
        let fits = format!("--table={}", "t".repeat(60));
        assert_eq!(
            cut_over_gate(&f, &config_with(&[&fits, prefix, "--execute"])),
            Ok(())
        );
    }

    #[test]
    fn an_alter_that_sets_an_engine_other_than_innodb_is_refused() {
        let f = facts();
        for alter in [
            "--alter=ENGINE=MEMORY",
            "--alter=ADD c INT, ENGINE 'BLACKHOLE'",
        ] {
            let e = alter_engine(&f, &config_with(&["--table=t", alter])).unwrap_err();
            assert!(e.contains("InnoDB tables only"), "{e}");
        }
        for alter in ["--alter=ENGINE=innodb", "--alter=ADD engine INT"] {
            assert_eq!(
                alter_engine(&f, &config_with(&["--table=t", alter])),
                Ok(())
            );
        }
    }

    #[test]
    fn every_check_passes_on_a_healthy_setup() {
        let mut f = facts();
        f.table = Some(orders(vec![]));
        f.table_type = Some("BASE TABLE".into());
        assert_eq!(run(Phase::BeforeStart, &f, &config()), vec![]);
    }

    fn orders(indexes: Vec<crate::inspect::schema::Index>) -> crate::inspect::TableSchema {
        crate::inspect::TableSchema {
            schema: "d".into(),
            name: "t".into(),
            engine: "InnoDB".into(),
            columns: vec![],
            indexes,
        }
    }

    #[test]
    fn a_view_or_other_non_base_table_is_refused_by_name() {
        let mut f = facts();
        f.table_type = Some("VIEW".into());
        assert_eq!(
            table_exists(&f, &config()),
            Ok(()),
            "it exists, as something else"
        );
        assert_eq!(
            base_table(&f, &config()).unwrap_err(),
            "`d`.`t` is a VIEW, not a real table. Bailing out: wraith migrates base tables only"
        );
        f.table_type = Some("SYSTEM VERSIONED".into());
        assert!(base_table(&f, &config())
            .unwrap_err()
            .contains("is a SYSTEM VERSIONED table, not a base table"));
        f.table_type = Some("BASE TABLE".into());
        assert_eq!(base_table(&f, &config()), Ok(()));
        f.table_type = None;
        assert_eq!(base_table(&f, &config()), Ok(()));
        assert!(table_exists(&f, &config())
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn an_index_with_a_functional_key_part_is_refused_by_name() {
        use crate::inspect::schema::{indexes_from_statistics, StatisticsRow};
        let rows: Vec<StatisticsRow> = vec![
            ("PRIMARY".into(), 0, Some("id".into()), None),
            ("lower_email".into(), 1, None, None),
        ];
        let mut f = facts();
        f.table = Some(orders(indexes_from_statistics(rows)));
        assert_eq!(
            functional_key_parts(&f, &config()).unwrap_err(),
            "index `lower_email` has a functional key part; wraith cannot copy by or recreate it \
             yet. Drop it first (a separate ALTER) and add it back after the migration, or use gh-ost"
        );
        f.table = Some(orders(indexes_from_statistics(vec![(
            "PRIMARY".into(),
            0,
            Some("id".into()),
            None,
        )])));
        assert_eq!(functional_key_parts(&f, &config()), Ok(()));
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_privileges_on_star_is_enough() {
        let g = Grants::parse(
            &lines(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            "app",
        );
        assert!(g.missing().is_empty());
    }

    #[test]
    fn replication_grants_plus_all_on_the_schema_are_enough() {
        let g = Grants::parse(
            &lines(&[
                "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `w`@`%`",
                "GRANT ALL PRIVILEGES ON `app`.* TO `w`@`%`",
            ]),
            "app",
        );
        assert!(g.missing().is_empty(), "{g:?}");
        let g = Grants::parse(
            &lines(&["GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO `w`@`%`"]),
            "app",
        );
        assert_eq!(g.missing(), vec!["ALL PRIVILEGES ON <database>.*"]);
        let g = Grants::parse(
            &lines(&["GRANT SELECT ON *.* TO `w`@`%`", "GRANT `dba` TO `w`@`%`"]),
            "app",
        );
        assert!(g.has_roles);
        assert_eq!(g.missing().len(), 3);
    }

    #[test]
    fn a_grant_on_the_schema_is_found_through_its_quoting() {
        for (line, schema) in [
            ("GRANT ALL PRIVILEGES ON `we``ird`.* TO `w`@`%`", "we`ird"),
            ("GRANT ALL PRIVILEGES ON `my-db`.* TO `w`@`%`", "my-db"),
            ("GRANT ALL PRIVILEGES ON `my\\_db`.* TO `w`@`%`", "my_db"),
        ] {
            let g = Grants::parse(
                &lines(&[
                    "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `w`@`%`",
                    line,
                ]),
                schema,
            );
            assert!(g.all_on_schema, "{line}");
        }
    }

    /// Each check that refuses what gh-ost also refuses opens its message with gh-ost's words,
    /// as gh-ost 1.1.x prints them, so that scripts and runbooks that grep gh-ost's output keep
    /// working; wraith's own explanation follows them.
    #[test]
    fn a_refusal_gh_ost_also_makes_opens_with_gh_osts_words() {
        let healthy = || {
            let mut f = facts();
            f.table = Some(orders(vec![]));
            f.table_type = Some("BASE TABLE".into());
            f
        };
        let with = |change: &dyn Fn(&mut Facts)| {
            let mut f = healthy();
            change(&mut f);
            f
        };
        let leftover = |name: &str| {
            let mut f = healthy();
            f.existing_helper_tables = vec![name.into()];
            leftover_helper_tables(&f, &config())
        };
        let long_stamped = config_with(&[
            &format!("--table={}", "t".repeat(50)),
            "--timestamp-old-table",
        ]);
        let cases: Vec<(&str, Outcome, String)> = vec![
            (
                "log-bin",
                log_bin(&with(&|f| f.inspected.log_bin = false), &config()),
                "127.0.0.1:3306 must have binary logs enabled".into(),
            ),
            (
                "binlog-format",
                binlog_format(
                    &with(&|f| f.inspected.binlog_format = "STATEMENT".into()),
                    &config(),
                ),
                "You must be using ROW binlog format.".into(),
            ),
            (
                "binlog-row-image",
                binlog_row_image(
                    &with(&|f| f.inspected.binlog_row_image = "minimal".into()),
                    &config(),
                ),
                "127.0.0.1:3306 has 'MINIMAL' binlog_row_image, and only 'FULL' is supported. \
                 This operation cannot proceed."
                    .into(),
            ),
            (
                "log-slave-updates",
                log_slave_updates(
                    &with(&|f| {
                        f.inspected.endpoint.port = 3307;
                        f.inspected.log_replica_updates = false;
                    }),
                    &config(),
                ),
                "127.0.0.1:3307 must have log_slave_updates enabled for executing migration".into(),
            ),
            (
                "privileges",
                privileges(
                    &with(&|f| {
                        f.inspected.grants = Grants::default();
                        f.primary.grants = Grants::default();
                    }),
                    &config(),
                ),
                "User has insufficient privileges for migration. Needed: SUPER|REPLICATION \
                 CLIENT, REPLICATION SLAVE and ALL on `d`.*"
                    .into(),
            ),
            (
                "table-exists",
                table_exists(
                    &with(&|f| {
                        f.table = None;
                        f.table_type = None;
                    }),
                    &config(),
                ),
                "Cannot find table `d`.`t`!".into(),
            ),
            (
                "base-table",
                base_table(&with(&|f| f.table_type = Some("VIEW".into())), &config()),
                "`d`.`t` is a VIEW, not a real table. Bailing out".into(),
            ),
            (
                "foreign-keys (parent)",
                foreign_keys(
                    &with(&|f| f.parent_foreign_keys = vec!["d.items.fk_order".into()]),
                    &config(),
                ),
                "Found 1 parent-side foreign keys on `d`.`t`. Parent-side foreign keys are not \
                 supported. Bailing out"
                    .into(),
            ),
            (
                "foreign-keys (child)",
                foreign_keys(
                    &with(&|f| f.child_foreign_keys = vec!["fk_a".into(), "fk_b".into()]),
                    &config(),
                ),
                "Found 2 child-side foreign keys on `d`.`t`. Child-side foreign keys are not \
                 supported. Bailing out"
                    .into(),
            ),
            (
                "triggers",
                triggers(&with(&|f| f.triggers = vec!["t_bi".into()]), &config()),
                "Found triggers on `d`.`t`. Tables with triggers are supported only when using \"include-triggers\" flag. Bailing out"
                    .into(),
            ),
            (
                "alter-renames-table",
                alter_renames_table(
                    &healthy(),
                    &config_with(&["--table=t", "--alter=ADD c INT, RENAME TO u"]),
                ),
                "ALTER statement seems to RENAME the table.".into(),
            ),
            (
                "column-renames",
                column_renames(
                    &healthy(),
                    &config_with(&["--table=t", "--alter=CHANGE b z INT, RENAME COLUMN a TO y"]),
                ),
                "gh-ost believes the ALTER statement renames columns, as follows: map[a:y b:z];"
                    .into(),
            ),
            (
                "helper-table-names",
                helper_table_names(&healthy(), &long_stamped),
                format!(
                    "--timestamp-old-table defined, but resulting table name ({}) is too long \
                     (only 64 characters allowed)",
                    long_stamped.old_table()
                ),
            ),
            (
                "leftover-helper-tables (ghost)",
                leftover("_t_gho"),
                "Table `_t_gho` already exists. Panicking. Use --initially-drop-ghost-table to \
                 force dropping it, though I really prefer that you drop it or rename it away"
                    .into(),
            ),
            (
                "leftover-helper-tables (old)",
                leftover("_t_del"),
                "Table `_t_del` already exists. Panicking. Use --initially-drop-old-table to \
                 force dropping it, though I really prefer that you drop it or rename it away"
                    .into(),
            ),
        ];
        for (check, outcome, gh_ost) in cases {
            let message = outcome.expect_err(check);
            assert!(
                message.starts_with(&gh_ost) && message.len() > gh_ost.len(),
                "{check}: expected gh-ost's `{gh_ost}`, then wraith's explanation; got: {message}"
            );
        }
    }
}
