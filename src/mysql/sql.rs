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
        "CREATE TABLE {} LIKE {}",
        qualified(schema, new),
        qualified(schema, like)
    )
}

pub fn alter_table(schema: &str, table: &str, body: &str) -> String {
    format!("ALTER TABLE {} {}", qualified(schema, table), body)
}

pub fn drop_table_if_exists(schema: &str, table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", qualified(schema, table))
}

/// gh-ost's changelog table: `id`, `last_update`, `hint` (unique), `value`.
pub fn create_changelog(schema: &str, table: &str) -> String {
    format!(
        "CREATE TABLE {} (\n  id BIGINT UNSIGNED AUTO_INCREMENT,\n  last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,\n  hint VARCHAR(64) CHARSET ascii NOT NULL,\n  value VARCHAR(4096) CHARSET ascii NOT NULL,\n  PRIMARY KEY (id),\n  UNIQUE KEY hint_uidx (hint)\n) AUTO_INCREMENT=256",
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

pub fn show_create_table(schema: &str, table: &str) -> String {
    format!("SHOW CREATE TABLE {}", qualified(schema, table))
}

pub fn explain_select_all(schema: &str, table: &str) -> String {
    format!("EXPLAIN SELECT * FROM {}", qualified(schema, table))
}

pub fn count_rows(schema: &str, table: &str) -> String {
    format!("SELECT COUNT(*) FROM {}", qualified(schema, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_backquoted_with_backticks_doubled() {
        assert_eq!(quote_ident("orders"), "`orders`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(qualified("a b", "c"), "`a b`.`c`");
    }

    #[test]
    fn strings_are_quoted_safely_under_any_sql_mode() {
        assert_eq!(quote_str("it's"), "'it''s'");
        assert_eq!(quote_str("a\\b"), "_utf8mb4 X'615C62'");
        assert_eq!(quote_str("line\n"), "_utf8mb4 X'6C696E650A'");
    }
}
