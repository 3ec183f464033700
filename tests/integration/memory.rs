//! Honest verification.
//!
//! - The demo's verdict (`wraith::demo::verify_against_mirror`, through `wraith::verify`) sees a
//!   row deleted from the migrated table behind its back, a row missing from the mirror, and a
//!   changed value.

use mysql_async::prelude::Queryable;
use wraith::mysql::sql::quote_ident;

use crate::harness::{self, servers};

// ---- the demo's verdict ---------------------------------------------------------------------

#[tokio::test]
async fn the_demos_check_reports_a_row_deleted_from_the_migrated_table_behind_its_back() {
    let schema = harness::fresh_schema("memory_demo_check").await;
    harness::primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
            "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100",
            "CREATE TABLE mirror LIKE t",
            "INSERT INTO mirror SELECT * FROM t",
        ],
    )
    .await;
    let mut c = servers().primary.conn().await;
    let same = verdict(&mut c, &schema).await;
    assert!(same.is_ok(), "equal tables reported as different: {same:?}");

    // A row lost by the migrated table: only the mirror has it.
    c.query_drop(format!(
        "DELETE FROM {}.t WHERE id = 50",
        quote_ident(&schema)
    ))
    .await
    .unwrap();
    let lost = verdict(&mut c, &schema).await;
    let lines = lost.expect_err("a row deleted from the migrated table was not reported");
    assert!(
        lines.iter().any(|l| l.contains("1 ROWS DIFFER")),
        "{lines:?}"
    );

    // A row only the migrated table has, and a changed value: each is a differing row too.
    c.query_drop(format!(
        "DELETE FROM {s}.mirror WHERE id = 7; UPDATE {s}.t SET v = 'changed' WHERE id = 9",
        s = quote_ident(&schema)
    ))
    .await
    .unwrap();
    let lines = verdict(&mut c, &schema)
        .await
        .expect_err("differences were not reported");
    assert!(
        lines.iter().any(|l| l.contains("3 ROWS DIFFER")),
        "{lines:?}"
    );
}

/// The demo's verdict on `schema`.`t` against `schema`.`mirror`.
async fn verdict(c: &mut mysql_async::Conn, schema: &str) -> Result<String, Vec<String>> {
    wraith::demo::verify_against_mirror(c, "primary", schema, "t", "mirror", &["id"])
        .await
        .unwrap()
}
