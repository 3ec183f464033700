//! A table's shape as the server's `information_schema` describes it.
//!
//! In: a connection, a schema and a table name. Out: [`TableSchema`]: columns in order (with the
//! facts the binlog decoder and the copier need) and indexes. `None` when the table is missing.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::binlog::ColumnInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `enum` ...
    pub data_type: String,
    /// `COLUMN_TYPE`: `int(10) unsigned`, `enum('a','b')` ...
    pub column_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// A virtual or stored generated column: never written.
    pub generated: bool,
    /// What the binlog decoder needs to know of this column (read by the same query).
    pub info: ColumnInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// The columns of its key parts, in order; a functional key part has none.
    pub columns: Vec<String>,
    /// For each of `columns`, the length of the prefix indexed (`SUB_PART`), `None` for the
    /// whole value: a unique key on `b(4)` is a stricter constraint than one on `b`.
    pub prefixes: Vec<Option<u64>>,
    /// Some key part is an expression, not a column (MySQL 8 functional key parts): `columns`
    /// does not describe the index, which is never used as a key.
    pub functional: bool,
}

impl Index {
    pub fn is_primary(&self) -> bool {
        self.name == "PRIMARY"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub schema: String,
    pub name: String,
    pub engine: String,
    pub columns: Vec<Column>,
    pub indexes: Vec<Index>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// True when any column of `index` may be NULL.
    pub fn index_is_nullable(&self, index: &Index) -> bool {
        index
            .columns
            .iter()
            .any(|c| self.column(c).is_none_or(|c| c.nullable))
    }

    /// Reads the table; `Ok(None)` when it does not exist (views count as missing).
    pub async fn read(
        conn: &mut Conn,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableSchema>, mysql_async::Error> {
        let engine: Option<(Option<String>, String)> = conn
            .exec_first(
                "SELECT ENGINE, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .await?;
        let Some((engine, kind)) = engine else {
            return Ok(None);
        };
        if kind != "BASE TABLE" {
            return Ok(None);
        }
        // Read as nullable where MySQL 8's information_schema views declare a column nullable,
        // so an odd row becomes an odd value here instead of a panic in the row conversion.
        type ColumnRow = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<u64>,
            Option<u64>,
        );
        let rows: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, \
                 CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            .await?;
        let columns = rows
            .into_iter()
            .map(
                |(
                    name,
                    data_type,
                    column_type,
                    nullable,
                    charset,
                    collation,
                    extra,
                    max_length,
                    fsp,
                )| {
                    let (data_type, column_type, extra) = (
                        data_type.unwrap_or_default(),
                        column_type.unwrap_or_default(),
                        extra.unwrap_or_default(),
                    );
                    let info = ColumnInfo::from_information_schema(
                        &name,
                        &data_type,
                        &column_type,
                        charset.as_deref(),
                        max_length,
                        fsp,
                        &extra,
                    );
                    Column {
                        name,
                        data_type: data_type.to_ascii_lowercase(),
                        column_type: column_type.to_ascii_lowercase(),
                        nullable: nullable.as_deref() == Some("YES"),
                        charset,
                        collation,
                        generated: info.generated,
                        info,
                    }
                },
            )
            .collect();
        let index_rows: Vec<StatisticsRow> = conn
            .exec(
                "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
                (schema, table),
            )
            .await?;
        let indexes = indexes_from_statistics(index_rows);
        Ok(Some(TableSchema {
            schema: schema.to_string(),
            name: table.to_string(),
            engine: engine.unwrap_or_default(),
            columns,
            indexes,
        }))
    }
}

/// One row of `information_schema.STATISTICS`: `INDEX_NAME`, `NON_UNIQUE`, `COLUMN_NAME`,
/// `SUB_PART`. `COLUMN_NAME` is NULL for a functional key part (MySQL 8, where `EXPRESSION`
/// holds it); `SUB_PART` is NULL unless only a prefix of the column is indexed.
pub type StatisticsRow = (String, i64, Option<String>, Option<u64>);

/// Groups key parts, in index and `SEQ_IN_INDEX` order, into indexes.
pub fn indexes_from_statistics(rows: Vec<StatisticsRow>) -> Vec<Index> {
    let mut indexes: Vec<Index> = Vec::new();
    for (name, non_unique, column, prefix) in rows {
        let index = match indexes.last_mut() {
            Some(last) if last.name == name => last,
            _ => {
                indexes.push(Index {
                    name,
                    unique: non_unique == 0,
                    columns: Vec::new(),
                    prefixes: Vec::new(),
                    functional: false,
                });
                indexes.last_mut().expect("just pushed")
            }
        };
        match column {
            Some(c) => {
                index.columns.push(c);
                index.prefixes.push(prefix);
            }
            None => index.functional = true,
        }
    }
    indexes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(index: &str, non_unique: i64, column: Option<&str>) -> StatisticsRow {
        (index.into(), non_unique, column.map(str::to_string), None)
    }

    #[test]
    fn key_parts_group_into_indexes_in_order() {
        let indexes = indexes_from_statistics(vec![
            part("PRIMARY", 0, Some("id")),
            part("ab", 1, Some("a")),
            ("ab".into(), 1, Some("b".into()), Some(4)),
        ]);
        assert_eq!(indexes.len(), 2);
        assert!(indexes[0].is_primary() && indexes[0].unique);
        assert_eq!(indexes[1].columns, vec!["a", "b"]);
        assert_eq!(indexes[1].prefixes, vec![None, Some(4)]);
        assert!(!indexes[1].unique && !indexes[1].functional);
    }

    #[test]
    fn a_functional_key_part_marks_its_index_instead_of_failing() {
        // MySQL 8: UNIQUE KEY u (a, (b + 1)) has a key part whose COLUMN_NAME is NULL.
        let indexes = indexes_from_statistics(vec![
            part("PRIMARY", 0, Some("id")),
            part("u", 0, Some("a")),
            part("u", 0, None),
            part("x", 1, None),
        ]);
        assert!(!indexes[0].functional);
        assert_eq!(
            (indexes[1].columns.clone(), indexes[1].functional),
            (vec!["a".to_string()], true)
        );
        assert_eq!((indexes[2].columns.len(), indexes[2].functional), (0, true));
    }
}
