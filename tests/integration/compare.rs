//! Comparing a migrated table with its natively altered mirror, exactly.
//!
//! In: a schema holding `t` (the table wraith migrated) and `mirror` (the same rows, altered by
//! the server itself). Out: assertions that fail on any difference: the table definition
//! (`SHOW CREATE TABLE`), rows missing on either side, and any column's bytes, on the primary and
//! on the replica.
//! Invariant: every value is compared by its exact bytes (`CAST(... AS BINARY)`; FLOAT through
//! DOUBLE, whose text is exact), never through `HEX()` of a number, which rounds to an integer.

#![allow(dead_code)]

use mysql_async::prelude::Queryable;

use crate::harness::{self, servers, sync_replica, tables, Endpoint};

/// An expression giving the exact bytes of column `col` (of type `data_type`) of `alias`.
pub fn exact(alias: &str, col: &str, data_type: &str) -> String {
    let c = if alias.is_empty() {
        format!("`{col}`")
    } else {
        format!("{alias}.`{col}`")
    };
    match data_type {
        // A FLOAT's text has 6 digits; as a DOUBLE it has every bit.
        "float" => format!("CAST(CAST({c} AS DOUBLE) AS BINARY)"),
        _ => format!("CAST({c} AS BINARY)"),
    }
}

/// `table`'s columns and their data types, in order.
pub async fn columns(endpoint: &Endpoint, schema: &str, table: &str) -> Vec<(String, String)> {
    let mut c = endpoint.conn().await;
    c.exec(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    .await
    .unwrap()
}

/// `SHOW CREATE TABLE` of `table`, named `<table>` and without its AUTO_INCREMENT counter, so
/// two tables of the same definition give the same text.
pub async fn definition(endpoint: &Endpoint, schema: &str, table: &str) -> String {
    let mut c = endpoint.conn().await;
    let (_, text): (String, String) = c
        .query_first(format!("SHOW CREATE TABLE `{schema}`.`{table}`"))
        .await
        .unwrap()
        .unwrap();
    let text = text.replacen(
        &format!("CREATE TABLE `{table}`"),
        "CREATE TABLE <table>",
        1,
    );
    text.split(' ')
        .filter(|word| !word.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rows of `a` and `b` that are not byte for byte the same, matched on `key` (with the key's own
/// collation): how many, counting both directions, and up to ten of each direction, described.
pub async fn differences(
    endpoint: &Endpoint,
    schema: &str,
    a: &str,
    b: &str,
    key: &[&str],
) -> (u64, Vec<String>) {
    let cols = columns(endpoint, schema, b).await;
    assert!(!cols.is_empty(), "{schema}.{b} does not exist");
    let on: Vec<String> = key.iter().map(|k| format!("x.`{k}` <=> y.`{k}`")).collect();
    let on = on.join(" AND ");
    let same: Vec<String> = cols
        .iter()
        .map(|(c, ty)| {
            format!(
                "x.`{c}` <=> y.`{c}` AND {} <=> {}",
                exact("x", c, ty),
                exact("y", c, ty)
            )
        })
        .collect();
    let same = same.join(" AND ");
    let show = |alias: &str| -> String {
        let shown: Vec<String> = cols
            .iter()
            .map(|(c, ty)| format!("IFNULL(HEX({}), 'NULL')", exact(alias, c, ty)))
            .collect();
        format!("CONCAT_WS(',', {})", shown.join(", "))
    };
    let k0 = key[0];
    let only_in_a = format!(
        "FROM `{schema}`.`{a}` x LEFT JOIN `{schema}`.`{b}` y ON {on} WHERE y.`{k0}` IS NULL OR NOT ({same})"
    );
    let only_in_b = format!(
        "FROM `{schema}`.`{b}` y LEFT JOIN `{schema}`.`{a}` x ON {on} WHERE x.`{k0}` IS NULL"
    );
    let mut c = endpoint.conn().await;
    let count: u64 = c
        .query_first(format!(
            "SELECT (SELECT COUNT(*) {only_in_a}) + (SELECT COUNT(*) {only_in_b})"
        ))
        .await
        .unwrap()
        .unwrap();
    if count == 0 {
        return (0, Vec::new());
    }
    let mut samples: Vec<String> = c
        .query(format!(
            "SELECT CONCAT('{a}: ', {}, '  {b}: ', IF(y.`{k0}` IS NULL, '(none)', {})) {only_in_a} LIMIT 10",
            show("x"),
            show("y")
        ))
        .await
        .unwrap();
    let more: Vec<String> = c
        .query(format!(
            "SELECT CONCAT('{a}: (none)  {b}: ', {}) {only_in_b} LIMIT 10",
            show("y")
        ))
        .await
        .unwrap();
    samples.extend(more);
    (count, samples)
}

/// After a migration: `t` is defined as the natively altered mirror and holds the same rows, byte
/// for byte in every column (added ones too), on the primary and on the replica.
pub async fn assert_same_as_mirror(schema: &str, key: &[&str]) {
    sync_replica().await;
    let s = servers();
    for endpoint in [&s.primary, &s.replica] {
        let at = format!("{}:{}", endpoint.host, endpoint.port);
        assert_eq!(
            definition(endpoint, schema, "t").await,
            definition(endpoint, schema, "mirror").await,
            "t is not defined as the natively altered mirror on {at}"
        );
        let (count, samples) = differences(endpoint, schema, "t", "mirror", key).await;
        assert!(
            count == 0,
            "t differs from the mirror in {count} rows on {at} (hex of columns {:?}):\n{}",
            columns(endpoint, schema, "mirror").await,
            samples.join("\n")
        );
        assert_eq!(
            harness::table_checksum(endpoint, schema, "t").await,
            harness::table_checksum(endpoint, schema, "mirror").await,
            "t and the mirror hold different bytes on {at}"
        );
    }
}

/// After a swap: the old table is kept as `_t_del` and no other helper table is left.
pub async fn assert_swapped_with_old_table_kept(schema: &str) {
    let names = tables(&servers().primary, schema).await;
    assert!(
        names.contains(&"_t_del".to_string()),
        "the old table is kept as _t_del: {names:?}"
    );
    assert!(
        !names.iter().any(|t| t == "_t_gho" || t == "_t_ghc"),
        "helper tables left: {names:?}"
    );
}
