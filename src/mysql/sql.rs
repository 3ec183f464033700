//! All SQL text wraith sends is built here, and every identifier and string goes through
//! [`quote_ident`] / [`quote_str`]. Nothing else in the crate formats SQL.
//!
//! In: plain names and values. Out: statement text.

/// Quotes an identifier with backticks, doubling any backtick inside.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Quotes a string literal. Quotes are doubled; a string holding a backslash or a control byte is
/// written as a hex literal instead, which reads the same under every sql_mode (with or without
/// NO_BACKSLASH_ESCAPES).
pub fn quote_str(value: &str) -> String {
    if value.bytes().any(|b| b == b'\\' || b < 0x20) {
        // A hex literal is read the same under every sql_mode.
        let hex: String = value.bytes().map(|b| format!("{b:02X}")).collect();
        return format!("_utf8mb4 X'{hex}'");
    }
    format!("'{}'", value.replace('\'', "''"))
}

pub fn create_table_like(schema: &str, new: &str, like: &str) -> String {
    format!(
        "CREATE /* wraith */ TABLE {} LIKE {}",
        qualified(schema, new),
        qualified(schema, like)
    )
}

pub fn alter_table(schema: &str, table: &str, body: &str) -> String {
    format!(
        "ALTER /* wraith */ TABLE {} {}",
        qualified(schema, table),
        body
    )
}

/// Drops the named indexes of `table` in one statement.
pub fn drop_indexes(schema: &str, table: &str, names: &[&str]) -> String {
    let drops: Vec<String> = names
        .iter()
        .map(|n| format!("DROP INDEX {}", quote_ident(n)))
        .collect();
    alter_table(schema, table, &drops.join(", "))
}

/// Adds indexes to `table` in one statement (one pass over its rows), each given by its clause
/// as `SHOW CREATE TABLE` prints it (``KEY `k` (`a`)``).
pub fn add_indexes(schema: &str, table: &str, clauses: &[&str]) -> String {
    let adds: Vec<String> = clauses.iter().map(|c| format!("ADD {c}")).collect();
    alter_table(schema, table, &adds.join(", "))
}

pub fn drop_table_if_exists(schema: &str, table: &str) -> String {
    format!(
        "DROP /* wraith */ TABLE IF EXISTS {}",
        qualified(schema, table)
    )
}

/// gh-ost's changelog table: `id`, `last_update`, `hint` (unique), `value`.
pub fn create_changelog(schema: &str, table: &str) -> String {
    changelog_ddl(schema, table, "")
}

/// [`create_changelog`], unless the table is there already (a resumed run's).
pub fn create_changelog_if_missing(schema: &str, table: &str) -> String {
    changelog_ddl(schema, table, "IF NOT EXISTS ")
}

fn changelog_ddl(schema: &str, table: &str, if_not_exists: &str) -> String {
    format!(
        "CREATE /* wraith */ TABLE {if_not_exists}{} (\n  id BIGINT UNSIGNED AUTO_INCREMENT,\n  last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,\n  hint VARCHAR(64) CHARSET ascii NOT NULL,\n  value VARCHAR(4096) CHARSET ascii NOT NULL,\n  PRIMARY KEY (id),\n  UNIQUE KEY hint_uidx (hint)\n) AUTO_INCREMENT=256",
        qualified(schema, table)
    )
}

/// The checkpoint table `_<t>_ghk` (`crate::checkpoint`): one row per kind of checkpoint, by id.
pub fn create_checkpoint(schema: &str, table: &str) -> String {
    format!(
        "CREATE /* wraith */ TABLE {} (\n  id TINYINT UNSIGNED NOT NULL,\n  written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),\n  alter_statement MEDIUMTEXT CHARSET utf8mb4 NOT NULL,\n  server_id BIGINT UNSIGNED NOT NULL,\n  binlog_file VARCHAR(512) CHARSET utf8mb4 NOT NULL,\n  binlog_pos BIGINT UNSIGNED NOT NULL,\n  copied_through MEDIUMBLOB NULL,\n  copy_done TINYINT NOT NULL,\n  rows_copied BIGINT UNSIGNED NOT NULL,\n  events_applied BIGINT UNSIGNED NOT NULL,\n  ghost_definition MEDIUMTEXT CHARSET utf8mb4 NULL,\n  PRIMARY KEY (id)\n)",
        qualified(schema, table)
    )
}

/// Writes a checkpoint row; placeholders in [`create_checkpoint`]'s column order from `id`,
/// `written_at` left out.
pub fn checkpoint_write(schema: &str, table: &str) -> String {
    checkpoint_write_values(schema, table, &["?"; 10])
}

/// [`checkpoint_write`] with the values given (SQL literals or placeholders), for a write sent in
/// a batch of statements.
pub fn checkpoint_write_values(schema: &str, table: &str, values: &[&str; 10]) -> String {
    format!(
        "REPLACE /* wraith */ INTO {} (id, alter_statement, server_id, binlog_file, binlog_pos, copied_through, copy_done, rows_copied, events_applied, ghost_definition) VALUES ({})",
        qualified(schema, table),
        values.join(", ")
    )
}

/// Reads a checkpoint row by id (`?`), in [`checkpoint_write`]'s order after `id`.
pub fn checkpoint_read(schema: &str, table: &str) -> String {
    format!(
        "SELECT alter_statement, server_id, binlog_file, binlog_pos, copied_through, copy_done, rows_copied, events_applied, ghost_definition FROM {} WHERE id = ?",
        qualified(schema, table)
    )
}

/// Reads a checkpoint row's binlog position and `events_applied` by id (`?`) with a shared lock
/// (`LOCK IN SHARE MODE`, which MySQL 8.0 and 8.4 still take, and MariaDB).
pub fn checkpoint_position_locked(schema: &str, table: &str) -> String {
    format!(
        "SELECT binlog_file, binlog_pos, events_applied FROM {} WHERE id = ? LOCK IN SHARE MODE",
        qualified(schema, table)
    )
}

/// Writes (or overwrites) a changelog row by hint; `id` 1 is the heartbeat, as in gh-ost.
pub fn changelog_upsert(
    schema: &str,
    table: &str,
    id: Option<u64>,
    hint: &str,
    value: &str,
) -> String {
    let id = id.map_or("NULL".to_string(), |i| i.to_string());
    format!(
        "INSERT /* wraith */ INTO {} (id, hint, value) VALUES ({id}, {}, {}) \
         ON DUPLICATE KEY UPDATE last_update = NOW(), value = VALUES(value)",
        qualified(schema, table),
        quote_str(hint),
        quote_str(value)
    )
}

/// A statement that reads nothing but takes `table`'s metadata lock, so it waits for DDL on it.
pub fn probe_table(schema: &str, table: &str) -> String {
    format!("SELECT 1 FROM {} LIMIT 0", qualified(schema, table))
}

/// The last state a run wrote to the changelog table.
pub fn changelog_state(schema: &str, table: &str) -> String {
    format!(
        "SELECT value FROM {} WHERE hint = 'state' ORDER BY last_update DESC LIMIT 1",
        qualified(schema, table)
    )
}

/// How many changelog rows carry `hint` (0 or 1).
pub fn changelog_count_hint(schema: &str, table: &str, hint: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM {} WHERE hint = {}",
        qualified(schema, table),
        quote_str(hint)
    )
}

/// The heartbeat's value (seconds since the epoch) as this server holds it.
pub fn heartbeat_value(schema: &str, table: &str) -> String {
    format!(
        "SELECT value FROM {} WHERE hint = 'heartbeat'",
        qualified(schema, table)
    )
}

/// One global status variable (`Threads_running`) as `(name, value)`.
pub fn global_status(variable: &str) -> String {
    format!("SHOW GLOBAL STATUS LIKE {}", quote_str(variable))
}

pub fn explain_select_all(schema: &str, table: &str) -> String {
    format!("EXPLAIN SELECT * FROM {}", qualified(schema, table))
}

pub fn count_rows(schema: &str, table: &str) -> String {
    format!("SELECT COUNT(*) FROM {}", qualified(schema, table))
}

/// A column list: `a`, `b`, `c`.
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `DELETE FROM t WHERE <key matches any of keys>`; `keys` hold SQL literals per key column.
/// With `null_safe`, keys may hold NULLs and are compared with `<=>`.
pub fn delete_keys(
    schema: &str,
    table: &str,
    key_columns: &[String],
    keys: &[Vec<String>],
    null_safe: bool,
) -> String {
    format!(
        "DELETE /* wraith */ FROM {} WHERE {}",
        qualified(schema, table),
        keys_condition(key_columns, keys, null_safe)
    )
}

/// A condition matching rows whose key is one of `keys`.
pub fn keys_condition(key_columns: &[String], keys: &[Vec<String>], null_safe: bool) -> String {
    keys_matching(key_columns, keys.len(), null_safe, |k, c| &keys[k][c])
}

/// [`keys_condition`] for `n` keys given as parameters, one `?` per key column, key by key.
pub fn keys_placeholders(key_columns: &[String], n: usize, null_safe: bool) -> String {
    keys_matching(key_columns, n, null_safe, |_, _| "?")
}

/// A condition matching rows whose key is one of `n` keys, `value(key, column)` giving each
/// value's SQL.
fn keys_matching<'a>(
    key_columns: &[String],
    n: usize,
    null_safe: bool,
    value: impl Fn(usize, usize) -> &'a str,
) -> String {
    if key_columns.len() == 1 && !null_safe {
        let list: Vec<&str> = (0..n).map(|k| value(k, 0)).collect();
        return format!("{} IN ({})", quote_ident(&key_columns[0]), list.join(", "));
    }
    let op = if null_safe { " <=> " } else { " = " };
    (0..n)
        .map(|k| {
            let parts: Vec<String> = key_columns
                .iter()
                .enumerate()
                .map(|(c, name)| format!("{}{op}{}", quote_ident(name), value(k, c)))
                .collect();
            format!("({})", parts.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `INSERT INTO t (cols) VALUES (...), (...)`; `rows` hold SQL literals.
/// With `ignore`, rows the table cannot hold are skipped with a warning (`INSERT IGNORE`).
pub fn insert_rows(
    schema: &str,
    table: &str,
    columns: &[String],
    rows: &[Vec<String>],
    ignore: bool,
) -> String {
    let values: Vec<String> = rows.iter().map(|r| format!("({})", r.join(", "))).collect();
    insert_head(schema, table, columns, ignore) + &values.join(", ")
}

/// [`insert_rows`] up to its first row: `INSERT INTO t (cols) VALUES `, for a caller that
/// writes the rows' tuples (`(...), (...)`) straight after it.
pub fn insert_head(schema: &str, table: &str, columns: &[String], ignore: bool) -> String {
    format!(
        "INSERT /* wraith */ {}INTO {} ({}) VALUES ",
        if ignore { "IGNORE " } else { "" },
        qualified(schema, table),
        column_list(columns),
    )
}

/// What follows an [`insert_head`] statement (of one row or many) so that a row already there with
/// the same key gets `columns` set and keeps its other columns: ` ON DUPLICATE KEY UPDATE c = VALUES(c), ...`.
pub fn upsert_tail(columns: &[String]) -> String {
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("{0} = VALUES({0})", quote_ident(c)))
        .collect();
    format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
}

/// `UPDATE t SET c = v, ... WHERE <key = the key's values>`; values are SQL literals.
pub fn update_row(
    schema: &str,
    table: &str,
    columns: &[String],
    values: &[String],
    key_columns: &[String],
    key: &[String],
) -> String {
    let set: Vec<String> = columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{} = {v}", quote_ident(c)))
        .collect();
    format!(
        "UPDATE /* wraith */ {} SET {} WHERE {}",
        qualified(schema, table),
        set.join(", "),
        keys_condition(key_columns, &[key.to_vec()], false)
    )
}

/// The session settings of every connection that writes the ghost table: strict (a value that
/// does not fit fails instead of being truncated), zero dates allowed, an explicit 0 in an
/// AUTO_INCREMENT column kept.
/// sql_mode flags that change how the server reads quotes and backslashes: ANSI_QUOTES (`"x"` is
/// a name), NO_BACKSLASH_ESCAPES, and the combination modes that imply ANSI_QUOTES.
const QUOTING_MODES: &[&str] = &[
    "ANSI_QUOTES",
    "NO_BACKSLASH_ESCAPES",
    "ANSI",
    "DB2",
    "MAXDB",
    "MSSQL",
    "ORACLE",
    "POSTGRESQL",
];

/// The session settings of the connection that runs the user's ALTER on the ghost table: the
/// session's `current` sql_mode without `QUOTING_MODES`, so that the server reads the ALTER's
/// quotes as `inspect::alter` reads them (the server's default dialect). Every other mode (strict
/// modes, zero dates) stays as the server has it.
pub fn ddl_session(current: &str) -> String {
    let kept: Vec<&str> = current
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && !QUOTING_MODES.iter().any(|q| q.eq_ignore_ascii_case(m)))
        .collect();
    format!("SET SESSION sql_mode = {}", quote_str(&kept.join(",")))
}

pub fn writer_session(strict: bool) -> String {
    let strict = if strict { "STRICT_ALL_TABLES," } else { "" };
    format!("SET SESSION sql_mode = '{strict}NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', SESSION time_zone = '+00:00'")
}

/// The session settings of a connection that takes locks at cut-over: metadata lock waits end
/// after `lock_timeout`, and the server ends the session within seconds of it going quiet, so a
/// lock held by a wraith that died or lost its network is released in seconds, not hours.
pub fn lock_session(lock_timeout: std::time::Duration) -> String {
    let secs = lock_timeout.as_secs().max(1);
    let idle = secs + 10;
    format!("SET SESSION lock_wait_timeout = {secs}, SESSION wait_timeout = {idle}, SESSION interactive_timeout = {idle}")
}

/// One side of a key range, as SQL with `?` placeholders: `(k1, k2) > (?, ?)` written out so that
/// every server uses the index (`k1 > ? OR (k1 = ? AND k2 > ?)`). Returns the text and, for each
/// `?`, the index of the key value it takes.
pub fn key_bound(key_columns: &[String], greater: bool, inclusive: bool) -> (String, Vec<usize>) {
    let (strict, last) = match (greater, inclusive) {
        (true, false) => (">", ">"),
        (true, true) => (">", ">="),
        (false, false) => ("<", "<"),
        (false, true) => ("<", "<="),
    };
    let mut terms = Vec::new();
    let mut params = Vec::new();
    for i in 0..key_columns.len() {
        let mut parts = Vec::new();
        for (j, col) in key_columns.iter().enumerate().take(i) {
            parts.push(format!("{} = ?", quote_ident(col)));
            params.push(j);
        }
        let op = if i + 1 == key_columns.len() {
            last
        } else {
            strict
        };
        parts.push(format!("{} {op} ?", quote_ident(&key_columns[i])));
        params.push(i);
        terms.push(format!("({})", parts.join(" AND ")));
    }
    (format!("({})", terms.join(" OR ")), params)
}

/// `ORDER BY k1 [DESC], k2 [DESC]`
fn key_order(key_columns: &[String], desc: bool) -> String {
    let dir = if desc { " DESC" } else { "" };
    key_columns
        .iter()
        .map(|c| format!("{}{dir}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` AND (`k1` IS NOT NULL AND ...)` over `nullable` key columns, or nothing: a key range never
/// holds a key with a NULL in it (NULL compares with nothing), and neither may its bounds.
fn and_not_null(nullable: &[String]) -> String {
    if nullable.is_empty() {
        return String::new();
    }
    let terms: Vec<String> = nullable
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
        .collect();
    format!(" AND ({})", terms.join(" AND "))
}

/// The smallest (or largest) key of the table without a NULL in it; `nullable` are the key
/// columns that may hold NULL.
pub fn key_extreme(
    schema: &str,
    table: &str,
    index: &str,
    key_columns: &[String],
    nullable: &[String],
    largest: bool,
) -> String {
    let filter = and_not_null(nullable);
    let filter = filter.strip_prefix(" AND ").map(|f| format!(" WHERE {f}"));
    format!(
        "SELECT /* wraith */ {} FROM {} FORCE INDEX ({}){} ORDER BY {} LIMIT 1",
        column_list(key_columns),
        qualified(schema, table),
        quote_ident(index),
        filter.unwrap_or_default(),
        key_order(key_columns, largest)
    )
}

/// The key `rows` rows after the lower bound (exclusive, or inclusive for the first chunk) and not
/// beyond the upper bound, among keys without a NULL in their `nullable` columns. Parameters: the
/// lower bound's, then the upper bound's placeholders.
pub fn chunk_end(
    schema: &str,
    table: &str,
    index: &str,
    key_columns: &[String],
    nullable: &[String],
    lo_inclusive: bool,
    rows: u64,
) -> (String, Vec<usize>, Vec<usize>) {
    let (lo, lo_params) = key_bound(key_columns, true, lo_inclusive);
    let (hi, hi_params) = key_bound(key_columns, false, true);
    (
        format!(
            "SELECT /* wraith */ {} FROM {} FORCE INDEX ({}) WHERE {lo} AND {hi}{} ORDER BY {} LIMIT 1 OFFSET {}",
            column_list(key_columns),
            qualified(schema, table),
            quote_ident(index),
            and_not_null(nullable),
            key_order(key_columns, false),
            rows.saturating_sub(1)
        ),
        lo_params,
        hi_params,
    )
}

/// Copies one key range: `INSERT IGNORE INTO ghost (...) SELECT ... FROM original WHERE lo < key
/// <= hi`, leaving out keys with a NULL in their `nullable` columns; with `shared_locks`, a
/// locking read (`LOCK IN SHARE MODE`), else a plain read of the statement's snapshot (at read
/// committed). `condition`, if any, is one more condition of the `WHERE` (a failpoint's).
/// Parameters as in [`chunk_end`].
#[allow(clippy::too_many_arguments)]
pub fn copy_chunk(
    schema: &str,
    original: &str,
    ghost: &str,
    original_columns: &[String],
    ghost_columns: &[String],
    index: &str,
    key_columns: &[String],
    nullable: &[String],
    lo_inclusive: bool,
    shared_locks: bool,
    condition: Option<&str>,
) -> (String, Vec<usize>, Vec<usize>) {
    let (lo, lo_params) = key_bound(key_columns, true, lo_inclusive);
    let (hi, hi_params) = key_bound(key_columns, false, true);
    (
        format!(
            "INSERT /* wraith */ IGNORE INTO {} ({}) SELECT {} FROM {} FORCE INDEX ({}) WHERE {lo} AND {hi}{}{}{}",
            qualified(schema, ghost),
            column_list(ghost_columns),
            column_list(original_columns),
            qualified(schema, original),
            quote_ident(index),
            and_not_null(nullable),
            condition.map(|c| format!(" AND ({c})")).unwrap_or_default(),
            if shared_locks { " LOCK IN SHARE MODE" } else { "" },
        ),
        lo_params,
        hi_params,
    )
}

/// Copies the rows whose key has a NULL in one of its `nullable` columns (rows no key range
/// holds): `INSERT IGNORE INTO ghost (...) SELECT ... FROM original WHERE k1 IS NULL OR ...
/// LOCK IN SHARE MODE`.
pub fn copy_null_keys(
    schema: &str,
    original: &str,
    ghost: &str,
    original_columns: &[String],
    ghost_columns: &[String],
    index: &str,
    nullable: &[String],
) -> String {
    let terms: Vec<String> = nullable
        .iter()
        .map(|c| format!("{} IS NULL", quote_ident(c)))
        .collect();
    format!(
        "INSERT /* wraith */ IGNORE INTO {} ({}) SELECT {} FROM {} FORCE INDEX ({}) WHERE {} LOCK IN SHARE MODE",
        qualified(schema, ghost),
        column_list(ghost_columns),
        column_list(original_columns),
        qualified(schema, original),
        quote_ident(index),
        terms.join(" OR ")
    )
}

/// Deletes one row holding `values` (SQL literals, NULL-safe) in `columns`: a row no key
/// identifies.
pub fn delete_one_row(schema: &str, table: &str, columns: &[String], values: &[String]) -> String {
    let terms: Vec<String> = columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{} <=> {v}", quote_ident(c)))
        .collect();
    format!(
        "DELETE /* wraith */ FROM {} WHERE {} LIMIT 1",
        qualified(schema, table),
        terms.join(" AND ")
    )
}

/// A key range `lo < key <= hi` with `?` placeholders, either side left out (`lo`/`hi` false).
/// Returns the condition and, for each `?` of each side, the index of the key value it takes:
/// the lower bound's placeholders come first.
pub fn key_range(key_columns: &[String], lo: bool, hi: bool) -> (String, Vec<usize>, Vec<usize>) {
    let (lo_text, lo_params) = if lo {
        key_bound(key_columns, true, false)
    } else {
        ("TRUE".to_string(), Vec::new())
    };
    let (hi_text, hi_params) = if hi {
        key_bound(key_columns, false, true)
    } else {
        ("TRUE".to_string(), Vec::new())
    };
    (format!("{lo_text} AND {hi_text}"), lo_params, hi_params)
}

/// The key `rows` rows past the lower bound (exclusive), or from the first key without one
/// (`lo` false). Parameters: the lower bound's placeholders.
pub fn key_after(
    schema: &str,
    table: &str,
    index: &str,
    key_columns: &[String],
    lo: bool,
    rows: u64,
) -> (String, Vec<usize>) {
    let (range, lo_params, _) = key_range(key_columns, lo, false);
    (
        format!(
            "SELECT /* wraith */ {} FROM {} FORCE INDEX ({}) WHERE {range} ORDER BY {} LIMIT 1 OFFSET {}",
            column_list(key_columns),
            qualified(schema, table),
            quote_ident(index),
            key_order(key_columns, false),
            rows.saturating_sub(1)
        ),
        lo_params,
    )
}

/// What the checksum hashes of a row: each column's bytes (`exprs`: the expression and whether
/// the value may be large), written so that no two different rows give the same text: each value
/// is prefixed with its length, a NULL is `N`, and a large value (TEXT, BLOB, JSON) is replaced
/// by its length and CRC32, so the text stays under `max_allowed_packet`.
pub fn checksum_row(exprs: &[(String, bool)]) -> String {
    if exprs.is_empty() {
        return "''".to_string();
    }
    let parts: Vec<String> = exprs
        .iter()
        .map(|(e, large)| {
            let value = if *large {
                format!("CRC32({e})")
            } else {
                e.clone()
            };
            format!("IFNULL(CONCAT(LENGTH({e}), ':', {value}), 'N')")
        })
        .collect();
    format!("CONCAT({})", parts.join(", '|', "))
}

/// `COUNT(*)`, `BIT_XOR` and `SUM` of `CRC32(row)` over the rows of `table` matching
/// `condition` (placeholders allowed), read through `index` when given.
pub fn checksum_rows(
    schema: &str,
    table: &str,
    index: Option<&str>,
    row: &str,
    condition: &str,
) -> String {
    format!(
        "SELECT /* wraith */ COUNT(*), COALESCE(BIT_XOR(h), 0), COALESCE(SUM(h), 0) FROM \
         (SELECT CRC32({row}) AS h FROM {}{} WHERE {condition}) AS rows_",
        qualified(schema, table),
        index
            .map(|i| format!(" FORCE INDEX ({})", quote_ident(i)))
            .unwrap_or_default(),
    )
}

/// The keys (as `a_key`) of up to `limit` rows of `a` (aliased `x`) matching `condition` (its
/// columns unqualified, placeholders allowed) that have no row in `b` (aliased `y`) with the
/// same key (`b_key`, matched with `<=>`) and, when given, satisfying `same`. With
/// `present_only`, only rows whose key `b` has (rows that differ, not rows that are missing).
#[allow(clippy::too_many_arguments)]
pub fn rows_not_in(
    schema: &str,
    a: &str,
    a_key: &[String],
    b: &str,
    b_key: &[String],
    condition: &str,
    same: Option<&str>,
    present_only: bool,
    limit: u64,
) -> String {
    let on: Vec<String> = a_key
        .iter()
        .zip(b_key)
        .map(|(ka, kb)| format!("y.{} <=> x.{}", quote_ident(kb), quote_ident(ka)))
        .collect();
    let same = same.map(|s| format!(" AND ({s})")).unwrap_or_default();
    let present = if present_only {
        format!(
            " AND EXISTS (SELECT 1 FROM {} y WHERE {})",
            qualified(schema, b),
            on.join(" AND ")
        )
    } else {
        String::new()
    };
    let keys: Vec<String> = a_key
        .iter()
        .map(|k| format!("x.{}", quote_ident(k)))
        .collect();
    format!(
        "SELECT /* wraith */ {} FROM {} x WHERE ({condition}){present} AND NOT EXISTS \
         (SELECT 1 FROM {} y WHERE {}{same}) ORDER BY {} LIMIT {limit}",
        keys.join(", "),
        qualified(schema, a),
        qualified(schema, b),
        on.join(" AND "),
        keys.join(", "),
    )
}

/// The session of a checksum connection: its snapshot must be repeatable.
pub const SNAPSHOT_SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";

/// Opens the snapshot a checksum connection reads in.
pub const START_SNAPSHOT: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// The atomic swap's gate (`crate::cutover`): an empty table whose existence is all that matters.
/// `engine`: `MEMORY` (cheaper to create), or `InnoDB` where that is refused.
pub fn create_gate(schema: &str, table: &str, engine: &str, comment: &str) -> String {
    format!(
        "CREATE /* wraith */ TABLE {} (id INT NOT NULL PRIMARY KEY) ENGINE={engine} COMMENT={}",
        qualified(schema, table),
        quote_str(comment)
    )
}

/// `KILL QUERY <id>`: ends the statement connection `id` runs, keeping its session.
pub fn kill_query(id: impl Into<u64>) -> String {
    let id = id.into();
    format!("KILL QUERY {id}")
}

/// `KILL CONNECTION <id>`: ends connection `id`, releasing its locks and rolling back its
/// transaction.
pub fn kill_connection(id: impl Into<u64>) -> String {
    let id = id.into();
    format!("KILL CONNECTION {id}")
}

/// `LOCK TABLES a WRITE, b WRITE`, with `NOWAIT` when `nowait` (MariaDB: fails at once with a
/// lock wait timeout, 1205, instead of queueing, while another session holds a table's
/// metadata lock).
pub fn lock_tables_write(schema: &str, tables: &[&str], nowait: bool) -> String {
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{} WRITE", qualified(schema, t)))
        .collect();
    let nowait = if nowait { " NOWAIT" } else { "" };
    format!("LOCK /* wraith */ TABLES {}{nowait}", list.join(", "))
}

/// The atomic swap: `RENAME TABLE t TO _t_del, _t_gho TO t`.
pub fn rename_swap(schema: &str, table: &str, old: &str, ghost: &str) -> String {
    format!(
        "RENAME /* wraith */ TABLE {} TO {}, {} TO {}",
        qualified(schema, table),
        qualified(schema, old),
        qualified(schema, ghost),
        qualified(schema, table)
    )
}

/// The atomic swap through a gate: `RENAME TABLE g TO g_done, t TO _t_del, _t_gho TO t`. The
/// gate `g` comes first: while it does not exist, the statement fails before renaming anything.
pub fn rename_swap_gated(
    schema: &str,
    (gate, gate_done): (&str, &str),
    table: &str,
    old: &str,
    ghost: &str,
) -> String {
    format!(
        "RENAME /* wraith */ TABLE {} TO {}, {} TO {}, {} TO {}",
        qualified(schema, gate),
        qualified(schema, gate_done),
        qualified(schema, table),
        qualified(schema, old),
        qualified(schema, ghost),
        qualified(schema, table)
    )
}

/// `ALTER TABLE t RENAME TO u` (allowed under LOCK TABLES, unlike RENAME TABLE on MariaDB).
pub fn alter_rename(schema: &str, table: &str, to: &str) -> String {
    format!(
        "ALTER /* wraith */ TABLE {} RENAME TO {}",
        qualified(schema, table),
        qualified(schema, to)
    )
}

/// `RENAME TABLE a TO b`
pub fn rename_table(schema: &str, from: &str, to: &str) -> String {
    format!(
        "RENAME /* wraith */ TABLE {} TO {}",
        qualified(schema, from),
        qualified(schema, to)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_indexes_are_dropped_and_added_back_in_one_statement_each() {
        assert_eq!(
            drop_indexes("d", "_t_gho", &["k", "odd`name"]),
            "ALTER /* wraith */ TABLE `d`.`_t_gho` DROP INDEX `k`, DROP INDEX `odd``name`"
        );
        assert_eq!(
            add_indexes("d", "_t_gho", &["KEY `k` (`k`)", "KEY `b` (`b`(4))"]),
            "ALTER /* wraith */ TABLE `d`.`_t_gho` ADD KEY `k` (`k`), ADD KEY `b` (`b`(4))"
        );
    }

    #[test]
    fn a_resumed_run_creates_the_changelog_only_if_it_is_missing() {
        let fresh = create_changelog("d", "_t_ghc");
        assert!(fresh.starts_with("CREATE /* wraith */ TABLE `d`.`_t_ghc` (\n"));
        assert_eq!(
            create_changelog_if_missing("d", "_t_ghc"),
            fresh.replacen("TABLE ", "TABLE IF NOT EXISTS ", 1)
        );
    }

    #[test]
    fn identifiers_are_backquoted_with_backticks_doubled() {
        assert_eq!(quote_ident("orders"), "`orders`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(qualified("a b", "c"), "`a b`.`c`");
    }

    #[test]
    fn key_conditions_use_in_for_one_column_and_or_for_several() {
        let one = vec!["id".to_string()];
        assert_eq!(
            keys_condition(&one, &[vec!["1".into()], vec!["2".into()]], false),
            "`id` IN (1, 2)"
        );
        let two = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            keys_condition(
                &two,
                &[
                    vec!["1".into(), "'x'".into()],
                    vec!["2".into(), "NULL".into()]
                ],
                true
            ),
            "(`a` <=> 1 AND `b` <=> 'x') OR (`a` <=> 2 AND `b` <=> NULL)"
        );
        // The same, with the values as parameters, key by key.
        assert_eq!(keys_placeholders(&one, 2, false), "`id` IN (?, ?)");
        assert_eq!(
            keys_placeholders(&two, 2, false),
            "(`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?)"
        );
    }

    #[test]
    fn a_composite_key_bound_is_written_out_for_the_index() {
        let cols = vec!["a".to_string(), "b".to_string()];
        let (text, params) = key_bound(&cols, true, false);
        assert_eq!(text, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(params, vec![0, 0, 1]);
        let (text, _) = key_bound(&cols, false, true);
        assert_eq!(text, "((`a` < ?) OR (`a` = ? AND `b` <= ?))");
        let (text, params) = key_bound(&cols[..1], true, true);
        assert_eq!((text.as_str(), params), ("((`a` >= ?))", vec![0]));
    }

    #[test]
    fn the_ddl_session_reads_quotes_in_the_default_dialect_and_keeps_every_other_mode() {
        assert_eq!(
            ddl_session("REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI,STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"),
            "SET SESSION sql_mode = 'REAL_AS_FLOAT,PIPES_AS_CONCAT,IGNORE_SPACE,STRICT_TRANS_TABLES'"
        );
        assert_eq!(
            ddl_session("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE,NO_KEY_OPTIONS"),
            "SET SESSION sql_mode = 'PIPES_AS_CONCAT,IGNORE_SPACE,NO_KEY_OPTIONS'"
        );
        assert_eq!(ddl_session(""), "SET SESSION sql_mode = ''");
        assert_eq!(
            ddl_session("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"),
            "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'"
        );
    }

    #[test]
    fn key_ranges_leave_out_keys_with_a_null_and_null_keys_are_copied_apart() {
        let key = vec!["a".to_string(), "b".to_string()];
        let nullable = vec!["b".to_string()];
        assert_eq!(
            key_extreme("d", "t", "ab", &key, &nullable, false),
            "SELECT /* wraith */ `a`, `b` FROM `d`.`t` FORCE INDEX (`ab`) WHERE (`b` IS NOT NULL) ORDER BY `a`, `b` LIMIT 1"
        );
        assert_eq!(
            key_extreme("d", "t", "ab", &key, &[], true),
            "SELECT /* wraith */ `a`, `b` FROM `d`.`t` FORCE INDEX (`ab`) ORDER BY `a` DESC, `b` DESC LIMIT 1"
        );
        let (copy, ..) = copy_chunk(
            "d", "t", "g", &key, &key, "ab", &key, &nullable, true, true, None,
        );
        assert!(
            copy.ends_with("<= ?)) AND (`b` IS NOT NULL) LOCK IN SHARE MODE"),
            "{copy}"
        );
        assert_eq!(
            copy_null_keys("d", "t", "g", &key, &key, "ab", &key),
            "INSERT /* wraith */ IGNORE INTO `d`.`g` (`a`, `b`) SELECT `a`, `b` FROM `d`.`t` FORCE INDEX (`ab`) WHERE `a` IS NULL OR `b` IS NULL LOCK IN SHARE MODE"
        );
        assert_eq!(
            delete_one_row("d", "g", &key, &["NULL".into(), "'x'".into()]),
            "DELETE /* wraith */ FROM `d`.`g` WHERE `a` <=> NULL AND `b` <=> 'x' LIMIT 1"
        );
    }

    #[test]
    fn a_key_range_may_be_open_on_either_side() {
        let cols = vec!["a".to_string(), "b".to_string()];
        let (text, lo, hi) = key_range(&cols, false, true);
        assert_eq!(text, "TRUE AND ((`a` < ?) OR (`a` = ? AND `b` <= ?))");
        assert_eq!((lo, hi), (vec![], vec![0, 0, 1]));
        let (text, lo, hi) = key_range(&cols[..1], true, false);
        assert_eq!(text, "((`a` > ?)) AND TRUE");
        assert_eq!((lo, hi), (vec![0], vec![]));
    }

    #[test]
    fn a_checksum_row_tells_nulls_and_shifted_values_apart() {
        let row = checksum_row(&[("`a`".into(), false), ("`b`".into(), true)]);
        assert_eq!(
            row,
            "CONCAT(IFNULL(CONCAT(LENGTH(`a`), ':', `a`), 'N'), '|', IFNULL(CONCAT(LENGTH(`b`), ':', CRC32(`b`)), 'N'))"
        );
        assert_eq!(checksum_row(&[]), "''");
    }

    #[test]
    fn rows_missing_from_the_other_table_are_found_by_key() {
        let q = rows_not_in(
            "d",
            "t",
            &["id".to_string()],
            "_t_gho",
            &["ident".to_string()],
            "`id` > ?",
            Some("x.`v` <=> y.`v`"),
            false,
            10,
        );
        assert_eq!(
            q,
            "SELECT /* wraith */ x.`id` FROM `d`.`t` x WHERE (`id` > ?) AND NOT EXISTS (SELECT 1 FROM `d`.`_t_gho` y WHERE y.`ident` <=> x.`id` AND (x.`v` <=> y.`v`)) ORDER BY x.`id` LIMIT 10"
        );
        let q = rows_not_in(
            "d",
            "t",
            &["id".to_string()],
            "g",
            &["id".to_string()],
            "TRUE",
            None,
            true,
            1,
        );
        assert_eq!(
            q,
            "SELECT /* wraith */ x.`id` FROM `d`.`t` x WHERE (TRUE) AND EXISTS (SELECT 1 FROM `d`.`g` y WHERE y.`id` <=> x.`id`) AND NOT EXISTS (SELECT 1 FROM `d`.`g` y WHERE y.`id` <=> x.`id`) ORDER BY x.`id` LIMIT 1"
        );
        // A condition of several keys (an OR) stays whole: `NOT EXISTS` applies to every key.
        let q = rows_not_in(
            "d",
            "t",
            &["id".to_string()],
            "g",
            &["id".to_string()],
            "`id` = 1 OR `id` = 2",
            None,
            false,
            5,
        );
        assert!(
            q.contains("WHERE (`id` = 1 OR `id` = 2) AND NOT EXISTS"),
            "{q}"
        );
    }

    #[test]
    fn strings_are_quoted_safely_under_any_sql_mode() {
        assert_eq!(quote_str("it's"), "'it''s'");
        assert_eq!(quote_str("a\\b"), "_utf8mb4 X'615C62'");
        assert_eq!(quote_str("line\n"), "_utf8mb4 X'6C696E650A'");
    }
}
