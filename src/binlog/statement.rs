//! What a statement logged as text (a binlog QUERY event: DDL, or DML written as a statement)
//! does to tables.
//!
//! In: the statement's text and the sql_mode it ran under. Out: a [`Statement`]: whether wraith
//! wrote it (the `/* wraith */` tag right after its first word, as `mysql::sql` writes it) and
//! the tables it names in the place of a table, each with how it touches them ([`Touch`]); then
//! [`Statement::touch`] says how it touches one table, named as wraith knows it, under the
//! server's [`NameCase`]. Invariant: a table is found wherever the statement names it as a table,
//! through any quoting, comment, executable comment or schema qualifier; a word used for
//! anything else (a column, an index, a comment, another table's name) never matches.
//!
//! The statements read for tables: ALTER TABLE (and the tables a RENAME, EXCHANGE PARTITION or
//! REFERENCES in it names), RENAME TABLE, DROP TABLE, TRUNCATE, CREATE TABLE (LIKE), CREATE/DROP
//! INDEX ... ON, CREATE TRIGGER ... ON, OPTIMIZE/REPAIR TABLE, DROP DATABASE and CREATE OR REPLACE
//! DATABASE (every table of the schema). DML logged as a statement (INSERT, REPLACE, UPDATE,
//! DELETE, LOAD, WITH) is not parsed: every name in it counts as a change, as its rows never come
//! as row events. Any other statement names no table. Text that cannot be read (it never comes
//! from a server that ran it) counts as changing every table whose name appears in it.

use crate::mysql::lexer::{tokenize, Dialect, Spanned, Token};
use crate::mysql::names::NameCase;

/// How a statement touches a table; a stronger touch compares greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touch {
    /// Reads its definition (`CREATE TABLE x LIKE t`): the table is unchanged.
    Reads,
    /// Changes its definition or its rows outside row events, drops it, or puts another table
    /// under its name.
    Changes,
    /// Renames it away (`RENAME TABLE t TO u`, `ALTER TABLE t RENAME u`).
    RenamesAway,
}

/// A table (or, with no table, every table of a schema) a statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// As qualified in the statement; `None`: the statement's default schema.
    pub schema: Option<String>,
    /// `None`: every table of the schema (DROP DATABASE).
    pub table: Option<String>,
    pub touch: Touch,
}

/// A statement, read for the tables it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// wraith wrote it: `VERB /* wraith */ ...`.
    pub tagged: bool,
    pub mentions: Vec<Mention>,
    /// The text could not be read; kept to be searched for names.
    unreadable: Option<String>,
}

/// The tag `mysql::sql` puts after the first word of every statement wraith runs.
const TAG: &str = "/* wraith */";

impl Statement {
    /// Reads `text`, run under the sql_mode bits `sql_mode`.
    pub fn read(text: &str, sql_mode: u64) -> Statement {
        let tokens = match tokenize(text, Dialect::from_sql_mode(sql_mode)) {
            Ok(tokens) => tokens,
            Err(_) => {
                return Statement {
                    tagged: false,
                    mentions: Vec::new(),
                    unreadable: Some(text.to_string()),
                }
            }
        };
        let tagged = match tokens.as_slice() {
            [first, second, ..] => text[first.end..second.start].trim() == TAG,
            _ => false,
        };
        Statement {
            tagged,
            mentions: Reader { t: &tokens }.mentions(),
            unreadable: None,
        }
    }

    /// How this statement, run with default schema `default_schema`, touches `schema`.`table`
    /// (the strongest of its mentions), compared under `names`; `None` if it does not name it.
    pub fn touch(
        &self,
        default_schema: &str,
        schema: &str,
        table: &str,
        names: NameCase,
    ) -> Option<Touch> {
        if let Some(text) = &self.unreadable {
            let spelled = text.to_lowercase().contains(&table.to_lowercase());
            return spelled.then_some(Touch::Changes);
        }
        self.mentions
            .iter()
            .filter(|m| {
                let in_schema = m.schema.as_deref().unwrap_or(default_schema);
                names.same(in_schema, schema)
                    && m.table.as_deref().is_none_or(|t| names.same(t, table))
            })
            .map(|m| m.touch)
            .max()
    }
}

/// Reads the tokens of one statement.
struct Reader<'a> {
    t: &'a [Spanned],
}

impl Reader<'_> {
    fn is(&self, i: usize, kw: &str) -> bool {
        self.t.get(i).is_some_and(|s| s.token.is(kw))
    }

    fn punct(&self, i: usize, c: char) -> bool {
        self.t.get(i).is_some_and(|s| s.token == Token::Punct(c))
    }

    /// `i` moved past the keywords `kws`, if they all follow in that order.
    fn skip(&self, i: usize, kws: &[&str]) -> usize {
        if kws.iter().enumerate().all(|(k, kw)| self.is(i + k, kw)) {
            i + kws.len()
        } else {
            i
        }
    }

    /// `i` moved past any of the keywords `kws`, in any order.
    fn skip_any(&self, mut i: usize, kws: &[&str]) -> usize {
        while kws.iter().any(|kw| self.is(i, kw)) {
            i += 1;
        }
        i
    }

    /// The index of the first keyword `kw` at or after `i`, outside parentheses opened after `i`.
    fn find(&self, i: usize, kw: &str) -> Option<usize> {
        let mut depth = 0i32;
        for (k, s) in self.t.iter().enumerate().skip(i) {
            match s.token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                _ if depth <= 0 && s.token.is(kw) => return Some(k),
                _ => {}
            }
        }
        None
    }

    /// The table name `[schema.]table` at `i`, and the index after it.
    fn name(&self, i: usize) -> Option<(Option<String>, String, usize)> {
        let first = self.t.get(i)?.token.ident()?.to_string();
        if self.punct(i + 1, '.') {
            let second = self.t.get(i + 2)?.token.ident()?.to_string();
            Some((Some(first), second, i + 3))
        } else {
            Some((None, first, i + 1))
        }
    }

    /// The name at `i` as a mention, and the index after it.
    fn mention(&self, i: usize, touch: Touch) -> Option<(Mention, usize)> {
        let (schema, table, next) = self.name(i)?;
        Some((
            Mention {
                schema,
                table: Some(table),
                touch,
            },
            next,
        ))
    }

    /// A comma-separated list of names from `i`, each touched by `touch`.
    fn list(&self, mut i: usize, touch: Touch, out: &mut Vec<Mention>) {
        while let Some((m, next)) = self.mention(i, touch) {
            out.push(m);
            if !self.punct(next, ',') {
                break;
            }
            i = next + 1;
        }
    }

    /// Every `KW name` from `i` on (`LIKE t`, `REFERENCES t`, `WITH TABLE t`), at any depth.
    fn after_each(&self, i: usize, kw: &[&str], touch: Touch, out: &mut Vec<Mention>) {
        for k in i..self.t.len() {
            if kw.iter().enumerate().all(|(n, w)| self.is(k + n, w)) {
                out.extend(self.mention(k + kw.len(), touch).map(|(m, _)| m));
            }
        }
    }

    /// The schema named at `i`, touched as a whole.
    fn schema(&self, i: usize, out: &mut Vec<Mention>) {
        if let Some(name) = self.t.get(i).and_then(|s| s.token.ident()) {
            out.push(Mention {
                schema: Some(name.to_string()),
                table: None,
                touch: Touch::Changes,
            });
        }
    }

    fn mentions(&self) -> Vec<Mention> {
        let mut out = Vec::new();
        let Some(verb) = self.t.first().and_then(|s| s.token.keyword()) else {
            return out;
        };
        // MariaDB's `SET STATEMENT var = value [, ...] FOR <statement>`.
        if verb == "SET" && self.is(1, "STATEMENT") {
            if let Some(at) = self.find(2, "FOR") {
                return Reader {
                    t: &self.t[at + 1..],
                }
                .mentions();
            }
        }
        match verb.as_str() {
            "ALTER" => self.alter(&mut out),
            "RENAME" => {
                let i = self.skip(1, &["TABLE"]);
                let i = self.skip(self.skip(i, &["TABLES"]), &["IF", "EXISTS"]);
                if i > 1 {
                    self.renames(i, &mut out);
                }
            }
            "DROP" => self.drop(&mut out),
            "TRUNCATE" => {
                let i = self.skip(1, &["TABLE"]);
                out.extend(self.mention(i, Touch::Changes).map(|(m, _)| m));
            }
            "CREATE" => self.create(&mut out),
            "OPTIMIZE" | "REPAIR" => {
                let i = self.skip_any(1, &["NO_WRITE_TO_BINLOG", "LOCAL"]);
                if self.is(i, "TABLE") || self.is(i, "TABLES") {
                    self.list(i + 1, Touch::Changes, &mut out);
                }
            }
            "INSERT" | "REPLACE" | "UPDATE" | "DELETE" | "LOAD" | "WITH" => self.dml(&mut out),
            _ => {}
        }
        out
    }

    /// `ALTER [ONLINE|OFFLINE] [IGNORE] TABLE [IF EXISTS] t ...`
    fn alter(&self, out: &mut Vec<Mention>) {
        let i = self.skip_any(1, &["ONLINE", "OFFLINE", "IGNORE"]);
        if !self.is(i, "TABLE") {
            return;
        }
        let i = self.skip(i + 1, &["IF", "EXISTS"]);
        let Some((mut m, body)) = self.mention(i, Touch::Changes) else {
            return;
        };
        // A table rename is a top-level `RENAME [TO|AS] u` clause; RENAME COLUMN/INDEX/KEY are not.
        let mut k = body;
        while let Some(at) = self.find(k, "RENAME") {
            k = at + 1;
            if ["COLUMN", "INDEX", "KEY"].iter().any(|w| self.is(k, w)) {
                continue;
            }
            m.touch = Touch::RenamesAway;
            let to = self.skip_any(k, &["TO", "AS"]);
            out.extend(self.mention(to, Touch::Changes).map(|(m, _)| m));
        }
        out.push(m);
        self.after_each(body, &["WITH", "TABLE"], Touch::Changes, out);
        self.after_each(body, &["REFERENCES"], Touch::Changes, out);
    }

    /// `a TO b [, c TO d ...]` from `i`: sources renamed away, targets replaced.
    fn renames(&self, mut i: usize, out: &mut Vec<Mention>) {
        while let Some((from, next)) = self.mention(i, Touch::RenamesAway) {
            out.push(from);
            if !self.is(next, "TO") {
                break;
            }
            let Some((to, next)) = self.mention(next + 1, Touch::Changes) else {
                break;
            };
            out.push(to);
            if !self.punct(next, ',') {
                break;
            }
            i = next + 1;
        }
    }

    /// `DROP [TEMPORARY] TABLE[S] [IF EXISTS] a, b`, `DROP INDEX i ON t`,
    /// `DROP {DATABASE|SCHEMA} [IF EXISTS] s`.
    fn drop(&self, out: &mut Vec<Mention>) {
        if self.is(1, "TEMPORARY") {
            // A temporary table of the same name hides the table from one session only.
            return;
        }
        let i = self.skip_any(1, &["ONLINE", "OFFLINE"]);
        if self.is(i, "TABLE") || self.is(i, "TABLES") {
            let i = self.skip(i + 1, &["IF", "EXISTS"]);
            self.list(i, Touch::Changes, out);
        } else if self.is(i, "INDEX") {
            if let Some(on) = self.find(i + 1, "ON") {
                out.extend(self.mention(on + 1, Touch::Changes).map(|(m, _)| m));
            }
        } else if self.is(i, "DATABASE") || self.is(i, "SCHEMA") {
            self.schema(self.skip(i + 1, &["IF", "EXISTS"]), out);
        }
    }

    /// `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] t ... [LIKE s] [REFERENCES r]`,
    /// `CREATE [...] INDEX i ON t`, `CREATE [...] TRIGGER tr ... ON t`,
    /// `CREATE OR REPLACE {DATABASE|SCHEMA} s`.
    fn create(&self, out: &mut Vec<Mention>) {
        let replace = self.is(1, "OR") && self.is(2, "REPLACE");
        let temporary = self.is(self.skip(1, &["OR", "REPLACE"]), "TEMPORARY");
        // The object keyword: the first of these (DEFINER=..., UNIQUE, ALGORITHM=... come before).
        let objects = [
            "TABLE",
            "INDEX",
            "TRIGGER",
            "DATABASE",
            "SCHEMA",
            "VIEW",
            "PROCEDURE",
            "FUNCTION",
            "EVENT",
            "USER",
            "ROLE",
            "SEQUENCE",
            "SERVER",
        ];
        let Some((at, object)) = self.t.iter().enumerate().skip(1).find_map(|(k, s)| {
            objects
                .iter()
                .find(|o| s.token.is(o))
                .map(|o| (k, o.to_string()))
        }) else {
            return;
        };
        match object.as_str() {
            "TABLE" => {
                let not_exists = self.skip(at + 1, &["IF", "NOT", "EXISTS"]);
                // IF NOT EXISTS on an existing table does nothing to it.
                let touch = if not_exists > at + 1 && !replace {
                    Touch::Reads
                } else {
                    Touch::Changes
                };
                if let Some((m, body)) = self.mention(not_exists, touch) {
                    if !temporary {
                        out.push(m);
                    }
                    self.after_each(body, &["LIKE"], Touch::Reads, out);
                    self.after_each(body, &["REFERENCES"], Touch::Changes, out);
                }
            }
            "INDEX" | "TRIGGER" => {
                if let Some(on) = self.find(at + 1, "ON") {
                    out.extend(self.mention(on + 1, Touch::Changes).map(|(m, _)| m));
                }
            }
            "DATABASE" | "SCHEMA" if replace => {
                self.schema(self.skip(at + 1, &["IF", "NOT", "EXISTS"]), out)
            }
            _ => {}
        }
    }

    /// DML logged as a statement: every word in it that can name a table counts as a change.
    /// `a.b` is schema.table or table.column: both `a`.`b` and `a` count; `a.b.c` is
    /// schema.table.column.
    fn dml(&self, out: &mut Vec<Mention>) {
        let change = |schema: Option<&str>, table: &str| Mention {
            schema: schema.map(str::to_string),
            table: Some(table.to_string()),
            touch: Touch::Changes,
        };
        let mut i = 0;
        while i < self.t.len() {
            let Some(a) = self.t[i].token.ident() else {
                i += 1;
                continue;
            };
            let b = self
                .t
                .get(i + 2)
                .filter(|_| self.punct(i + 1, '.'))
                .and_then(|s| s.token.ident());
            match b {
                Some(b) if self.punct(i + 3, '.') => {
                    out.push(change(Some(a), b));
                    i += 5;
                }
                Some(b) => {
                    out.extend([change(Some(a), b), change(None, a)]);
                    i += 3;
                }
                None => {
                    out.push(change(None, a));
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT: NameCase = NameCase::Exact;

    /// How `sql`, run in schema `d`, touches `d`.`table`.
    fn touch(sql: &str, table: &str) -> Option<Touch> {
        Statement::read(sql, 0).touch("d", "d", table, EXACT)
    }

    #[test]
    fn wraiths_own_swaps_rename_the_table_away_for_every_name() {
        use crate::mysql::sql;
        for t in [
            "t",
            "my-table",
            "order items",
            "we`ird",
            "select",
            "tëst ü",
            "status",
        ] {
            let (old, ghost) = (format!("_{t}_del"), format!("_{t}_gho"));
            let gate = (format!("{t}_ghg"), format!("{t}_ghd"));
            for text in [
                sql::rename_swap("d", t, &old, &ghost),
                sql::rename_swap_gated("d", (&gate.0, &gate.1), t, &old, &ghost),
                sql::alter_rename("d", t, &old),
            ] {
                let s = Statement::read(&text, 0);
                assert!(s.tagged, "{text}");
                assert_eq!(
                    s.touch("", "d", t, EXACT),
                    Some(Touch::RenamesAway),
                    "{text}"
                );
                assert_eq!(
                    s.touch("", "d", &old, EXACT),
                    Some(Touch::Changes),
                    "{text}"
                );
            }
            // The second step of the two-step swap puts the ghost table under the name.
            let text = sql::rename_table("d", &ghost, t);
            let s = Statement::read(&text, 0);
            assert_eq!(s.touch("x", "d", t, EXACT), Some(Touch::Changes), "{text}");
            assert_eq!(s.touch("x", "d", &ghost, EXACT), Some(Touch::RenamesAway));
            // Creating the ghost table reads the original; the ghost's ALTER does not touch it.
            let text = sql::create_table_like("d", &ghost, t);
            assert_eq!(
                Statement::read(&text, 0).touch("x", "d", t, EXACT),
                Some(Touch::Reads)
            );
            let text = sql::alter_table("d", &ghost, "ADD COLUMN `status` INT, ADD INDEX t (a)");
            assert_eq!(Statement::read(&text, 0).touch("d", "d", t, EXACT), None);
        }
    }

    #[test]
    fn the_tag_counts_only_right_after_the_first_word() {
        assert!(Statement::read("RENAME /* wraith */ TABLE a TO b", 0).tagged);
        assert!(!Statement::read("RENAME TABLE a TO b /* wraith */", 0).tagged);
        assert!(!Statement::read("ALTER TABLE a COMMENT '/* wraith */'", 0).tagged);
        assert!(!Statement::read("ALTER /* wraith! */ TABLE a", 0).tagged);
    }

    #[test]
    fn ddl_on_the_table_is_found_in_every_form() {
        for sql in [
            "ALTER TABLE `my-table` ADD COLUMN c INT",
            "alter online ignore table if exists `d`.`my-table` engine=innodb",
            "ALTER TABLE x EXCHANGE PARTITION p WITH TABLE `my-table`",
            "ALTER TABLE x ADD FOREIGN KEY (a) REFERENCES `my-table` (id)",
            "DROP TABLE IF EXISTS a, `my-table`",
            "DROP /*!40005 TABLE */ `my-table` /* generated by server */",
            "TRUNCATE `my-table`",
            "TRUNCATE TABLE d.`my-table`",
            "CREATE INDEX i ON `my-table` (a)",
            "CREATE UNIQUE INDEX IF NOT EXISTS i USING BTREE ON `my-table` (a)",
            "DROP INDEX i ON `my-table`",
            "CREATE DEFINER=`root`@`%` TRIGGER tr BEFORE INSERT ON `my-table` FOR EACH ROW SET @x = 1",
            "CREATE OR REPLACE TABLE `my-table` (id INT)",
            "CREATE TABLE x (id INT, FOREIGN KEY (id) REFERENCES `my-table` (id))",
            "OPTIMIZE NO_WRITE_TO_BINLOG TABLE a, `my-table`",
            "REPAIR TABLE `my-table`",
            "DROP DATABASE d",
            "DROP SCHEMA IF EXISTS `d`",
            "CREATE OR REPLACE DATABASE d",
            "RENAME TABLE a TO `my-table`",
            "SET STATEMENT lock_wait_timeout = 1 FOR ALTER TABLE `my-table` ADD c INT",
        ] {
            assert_eq!(touch(sql, "my-table"), Some(Touch::Changes), "{sql}");
        }
        for sql in [
            "RENAME TABLE `my-table` TO b",
            "RENAME TABLE a TO b, d.`my-table` TO `my-table2`",
            "ALTER TABLE `my-table` RENAME TO b",
            "ALTER TABLE `my-table` ADD COLUMN c INT, RENAME AS b",
            "ALTER TABLE `my-table` RENAME b",
        ] {
            assert_eq!(touch(sql, "my-table"), Some(Touch::RenamesAway), "{sql}");
        }
        assert_eq!(
            touch("CREATE TABLE x LIKE `my-table`", "my-table"),
            Some(Touch::Reads)
        );
        assert_eq!(
            touch("CREATE TABLE x (LIKE `my-table`)", "my-table"),
            Some(Touch::Reads)
        );
        assert_eq!(
            touch("CREATE TABLE IF NOT EXISTS `my-table` (id INT)", "my-table"),
            Some(Touch::Reads)
        );
    }

    #[test]
    fn a_word_used_for_something_else_is_not_the_table() {
        for sql in [
            "ALTER TABLE other ADD COLUMN status INT",
            "ALTER TABLE other ADD INDEX status (status), COMMENT 'status'",
            "ALTER TABLE other RENAME COLUMN status TO status2, RENAME INDEX status TO s",
            "ALTER TABLE other CHANGE status status BIGINT",
            "CREATE TABLE other (id INT PRIMARY KEY, status INT) COMMENT 'status'",
            "CREATE INDEX status ON other (status)",
            "DROP INDEX status ON other",
            "CREATE TABLE status2 (status INT)",
            "DROP TABLE other_status",
            "RENAME TABLE other TO other_status",
            "CREATE VIEW v AS SELECT status FROM status",
            "DROP TEMPORARY TABLE IF EXISTS status",
            "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS status",
            "CREATE TEMPORARY TABLE status (id INT)",
            "DROP TRIGGER status",
            "GRANT SELECT ON d.status TO u",
            "ANALYZE TABLE status",
            "ALTER TABLE other COMMENT 'ALTER TABLE status'",
            "ALTER TABLE other -- ALTER TABLE status\n ADD c INT",
            "ALTER TABLE e.status ADD c INT",
            "DROP DATABASE e",
        ] {
            assert_eq!(touch(sql, "status"), None, "{sql}");
        }
    }

    #[test]
    fn names_are_resolved_in_the_statements_schema_or_its_qualifier() {
        let s = Statement::read("ALTER TABLE t ADD c INT", 0);
        assert_eq!(s.touch("d", "d", "t", EXACT), Some(Touch::Changes));
        assert_eq!(s.touch("e", "d", "t", EXACT), None);
        assert_eq!(s.touch("", "d", "t", EXACT), None);
        let s = Statement::read("ALTER TABLE `d`.`t` ADD c INT", 0);
        assert_eq!(s.touch("other", "d", "t", EXACT), Some(Touch::Changes));
        let s = Statement::read("ALTER TABLE `my-db`.`t` ADD c INT", 0);
        assert_eq!(s.touch("", "my-db", "t", EXACT), Some(Touch::Changes));
    }

    #[test]
    fn names_compare_as_the_server_compares_them() {
        let s = Statement::read("ALTER TABLE `App`.`MyTable` ADD c INT", 0);
        assert_eq!(s.touch("", "App", "MyTable", EXACT), Some(Touch::Changes));
        assert_eq!(s.touch("", "app", "mytable", EXACT), None);
        assert_eq!(
            s.touch("", "app", "mytable", NameCase::Folded),
            Some(Touch::Changes)
        );
        assert_eq!(
            s.touch("", "App", "MYTABLE", NameCase::Folded),
            Some(Touch::Changes)
        );
        let s = Statement::read("ALTER TABLE `Tëst Ü` ADD c INT", 0);
        assert_eq!(
            s.touch("d", "D", "tëst ü", NameCase::Folded),
            Some(Touch::Changes)
        );
    }

    #[test]
    fn the_sql_mode_decides_how_quotes_read() {
        let ansi = 0x4;
        let s = Statement::read(r#"ALTER TABLE "my-table" ADD c INT"#, ansi);
        assert_eq!(s.touch("d", "d", "my-table", EXACT), Some(Touch::Changes));
        let no_backslash_escapes = 0x10_0000;
        let text = r"ALTER TABLE other COMMENT 'C:\', ADD status INT";
        let s = Statement::read(text, no_backslash_escapes);
        assert_eq!(s.touch("d", "d", "status", EXACT), None);
    }

    #[test]
    fn dml_logged_as_a_statement_changes_every_table_it_names() {
        assert_eq!(
            touch("UPDATE `my-table` SET a = 1", "my-table"),
            Some(Touch::Changes)
        );
        assert_eq!(
            touch("INSERT INTO x SELECT * FROM d.`my-table`", "my-table"),
            Some(Touch::Changes)
        );
        assert_eq!(
            touch("DELETE FROM x WHERE status = 'status'", "status"),
            Some(Touch::Changes)
        );
        assert_eq!(touch("UPDATE x SET x.status = 1", "status"), None);
        assert_eq!(
            touch("UPDATE x SET x.status = 1", "x"),
            Some(Touch::Changes)
        );
        assert_eq!(
            touch("UPDATE d.x SET d.x.status = 1", "x"),
            Some(Touch::Changes)
        );
        assert_eq!(touch("UPDATE e.status SET a = 1", "status"), None);
        assert_eq!(touch("INSERT INTO x VALUES ('status')", "status"), None);
    }

    #[test]
    fn unreadable_text_changes_every_table_it_spells() {
        let s = Statement::read("ALTER TABLE `my-table ADD c INT", 0);
        assert_eq!(s.touch("d", "d", "my-table", EXACT), Some(Touch::Changes));
        assert_eq!(s.touch("d", "d", "other", EXACT), None);
    }
}
