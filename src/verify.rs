//! Comparing a migrated table with a mirror altered by the server itself, exactly: the proof the
//! demo shows, the bench reports and the integration tests assert. The migration reads table
//! definitions through it too (`--defer-secondary-indexes` swaps the ghost table in only once it
//! is defined as the ALTER made it).
//!
//! In: a connection, a schema, the two tables and the key their rows are matched on.
//! Out: how many rows differ (missing on either side, or different in any column), and each
//! table's definition in a form two tables of the same definition share.
//! Invariant: values are compared by their exact bytes (a FLOAT through DOUBLE, whose text keeps
//! every bit), never through `HEX()` of a number, which rounds it to an integer.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::mysql::sql::{qualified, quote_ident};

/// An expression giving the exact bytes of `column` (of `data_type`, as information_schema
/// names it) of the table aliased `alias` (none: unqualified).
pub fn exact_bytes(alias: &str, column: &str, data_type: &str) -> String {
    let c = if alias.is_empty() {
        quote_ident(column)
    } else {
        format!("{alias}.{}", quote_ident(column))
    };
    match data_type {
        // A FLOAT's text has 6 digits; as a DOUBLE it has every bit.
        "float" => format!("CAST(CAST({c} AS DOUBLE) AS BINARY)"),
        _ => format!("CAST({c} AS BINARY)"),
    }
}

/// An expression giving the bytes of text column `column` of the table aliased `alias` once
/// converted to `charset`, as an `INSERT ... SELECT` into a column of that character set
/// converts it. `None` if `charset` is not a plain character set name.
pub fn converted_bytes(alias: &str, column: &str, charset: &str) -> Option<String> {
    if charset.is_empty()
        || !charset
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let c = if alias.is_empty() {
        quote_ident(column)
    } else {
        format!("{alias}.{}", quote_ident(column))
    };
    Some(format!("CAST(CONVERT({c} USING {charset}) AS BINARY)"))
}

/// `table`'s columns and their data types, in order (none if it does not exist).
pub async fn columns(
    c: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, mysql_async::Error> {
    c.exec(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    .await
}

/// `SHOW CREATE TABLE` text of `table` with its name replaced by `t` and its AUTO_INCREMENT
/// counter (which differs between tables holding the same rows) left out.
pub fn comparable_definition(create: &str, table: &str) -> String {
    let text = create.replacen(
        &format!("CREATE TABLE {}", quote_ident(table)),
        "CREATE TABLE `t`",
        1,
    );
    text.split(' ')
        .filter(|word| !word.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The comparable definition of `schema`.`table` ([`comparable_definition`]).
pub async fn definition(
    c: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<String, mysql_async::Error> {
    // Four columns for a view, two for a table; the text may quote a binary default as raw bytes.
    let row: Option<mysql_async::Row> = c
        .query_first(format!("SHOW CREATE TABLE {}", qualified(schema, table)))
        .await?;
    let create = row
        .and_then(|r| r.get_opt::<Vec<u8>, _>(1))
        .and_then(|v| v.ok())
        .unwrap_or_default();
    Ok(comparable_definition(
        &String::from_utf8_lossy(&create),
        table,
    ))
}

/// The condition "rows `x` and `y` hold the same bytes in every one of `columns`".
fn same_row(columns: &[(String, String)]) -> String {
    columns
        .iter()
        .map(|(c, ty)| {
            let c_ident = quote_ident(c);
            format!(
                "x.{c_ident} <=> y.{c_ident} AND {} <=> {}",
                exact_bytes("x", c, ty),
                exact_bytes("y", c, ty)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The two halves of a comparison of `a` (aliased `x`) with `b` (aliased `y`) on `key`, over
/// every column of `b`: the FROM ... WHERE of rows of `a` missing from `b` or different, and of
/// rows of `b` missing from `a`.
pub async fn difference_queries(
    c: &mut Conn,
    schema: &str,
    a: &str,
    b: &str,
    key: &[&str],
) -> Result<(String, String, Vec<(String, String)>), mysql_async::Error> {
    let cols = columns(c, schema, b).await?;
    let on = key
        .iter()
        .map(|k| format!("x.{k} <=> y.{k}", k = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let k0 = quote_ident(key[0]);
    let (qa, qb) = (qualified(schema, a), qualified(schema, b));
    let only_in_a = format!(
        "FROM {qa} x LEFT JOIN {qb} y ON {on} WHERE y.{k0} IS NULL OR NOT ({})",
        same_row(&cols)
    );
    let only_in_b = format!("FROM {qb} y LEFT JOIN {qa} x ON {on} WHERE x.{k0} IS NULL");
    Ok((only_in_a, only_in_b, cols))
}

/// How many rows differ between `a` and `b` matched on `key`, counting both directions: rows
/// of `a` missing from `b` or different in any column of `b`, plus rows of `b` missing from `a`.
pub async fn differing_rows(
    c: &mut Conn,
    schema: &str,
    a: &str,
    b: &str,
    key: &[&str],
) -> Result<u64, mysql_async::Error> {
    let (only_in_a, only_in_b, _) = difference_queries(c, schema, a, b, key).await?;
    let n: Option<u64> = c
        .query_first(format!(
            "SELECT (SELECT COUNT(*) {only_in_a}) + (SELECT COUNT(*) {only_in_b})"
        ))
        .await?;
    Ok(n.unwrap_or(0))
}

/// A migrated table held against its natively altered mirror: what [`against_mirror`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorCheck {
    /// Rows of the migrated table.
    pub rows: u64,
    /// Rows that differ, both directions counted ([`differing_rows`]).
    pub differing: u64,
    /// The two comparable definitions ([`definition`]): migrated, mirror.
    pub definitions: (String, String),
}

impl MirrorCheck {
    /// Same rows, byte for byte, and the same definition.
    pub fn equal(&self) -> bool {
        self.differing == 0 && self.definitions.0 == self.definitions.1
    }
}

/// The one comparison of a migrated `table` with its natively altered `mirror`, matched on
/// `key`: every row of each missing from the other or different in any byte of any column, and
/// the definitions. The demo, the bench and the tests all judge a migration through it.
pub async fn against_mirror(
    c: &mut Conn,
    schema: &str,
    table: &str,
    mirror: &str,
    key: &[&str],
) -> Result<MirrorCheck, mysql_async::Error> {
    let differing = differing_rows(c, schema, table, mirror, key).await?;
    let rows: Option<u64> = c
        .query_first(format!("SELECT COUNT(*) FROM {}", qualified(schema, table)))
        .await?;
    Ok(MirrorCheck {
        rows: rows.unwrap_or(0),
        differing,
        definitions: (
            definition(c, schema, table).await?,
            definition(c, schema, mirror).await?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_differing_only_in_name_and_counter_compare_equal() {
        let a = "CREATE TABLE `orders` (\n  `id` int NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=1001 DEFAULT CHARSET=utf8mb4";
        let b = "CREATE TABLE `orders_mirror` (\n  `id` int NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4";
        assert_eq!(
            comparable_definition(a, "orders"),
            comparable_definition(b, "orders_mirror")
        );
        let c = "CREATE TABLE `orders` (\n  `id` bigint NOT NULL AUTO_INCREMENT\n) ENGINE=InnoDB";
        assert_ne!(
            comparable_definition(a, "orders"),
            comparable_definition(c, "orders")
        );
    }

    #[test]
    fn floats_are_compared_through_double_and_everything_else_as_bytes() {
        assert_eq!(
            exact_bytes("x", "f", "float"),
            "CAST(CAST(x.`f` AS DOUBLE) AS BINARY)"
        );
        assert_eq!(exact_bytes("", "a`b", "decimal"), "CAST(`a``b` AS BINARY)");
        assert_eq!(
            converted_bytes("x", "v", "utf8mb4").as_deref(),
            Some("CAST(CONVERT(x.`v` USING utf8mb4) AS BINARY)")
        );
        assert_eq!(converted_bytes("x", "v", "utf8mb4) x; --"), None);
    }
}
