//! Every row accounted for: rows the new table cannot hold are refused or counted, never lost in
//! silence; rows a key cannot address are still copied; changes that never committed never
//! arrive.
//!
//! - A unique key whose collation compares more loosely after the ALTER (`utf8mb4_bin` to
//!   `_general_ci`; `_general_ci` to `_unicode_ci`, where 'strasse' = 'straße') is not the same
//!   key: rows colliding on it fail the run, or are dropped and counted under
//!   `--allow-skipped-rows`, by the copy and by the applier.
//! - `--allow-nullable-unique-key` with NULLs in the key: those rows are copied and kept in step.
//! - More than 65535 rows skipped in one chunk are counted exactly.
//! - An XA transaction prepared during the copy and rolled back never reaches the new table; one
//!   committed does.
//!
//! Every test writes while wraith runs (`writers`: the same statements on `t` and on a mirror, in
//! the same transactions) and compares the result with the mirror (`compare`).

use std::sync::Arc;

use crate::compare::assert_table_same_as_mirror;
use crate::harness::{self, migrate_args, servers, stderr, tables};
use crate::writers::{under_writes, Rng, Shape, PACE};

/// Writers addressing `t` by its AUTO_INCREMENT `id`, but only rows with ids from `lo` to `hi`
/// (and the rows they insert, above every id there): the rows outside are the test's own.
fn by_id_between(lo: u64, hi: u64, values: fn(&mut Rng) -> Vec<(&'static str, String)>) -> Shape {
    let mut shape = Shape::by_id(hi, values);
    shape.random_key = Arc::new(move |r: &mut Rng| vec![(lo + r.below(hi - lo + 1)).to_string()]);
    shape
}

// ---------------------------------------------------------------------------------------------
// 1. A unique key that compares more loosely after the ALTER
// ---------------------------------------------------------------------------------------------

/// A collation change and two values equal under the new collation only.
struct Loosening {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// Two values that are different keys before the ALTER and the same key after it.
    pair: [&'static str; 2],
}

const LOOSENINGS: [Loosening; 2] = [
    Loosening {
        name: "bin_to_ci",
        from: "utf8mb4_bin",
        to: "utf8mb4_general_ci",
        pair: ["abc", "ABC"],
    },
    Loosening {
        name: "general_to_unicode",
        from: "utf8mb4_general_ci",
        to: "utf8mb4_unicode_ci",
        pair: ["strasse", "straße"],
    },
];

impl Loosening {
    fn create(&self) -> String {
        format!(
            "CREATE TABLE t (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             v VARCHAR(40) CHARACTER SET utf8mb4 COLLATE {} NOT NULL, n INT NOT NULL DEFAULT 0, \
             UNIQUE KEY v_uidx (v)) ENGINE=InnoDB",
            self.from
        )
    }

    fn alter(&self) -> String {
        format!(
            "MODIFY v VARCHAR(40) CHARACTER SET utf8mb4 COLLATE {} NOT NULL",
            self.to
        )
    }

    /// 20,000 rows; rows 10000 and 15000 hold the pair.
    fn fill(&self) -> Vec<String> {
        vec![
            "INSERT INTO t (id, v) SELECT seq, CONCAT('v', seq) FROM seq_1_to_20000".into(),
            format!("UPDATE t SET v = '{}' WHERE id = 10000", self.pair[0]),
            format!("UPDATE t SET v = '{}' WHERE id = 15000", self.pair[1]),
        ]
    }
}

/// Writers' values: `n`, and a fresh `v` of lower-case letters and digits (equal under no
/// collation to any other writer's or to the test's own values).
fn loosening_values(r: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("v", format!("'w{}'", r.next())),
        ("n", r.below(1_000_000).to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_unique_key_that_compares_more_loosely_after_the_alter_with_colliding_rows_is_refused(
) {
    for case in &LOOSENINGS {
        let schema = harness::fresh_schema(&format!("loose_refused_{}", case.name)).await;
        let fill = case.fill();
        let mut statements: Vec<&str> = vec![];
        let create = case.create();
        statements.push(&create);
        statements.extend(fill.iter().map(String::as_str));
        // The mirror is not altered: a refused run leaves `t` as the application made it.
        statements.extend([
            "CREATE TABLE mirror LIKE t",
            "INSERT INTO mirror SELECT * FROM t",
        ]);
        harness::primary_sql(&schema, &statements).await;
        let args = migrate_args(&schema, "t", &case.alter(), &[]);
        // Writers keep away from rows 10000 to 20000, so the colliding pair stays.
        let workload = Arc::new(by_id_between(1, 9_999, loosening_values));
        let (out, stats, _) =
            under_writes(&schema, workload, 4, PACE, harness::run_wraith(&args)).await;
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{}: wraith migrated although '{}' and '{}' are one key under {}:\n{err}",
            case.name,
            case.pair[0],
            case.pair[1],
            case.to
        );
        assert!(
            err.contains("Duplicate entry") && err.contains("v_uidx"),
            "{}: the error names the key and the duplicate:\n{err}",
            case.name
        );
        assert!(
            stats.errors.is_empty(),
            "writers saw errors: {:?}",
            stats.errors
        );
        assert_eq!(
            tables(&servers().primary, &schema).await,
            vec!["mirror", "t"],
            "{}: helper tables are dropped",
            case.name
        );
        assert_table_same_as_mirror(&schema, "t", &["id"]).await;
    }
}
