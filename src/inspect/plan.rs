//! What the migration will do with the columns and which key it walks.
//!
//! In: the original table, the ghost table after the ALTER, the ALTER's detected renames and the
//! user's choices. Out: [`Plan`]: the column mapping (shared, renamed, dropped, added; generated
//! columns never written) and the shared unique key the copier chunks by and the applier matches
//! rows with. Invariant: a key is chosen only if it is unique, with the same columns in the same
//! order, the same prefix lengths and the same collations, in both tables (`same_key`); without
//! one, rows could be duplicated or lost, so there is no plan. Before the plan, [`check_built`]
//! holds the ghost table the server built against what the ALTER was read to say: a column may
//! only vanish where the ALTER names it dropped or renamed, and the ghost table must be InnoDB.

use super::alter::{Alter, ColumnRename};
use super::schema::{Index, TableSchema};

/// One column copied from the original table to the ghost table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedColumn {
    pub original: String,
    pub ghost: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub original: TableSchema,
    pub ghost: TableSchema,
    /// Columns whose values are carried over, in the original table's order.
    pub columns: Vec<MappedColumn>,
    /// Original columns whose values are not carried over.
    pub dropped: Vec<String>,
    /// Ghost columns that get their defaults (or are generated).
    pub added: Vec<String>,
    /// The unique key, named as in the original table.
    pub key: Index,
    /// The same key's columns as named in the ghost table.
    pub ghost_key_columns: Vec<String>,
}

/// Why there is no plan. The first sentence of the three key errors is gh-ost's
/// (`go/logic/inspect.go`: `InspectTableColumnsAndUniqueKeys`, `inspectOriginalAndGhostTables`),
/// as gh-ost 1.1.x prints it, for scripts that grep it; wraith's explanation follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("No PRIMARY nor UNIQUE key found in table! Bailing out: the table has no PRIMARY KEY or UNIQUE key{0}; wraith needs one to copy rows and match changes. Add a primary key first (a separate migration), or keep one in the ALTER")]
    NoUniqueKey(String),
    #[error("No shared unique key can be found after ALTER! Bailing out: the ALTER removes or changes every unique key the table has ({0}); keep at least one unique key on the same columns, with the same prefix lengths and collations, e.g. do not DROP PRIMARY KEY without adding another unique key over columns that exist in both tables")]
    NoSharedKey(String),
    /// The shared unique keys, each with a nullable column, the one gh-ost would choose first.
    #[error("Chosen key ({}) has nullable columns. Bailing out. To force this operation to continue, supply --allow-nullable-unique-key flag. The only shared unique keys have nullable columns ({}); rows with NULLs there cannot be matched. Make the columns NOT NULL first, or pass --allow-nullable-unique-key: rows with a NULL there are then copied last, in one transaction that locks them, and matched by the values of all their columns", .0.first().map_or("", String::as_str), .0.join(", "))]
    OnlyNullableKeys(Vec<String>),
    #[error(
        "no column is shared between the original and the new table; there is nothing to copy"
    )]
    NoSharedColumns,
    #[error("the ALTER made the new table a {0} table; wraith builds InnoDB tables only (another engine may lose rows, or not roll back a failed write). Take the ENGINE option out of the ALTER, and change the engine in a separate step if you must")]
    GhostEngine(String),
    #[error("the new table has no column {} although the ALTER was not read as dropping or renaming {}: the server read the ALTER differently from wraith, and the values would be lost. Nothing was copied. Write the drop or rename as a plain clause (`DROP COLUMN x`, `CHANGE x y ...`, `RENAME COLUMN x TO y`) with names in backticks", list(.0), if .0.len() == 1 { "it" } else { "them" })]
    UnexplainedMissingColumns(Vec<String>),
    #[error("the ALTER was read as renaming {from} to {to}, but the new table has no column {to}: the server read the ALTER differently from wraith. Nothing was copied. Write the rename as a plain clause with names in backticks")]
    RenameNotBuilt { from: String, to: String },
    #[error("the new table has no PRIMARY KEY although the ALTER was not read as dropping it: the server read the ALTER differently from wraith. Nothing was copied. Write DROP PRIMARY KEY if that is what you want")]
    UnexplainedPrimaryKeyDrop,
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| crate::mysql::sql::quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the ghost table the server built against what the ALTER was read to do (`alter`;
/// with `skip_renames`, a rename counts as a drop): the ghost table is InnoDB; every column of
/// the original that the ghost table lacks is named by the ALTER as dropped or renamed; every
/// rename that is honoured led to a column of the new name; a primary key is gone only where
/// the ALTER drops it (or one of its columns). A rename the ALTER names is trusted only so far:
/// the values go where the ALTER says, never to a column found by guessing.
pub fn check_built(
    original: &TableSchema,
    ghost: &TableSchema,
    alter: &Alter,
    skip_renames: bool,
) -> Result<(), PlanError> {
    if !ghost.engine.eq_ignore_ascii_case("InnoDB") {
        return Err(PlanError::GhostEngine(ghost.engine.clone()));
    }
    let named = |list: &[String], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    let mut missing = Vec::new();
    for col in original.columns.iter().filter(|c| !c.generated) {
        let rename = alter
            .renames
            .iter()
            .find(|r| r.from.eq_ignore_ascii_case(&col.name));
        match rename {
            Some(_) if skip_renames => {}
            Some(r) if ghost.column(&r.to).is_none() => {
                return Err(PlanError::RenameNotBuilt {
                    from: r.from.clone(),
                    to: r.to.clone(),
                })
            }
            Some(_) => {}
            None if ghost.column(&col.name).is_some() => {}
            None if named(&alter.dropped_columns, &col.name) => {}
            None => missing.push(col.name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(PlanError::UnexplainedMissingColumns(missing));
    }
    let primary = |t: &TableSchema| t.indexes.iter().find(|i| i.is_primary()).cloned();
    if let (Some(pk), None) = (primary(original), primary(ghost)) {
        let pk_column_dropped = pk.columns.iter().any(|c| {
            named(&alter.dropped_columns, c)
                || (skip_renames && alter.renames.iter().any(|r| r.from.eq_ignore_ascii_case(c)))
        });
        if !alter.drops_primary_key && !pk_column_dropped {
            return Err(PlanError::UnexplainedPrimaryKeyDrop);
        }
    }
    Ok(())
}

/// Builds the plan. `renames` are honoured (mapped) unless `skip_renames`.
pub fn build(
    original: &TableSchema,
    ghost: &TableSchema,
    renames: &[ColumnRename],
    skip_renames: bool,
    allow_nullable_key: bool,
) -> Result<Plan, PlanError> {
    let ghost_name = |name: &str| -> String {
        if !skip_renames {
            if let Some(r) = renames.iter().find(|r| r.from.eq_ignore_ascii_case(name)) {
                return r.to.clone();
            }
        }
        name.to_string()
    };

    let mut columns = Vec::new();
    let mut dropped = Vec::new();
    for col in original.columns.iter().filter(|c| !c.generated) {
        let target = ghost_name(&col.name);
        match ghost.column(&target) {
            Some(g) if !g.generated => columns.push(MappedColumn {
                original: col.name.clone(),
                ghost: g.name.clone(),
            }),
            _ => dropped.push(col.name.clone()),
        }
    }
    if columns.is_empty() {
        return Err(PlanError::NoSharedColumns);
    }
    let added = ghost
        .columns
        .iter()
        .filter(|g| {
            !columns
                .iter()
                .any(|m| m.ghost.eq_ignore_ascii_case(&g.name))
        })
        .map(|g| g.name.clone())
        .collect();

    // An index with a functional key part is not described by its columns: never a key.
    let unique: Vec<&Index> = original
        .indexes
        .iter()
        .filter(|i| i.unique && !i.functional)
        .collect();
    if unique.is_empty() {
        return Err(PlanError::NoUniqueKey(String::new()));
    }
    // Candidates in order of preference: PRIMARY first, then non-nullable, then fewer columns.
    let mut candidates = unique.clone();
    candidates.sort_by_key(|i| {
        (
            !i.is_primary(),
            original.index_is_nullable(i),
            i.columns.len(),
        )
    });
    let mut nullable_shared = Vec::new();
    for key in candidates {
        let mapped: Vec<String> = key.columns.iter().map(|c| ghost_name(c)).collect();
        let shared_columns = key
            .columns
            .iter()
            .all(|c| columns.iter().any(|m| m.original.eq_ignore_ascii_case(c)));
        let ghost_has = ghost
            .indexes
            .iter()
            .any(|g| same_key(original, key, ghost, g, &mapped));
        if !(shared_columns && ghost_has) {
            continue;
        }
        let nullable = original.index_is_nullable(key) || ghost_nullable(ghost, &mapped);
        if nullable && !allow_nullable_key {
            nullable_shared.push(key.name.clone());
            continue;
        }
        return Ok(Plan {
            original: original.clone(),
            ghost: ghost.clone(),
            columns,
            dropped,
            added,
            key: key.clone(),
            ghost_key_columns: mapped,
        });
    }
    if !nullable_shared.is_empty() {
        return Err(PlanError::OnlyNullableKeys(nullable_shared));
    }
    Err(PlanError::NoSharedKey(
        unique
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

/// Whether unique key `o` of `original` and unique key `g` of `ghost` are the same constraint:
/// `ghost_columns` (`o`'s columns as the ghost table names them) are `g`'s columns in the same
/// order, with the same prefix lengths, and every column compares its values with the same
/// collation in both tables. A key over the same columns that compares more loosely after the
/// ALTER (`utf8mb4_bin` to `_ci`; `_general_ci` to `_unicode_ci`, where 'strasse' = 'straße')
/// or on a shorter prefix can hold fewer rows: a duplicate on it is a row the new table cannot
/// hold, not a row the applier will bring up to date.
fn same_key(
    original: &TableSchema,
    o: &Index,
    ghost: &TableSchema,
    g: &Index,
    ghost_columns: &[String],
) -> bool {
    let collation = |t: &TableSchema, c: &str| t.column(c).map(|c| c.collation.clone());
    o.unique
        && g.unique
        && !o.functional
        && !g.functional
        && o.prefixes == g.prefixes
        && o.columns.len() == ghost_columns.len()
        && g.columns.len() == ghost_columns.len()
        && g.columns
            .iter()
            .zip(ghost_columns)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
        && o.columns.iter().zip(ghost_columns).all(|(oc, gc)| {
            let (oc, gc) = (collation(original, oc), collation(ghost, gc));
            oc.is_some() && oc == gc
        })
}

impl Plan {
    /// Whether every column of the shared key is an integer (of any size, signed or not) in the
    /// original table: keys wraith can order as the server does ([`crate::copy::CopyFront`]).
    pub fn integer_key(&self) -> bool {
        self.key.columns.iter().all(|c| {
            self.original.column(c).is_some_and(|col| {
                matches!(
                    col.data_type.as_str(),
                    "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
                )
            })
        })
    }

    /// Unique keys the ghost table shares with the original (`same_key`: the same columns, by
    /// mapping, prefix lengths and collations), as (original index, ghost index). The original
    /// never holds a value of one of them twice, so a duplicate on one in the ghost table is a
    /// row not yet brought up to date, and a later binlog event rewrites it. A unique key that
    /// only the ghost table has, or that the ALTER changed, is not here.
    pub fn shared_unique_keys(&self) -> Vec<(&Index, &Index)> {
        let original_name = |ghost_column: &str| {
            self.columns
                .iter()
                .find(|m| m.ghost.eq_ignore_ascii_case(ghost_column))
                .map(|m| m.original.as_str())
        };
        self.ghost
            .indexes
            .iter()
            .filter(|g| g.unique && !g.functional)
            .filter_map(|g| {
                let mapped: Option<Vec<&str>> =
                    g.columns.iter().map(|c| original_name(c)).collect();
                let mapped = mapped?;
                let o = self.original.indexes.iter().find(|o| {
                    o.columns.len() == mapped.len()
                        && o.columns
                            .iter()
                            .zip(&mapped)
                            .all(|(a, b)| a.eq_ignore_ascii_case(b))
                        && same_key(&self.original, o, &self.ghost, g, &g.columns)
                })?;
                Some((o, g))
            })
            .collect()
    }
}

fn ghost_nullable(ghost: &TableSchema, columns: &[String]) -> bool {
    columns
        .iter()
        .any(|c| ghost.column(c).is_none_or(|c| c.nullable))
}

#[cfg(test)]
mod tests {
    use super::super::schema::Column;
    use super::*;

    fn col(name: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: "int".into(),
            column_type: "int(11)".into(),
            nullable,
            charset: None,
            collation: None,
            generated: false,
            info: crate::binlog::ColumnInfo::from_information_schema(
                name, "int", "int(11)", None, None, None, "",
            ),
        }
    }

    fn idx(name: &str, cols: &[&str]) -> Index {
        Index {
            name: name.into(),
            unique: true,
            columns: cols.iter().map(|c| c.to_string()).collect(),
            prefixes: vec![None; cols.len()],
            functional: false,
        }
    }

    fn table(columns: Vec<Column>, indexes: Vec<Index>) -> TableSchema {
        TableSchema {
            schema: "d".into(),
            name: "t".into(),
            engine: "InnoDB".into(),
            columns,
            indexes,
        }
    }

    #[test]
    fn shared_columns_dropped_and_added_are_mapped() {
        let orig = table(
            vec![col("id", false), col("a", true), col("b", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let ghost = table(
            vec![col("id", false), col("b", true), col("c", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let plan = build(&orig, &ghost, &[], false, false).unwrap();
        assert_eq!(
            plan.columns
                .iter()
                .map(|m| m.original.as_str())
                .collect::<Vec<_>>(),
            vec!["id", "b"]
        );
        assert_eq!(plan.dropped, vec!["a"]);
        assert_eq!(plan.added, vec!["c"]);
        assert_eq!(plan.key.name, "PRIMARY");
    }

    #[test]
    fn renamed_columns_carry_their_values_unless_skipped() {
        let orig = table(
            vec![col("id", false), col("a", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let ghost = table(
            vec![col("id", false), col("z", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let renames = [ColumnRename {
            from: "a".into(),
            to: "z".into(),
        }];
        let plan = build(&orig, &ghost, &renames, false, false).unwrap();
        assert_eq!(
            plan.columns[1],
            MappedColumn {
                original: "a".into(),
                ghost: "z".into()
            }
        );
        let plan = build(&orig, &ghost, &renames, true, false).unwrap();
        assert_eq!(plan.dropped, vec!["a"]);
        assert_eq!(plan.added, vec!["z"]);
    }

    #[test]
    fn generated_columns_are_never_written() {
        let mut g = col("g", true);
        g.generated = true;
        let orig = table(
            vec![col("id", false), g.clone()],
            vec![idx("PRIMARY", &["id"])],
        );
        let plan = build(&orig, &orig, &[], false, false).unwrap();
        assert_eq!(plan.columns.len(), 1);
        assert_eq!(plan.added, vec!["g"]);
    }

    #[test]
    fn primary_key_is_preferred_then_a_non_null_unique_key() {
        let orig = table(
            vec![col("id", false), col("u", false), col("n", true)],
            vec![idx("PRIMARY", &["id"]), idx("u", &["u"]), idx("n", &["n"])],
        );
        assert_eq!(
            build(&orig, &orig, &[], false, false).unwrap().key.name,
            "PRIMARY"
        );
        let mut ghost = orig.clone();
        ghost.indexes.remove(0);
        assert_eq!(
            build(&orig, &ghost, &[], false, false).unwrap().key.name,
            "u"
        );
        ghost.indexes.retain(|i| i.name == "n");
        let e = build(&orig, &ghost, &[], false, false).unwrap_err();
        assert_eq!(e, PlanError::OnlyNullableKeys(vec!["n".into()]));
        assert_eq!(
            build(&orig, &ghost, &[], false, true).unwrap().key.name,
            "n"
        );
        ghost.indexes.clear();
        assert!(matches!(
            build(&orig, &ghost, &[], false, false),
            Err(PlanError::NoSharedKey(_))
        ));
    }

    #[test]
    fn a_unique_key_on_a_prefix_is_not_the_same_key_as_one_on_the_whole_column() {
        let orig = table(
            vec![col("id", false), col("b", false)],
            vec![idx("PRIMARY", &["id"]), idx("b_uidx", &["b"])],
        );
        let mut ghost = orig.clone();
        let mut prefix = idx("b4_uidx", &["b"]);
        prefix.prefixes = vec![Some(4)];
        ghost.indexes.push(prefix);
        let plan = build(&orig, &ghost, &[], false, false).unwrap();
        let names: Vec<&str> = plan
            .shared_unique_keys()
            .iter()
            .map(|(_, g)| g.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["PRIMARY", "b_uidx"],
            "a duplicate on b(4) in the ghost table is a row the new table cannot hold"
        );
        // Keyed only by the prefix in the ghost table, the table has no shared key.
        let orig = table(vec![col("b", false)], vec![idx("PRIMARY", &["b"])]);
        let mut ghost = orig.clone();
        ghost.indexes[0].prefixes = vec![Some(4)];
        assert!(matches!(
            build(&orig, &ghost, &[], false, false),
            Err(PlanError::NoSharedKey(_))
        ));
    }

    fn text(name: &str, collation: &str) -> Column {
        let mut c = col(name, false);
        c.data_type = "varchar".into();
        c.column_type = "varchar(40)".into();
        c.charset = Some("utf8mb4".into());
        c.collation = Some(collation.into());
        c
    }

    #[test]
    fn a_unique_key_that_compares_more_loosely_after_the_alter_is_not_the_same_key() {
        let orig = table(
            vec![col("id", false), text("v", "utf8mb4_bin")],
            vec![idx("PRIMARY", &["id"]), idx("v_uidx", &["v"])],
        );
        let mut ghost = orig.clone();
        ghost.columns[1] = text("v", "utf8mb4_general_ci");
        let plan = build(&orig, &ghost, &[], false, false).unwrap();
        let names: Vec<&str> = plan
            .shared_unique_keys()
            .iter()
            .map(|(_, g)| g.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["PRIMARY"],
            "'abc' and 'ABC' are two rows before and one key after: a duplicate on v_uidx is a row the new table cannot hold"
        );
        // The same collation: the same key.
        let plan = build(&orig, &orig, &[], false, false).unwrap();
        assert_eq!(plan.shared_unique_keys().len(), 2);
        // Keyed only by a key whose collation changes, the table has no shared key.
        let orig = table(
            vec![text("v", "utf8mb4_general_ci")],
            vec![idx("PRIMARY", &["v"])],
        );
        let mut ghost = orig.clone();
        ghost.columns[0] = text("v", "utf8mb4_unicode_ci");
        assert!(matches!(
            build(&orig, &ghost, &[], false, false),
            Err(PlanError::NoSharedKey(_))
        ));
    }

    #[test]
    fn shared_unique_keys_exclude_keys_the_alter_adds() {
        let orig = table(
            vec![col("id", false), col("email", false), col("name", false)],
            vec![idx("PRIMARY", &["id"]), idx("email_uidx", &["email"])],
        );
        let mut ghost = orig.clone();
        ghost.indexes.push(idx("name_uidx", &["name"]));
        let plan = build(&orig, &ghost, &[], false, false).unwrap();
        let names: Vec<&str> = plan
            .shared_unique_keys()
            .iter()
            .map(|(_, g)| g.name.as_str())
            .collect();
        assert_eq!(names, vec!["PRIMARY", "email_uidx"]);
    }

    #[test]
    fn a_table_without_unique_keys_has_no_plan() {
        let orig = table(vec![col("a", false)], vec![]);
        assert!(matches!(
            build(&orig, &orig, &[], false, false),
            Err(PlanError::NoUniqueKey(_))
        ));
    }

    fn alter(text: &str) -> Alter {
        crate::inspect::alter::parse(text).unwrap()
    }

    #[test]
    fn a_column_the_ghost_table_lacks_must_be_dropped_or_renamed_by_the_alter() {
        let orig = table(
            vec![col("id", false), col("a", true), col("b", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let ghost = table(
            vec![col("id", false), col("b", true), col("z", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        // What the server built says `a` is gone; only an ALTER that names it explains that.
        for named in [
            "DROP COLUMN a, ADD z INT",
            "DROP `A`, ADD z INT",
            "CHANGE a z INT",
        ] {
            assert_eq!(
                check_built(&orig, &ghost, &alter(named), false),
                Ok(()),
                "{named}"
            );
        }
        assert_eq!(
            check_built(&orig, &ghost, &alter("CHANGE a z INT"), true),
            Ok(()),
            "with --skip-renamed-columns a rename is a drop"
        );
        // A rename the parser missed (double quotes under ANSI_QUOTES, say): `a` is not named.
        let e = check_built(&orig, &ghost, &alter("CHANGE \"a\" \"z\" INT"), false).unwrap_err();
        assert_eq!(e, PlanError::UnexplainedMissingColumns(vec!["a".into()]));
        assert!(e.to_string().contains("`a`"), "{e}");
        assert!(check_built(&orig, &ghost, &alter("ADD z INT"), false).is_err());
    }

    #[test]
    fn a_rename_is_trusted_only_where_the_server_built_its_new_name() {
        let orig = table(
            vec![col("id", false), col("a", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        // The server did not rename (the clause was skipped): `a` is still there, `z` is not.
        let ghost = orig.clone();
        assert_eq!(
            check_built(&orig, &ghost, &alter("CHANGE a z INT"), false),
            Err(PlanError::RenameNotBuilt {
                from: "a".into(),
                to: "z".into()
            })
        );
    }

    #[test]
    fn the_ghost_table_must_be_innodb() {
        let orig = table(vec![col("id", false)], vec![idx("PRIMARY", &["id"])]);
        for engine in ["MEMORY", "BLACKHOLE", "Aria", "MyISAM"] {
            let mut ghost = orig.clone();
            ghost.engine = engine.into();
            let e = check_built(&orig, &ghost, &alter("ENGINE=InnoDB"), false).unwrap_err();
            assert_eq!(e, PlanError::GhostEngine(engine.into()));
            assert!(e.to_string().contains("InnoDB"), "{e}");
        }
        let mut ghost = orig.clone();
        ghost.engine = "innodb".into();
        assert_eq!(check_built(&orig, &ghost, &alter("FORCE"), false), Ok(()));
    }

    #[test]
    fn a_primary_key_is_gone_only_where_the_alter_drops_it() {
        let orig = table(
            vec![col("id", false), col("u", false)],
            vec![idx("PRIMARY", &["id"]), idx("u", &["u"])],
        );
        let mut ghost = orig.clone();
        ghost.indexes.retain(|i| !i.is_primary());
        for named in ["DROP PRIMARY KEY", "DROP INDEX `PRIMARY`"] {
            assert_eq!(
                check_built(&orig, &ghost, &alter(named), false),
                Ok(()),
                "{named}"
            );
        }
        assert_eq!(
            check_built(&orig, &ghost, &alter("ADD COLUMN c INT"), false),
            Err(PlanError::UnexplainedPrimaryKeyDrop)
        );
        // Dropping the key's only column drops the key with it.
        ghost.columns.retain(|c| c.name != "id");
        assert_eq!(
            check_built(&orig, &ghost, &alter("DROP COLUMN id"), false),
            Ok(())
        );
    }

    #[test]
    fn a_key_over_a_renamed_column_is_followed() {
        let orig = table(
            vec![col("id", false), col("v", true)],
            vec![idx("PRIMARY", &["id"])],
        );
        let ghost = table(
            vec![col("ident", false), col("v", true)],
            vec![idx("PRIMARY", &["ident"])],
        );
        let renames = [ColumnRename {
            from: "id".into(),
            to: "ident".into(),
        }];
        let plan = build(&orig, &ghost, &renames, false, false).unwrap();
        assert_eq!(plan.ghost_key_columns, vec!["ident"]);
    }

    /// The refusals for want of a key that gh-ost also makes open with gh-ost's words, as gh-ost
    /// 1.1.x prints them, for scripts that grep them; wraith's explanation follows.
    #[test]
    fn a_refusal_for_want_of_a_key_opens_with_gh_osts_words() {
        let orig = table(
            vec![col("id", false), col("n", true)],
            vec![idx("PRIMARY", &["id"]), idx("n", &["n"])],
        );
        let keyless = table(vec![col("id", false)], vec![]);
        let mut only_nullable = orig.clone();
        only_nullable.indexes.retain(|i| i.name == "n");
        let mut no_key = orig.clone();
        no_key.indexes.clear();
        for (original, ghost, gh_ost) in [
            (
                &keyless,
                &keyless,
                "No PRIMARY nor UNIQUE key found in table! Bailing out",
            ),
            (
                &orig,
                &no_key,
                "No shared unique key can be found after ALTER! Bailing out",
            ),
            (
                &orig,
                &only_nullable,
                "Chosen key (n) has nullable columns. Bailing out. To force this operation to \
                 continue, supply --allow-nullable-unique-key flag.",
            ),
        ] {
            let message = build(original, ghost, &[], false, false)
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(gh_ost) && message.len() > gh_ost.len(),
                "expected gh-ost's `{gh_ost}`, then wraith's explanation; got: {message}"
            );
        }
    }
}
