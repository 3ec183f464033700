//! Comparing a migrated table with its natively altered mirror, exactly.
//!
//! In: a schema holding `t` (the table wraith migrated; or another name, given) and `mirror` (the
//! same rows, altered by the server itself). Out: assertions that fail on any difference: the table definition
//! (`SHOW CREATE TABLE`), rows missing on either side, and any column's bytes, on the primary and
//! on the replica.
//! Invariant: every value is compared by its exact bytes (`wraith::verify`), never through
//! `HEX()` of a number, which rounds to an integer.

#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use wraith::mysql::sql::{quote_ident, quote_str};
use wraith::verify;

use crate::harness::{self, servers, sync_replica, tables, Endpoint};

/// `table`'s columns and their data types, in order.
pub async fn columns(endpoint: &Endpoint, schema: &str, table: &str) -> Vec<(String, String)> {
    let mut c = endpoint.conn().await;
    verify::columns(&mut c, schema, table).await.unwrap()
}

/// `SHOW CREATE TABLE` of `table`, comparable with another table's ([`verify::definition`]).
pub async fn definition(endpoint: &Endpoint, schema: &str, table: &str) -> String {
    let mut c = endpoint.conn().await;
    verify::definition(&mut c, schema, table).await.unwrap()
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
    let mut c = endpoint.conn().await;
    let count = verify::differing_rows(&mut c, schema, a, b, key)
        .await
        .unwrap();
    if count == 0 {
        return (0, Vec::new());
    }
    let (only_in_a, only_in_b, cols) = verify::difference_queries(&mut c, schema, a, b, key)
        .await
        .unwrap();
    let show = |alias: &str| -> String {
        let shown: Vec<String> = cols
            .iter()
            .map(|(c, ty)| format!("IFNULL(HEX({}), 'NULL')", verify::exact_bytes(alias, c, ty)))
            .collect();
        format!("CONCAT_WS(',', {})", shown.join(", "))
    };
    let k0 = quote_ident(key[0]);
    let mut samples: Vec<String> = c
        .query(format!(
            "SELECT CONCAT({}, {}, {}, IF(y.{k0} IS NULL, '(none)', {})) {only_in_a} LIMIT 10",
            quote_str(&format!("{a}: ")),
            show("x"),
            quote_str(&format!("  {b}: ")),
            show("y")
        ))
        .await
        .unwrap();
    let more: Vec<String> = c
        .query(format!(
            "SELECT CONCAT({}, {}) {only_in_b} LIMIT 10",
            quote_str(&format!("{a}: (none)  {b}: ")),
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
    assert_table_same_as_mirror(schema, "t", key).await;
}

/// [`assert_same_as_mirror`] for `table` instead of `t`.
pub async fn assert_table_same_as_mirror(schema: &str, table: &str, key: &[&str]) {
    sync_replica().await;
    let s = servers();
    for endpoint in [&s.primary, &s.replica] {
        let at = format!("{}:{}", endpoint.host, endpoint.port);
        assert_eq!(
            definition(endpoint, schema, table).await,
            definition(endpoint, schema, "mirror").await,
            "{table} is not defined as the natively altered mirror on {at}"
        );
        let (count, samples) = differences(endpoint, schema, table, "mirror", key).await;
        assert!(
            count == 0,
            "{table} differs from the mirror in {count} rows on {at} (hex of columns {:?}):\n{}",
            columns(endpoint, schema, "mirror").await,
            samples.join("\n")
        );
        assert_eq!(
            harness::table_checksum(endpoint, schema, table).await,
            harness::table_checksum(endpoint, schema, "mirror").await,
            "{table} and the mirror hold different bytes on {at}"
        );
    }
}

/// After a migration: `t` is the natively altered mirror, definition and every byte of every
/// row matched on `key`, on the primary and the replica; the old table is kept as `_t_del` and no
/// other helper table is left.
pub async fn assert_migrated(schema: &str, key: &[&str]) {
    assert_table_migrated(schema, "t", key).await;
}

/// [`assert_migrated`] for `table` instead of `t`: the old table is kept as `_<table>_del`.
pub async fn assert_table_migrated(schema: &str, table: &str, key: &[&str]) {
    assert_table_same_as_mirror(schema, table, key).await;
    let names = tables(&servers().primary, schema).await;
    let old = format!("_{table}_del");
    assert!(
        names.contains(&old),
        "the old table is kept as {old}: {names:?}"
    );
    let helpers = [format!("_{table}_gho"), format!("_{table}_ghc")];
    assert!(
        !names.iter().any(|n| helpers.contains(n)),
        "helper tables left: {names:?}"
    );
}
