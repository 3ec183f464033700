//! Reading the `--alter` text.
//!
//! In: the ALTER as the user wrote it, with or without `ALTER TABLE [db.]t`, maybe ending in `;`.
//! Out: [`Alter`]: the body to run against the ghost table, the table it names (if any), and what
//! wraith must know before it trusts the ALTER: column renames, a table rename, dropped columns,
//! a dropped primary key. The server remains the judge of syntax: the body is applied to the
//! ghost table for real, and its error is shown as is. This module only needs to be right about
//! the clause shapes it recognises, and to recognise them through quoting and comments (it reads
//! the text with the crate's one tokenizer, `mysql::lexer`, in the server's default dialect:
//! the ghost table is altered in a session without ANSI_QUOTES or NO_BACKSLASH_ESCAPES).

use std::fmt;

use crate::mysql::lexer::{self, Dialect, LexError, Spanned, Token};

/// What a rename detection found: `from` in the original table becomes `to` in the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRename {
    pub from: String,
    pub to: String,
}

/// The analysed ALTER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alter {
    /// The ALTER body, without `ALTER TABLE t` and the trailing `;`.
    pub body: String,
    /// `db` of `ALTER TABLE db.t`, when written.
    pub schema: Option<String>,
    /// `t` of `ALTER TABLE t`, when written.
    pub table: Option<String>,
    /// `CHANGE [COLUMN] a b` with `a != b`, and `RENAME COLUMN a TO b`.
    pub renames: Vec<ColumnRename>,
    /// The clause that renames the table (`RENAME [TO|AS] x`), if any.
    pub table_rename: Option<String>,
    /// Columns named in `DROP [COLUMN] x`.
    pub dropped_columns: Vec<String>,
    /// `DROP PRIMARY KEY` is present.
    pub drops_primary_key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterError {
    Empty,
    Unterminated(&'static str),
    NotAnAlter(String),
}

impl fmt::Display for AlterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlterError::Empty => write!(
                f,
                "--alter is empty: give the change, e.g. --alter=\"ADD COLUMN c INT\""
            ),
            AlterError::Unterminated(what) => write!(f, "--alter has an unterminated {what}"),
            AlterError::NotAnAlter(first) => write!(
                f,
                "--alter must be an ALTER TABLE statement or its body, not a `{first}` statement"
            ),
        }
    }
}

impl std::error::Error for AlterError {}

/// Splits the tokens into top-level comma-separated clauses.
fn clauses(tokens: &[Spanned]) -> Vec<&[Spanned]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut begin = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                out.push(&tokens[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tokens[begin..]);
    out.into_iter().filter(|c| !c.is_empty()).collect()
}

/// Analyses the `--alter` text.
pub fn parse(input: &str) -> Result<Alter, AlterError> {
    let mut tokens = lexer::tokenize(input, Dialect::default()).map_err(|e| match e {
        LexError::Unterminated(what) => AlterError::Unterminated(what),
    })?;
    // The body runs to the trailing semicolons (comments before them included: an executable
    // comment's text is part of the statement), or to the end.
    let mut body_end = input.len();
    while let Some(last) = tokens.last().filter(|t| t.token == Token::Punct(';')) {
        body_end = last.start;
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(AlterError::Empty);
    }
    let mut alter = Alter::default();
    let mut rest: &[Spanned] = &tokens;
    if rest[0].token.keyword().as_deref() == Some("ALTER") {
        // ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] [db.]t
        let mut i = 1;
        while let Some(k) = rest.get(i).and_then(|t| t.token.keyword()) {
            if k == "ONLINE" || k == "IGNORE" {
                i += 1;
            } else {
                break;
            }
        }
        if rest.get(i).and_then(|t| t.token.keyword()).as_deref() != Some("TABLE") {
            return Err(AlterError::NotAnAlter("ALTER (not TABLE)".into()));
        }
        i += 1;
        if rest.get(i).and_then(|t| t.token.keyword()).as_deref() == Some("IF")
            && rest.get(i + 1).and_then(|t| t.token.keyword()).as_deref() == Some("EXISTS")
        {
            i += 2;
        }
        let first = rest
            .get(i)
            .and_then(|t| t.token.ident())
            .map(str::to_string);
        if matches!(rest.get(i + 1).map(|t| &t.token), Some(Token::Punct('.'))) {
            alter.schema = first;
            alter.table = rest
                .get(i + 2)
                .and_then(|t| t.token.ident())
                .map(str::to_string);
            i += 3;
        } else {
            alter.table = first;
            i += 1;
        }
        rest = &rest[i.min(rest.len())..];
    } else if let Some(k) = rest[0].token.keyword() {
        if [
            "CREATE", "DROP", "RENAME", "TRUNCATE", "INSERT", "UPDATE", "DELETE", "SELECT",
        ]
        .contains(&k.as_str())
            && rest.get(1).and_then(|t| t.token.keyword()).as_deref() == Some("TABLE")
        {
            return Err(AlterError::NotAnAlter(format!("{k} TABLE")));
        }
    }
    if rest.is_empty() {
        return Err(AlterError::Empty);
    }
    alter.body = input[rest[0].start..body_end].trim().to_string();

    for clause in clauses(rest) {
        analyse_clause(clause, &mut alter);
    }
    Ok(alter)
}

fn analyse_clause(clause: &[Spanned], alter: &mut Alter) {
    let kw = |i: usize| clause.get(i).and_then(|t| t.token.keyword());
    let ident = |i: usize| {
        clause
            .get(i)
            .and_then(|t| t.token.ident())
            .map(str::to_string)
    };
    match kw(0).as_deref() {
        Some("CHANGE") => {
            let at = if kw(1).as_deref() == Some("COLUMN") {
                2
            } else {
                1
            };
            let at = if kw(at).as_deref() == Some("IF") && kw(at + 1).as_deref() == Some("EXISTS") {
                at + 2
            } else {
                at
            };
            if let (Some(from), Some(to)) = (ident(at), ident(at + 1)) {
                if !from.eq_ignore_ascii_case(&to) {
                    alter.renames.push(ColumnRename { from, to });
                }
            }
        }
        Some("RENAME") => match kw(1).as_deref() {
            Some("COLUMN") => {
                if let (Some(from), Some("TO"), Some(to)) = (ident(2), kw(3).as_deref(), ident(4)) {
                    alter.renames.push(ColumnRename { from, to });
                }
            }
            Some("INDEX") | Some("KEY") => {}
            Some("TO") | Some("AS") => alter.table_rename = ident(2).or(Some(String::new())),
            _ => alter.table_rename = ident(1).or(Some(String::new())),
        },
        Some("DROP") => match kw(1).as_deref() {
            Some("PRIMARY") => alter.drops_primary_key = true,
            Some("INDEX") | Some("KEY") | Some("FOREIGN") | Some("CHECK") | Some("CONSTRAINT")
            | Some("PARTITION") | Some("SYSTEM") => {}
            Some("COLUMN") => {
                let at = if kw(2).as_deref() == Some("IF") { 4 } else { 2 };
                if let Some(c) = ident(at) {
                    alter.dropped_columns.push(c);
                }
            }
            _ => {
                let at = if kw(1).as_deref() == Some("IF") { 3 } else { 1 };
                if let Some(c) = ident(at) {
                    alter.dropped_columns.push(c);
                }
            }
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename(from: &str, to: &str) -> ColumnRename {
        ColumnRename {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_bare_body_is_kept_as_written() {
        let a = parse("ADD COLUMN c INT NOT NULL DEFAULT 0").unwrap();
        assert_eq!(a.body, "ADD COLUMN c INT NOT NULL DEFAULT 0");
        assert_eq!(a.table, None);
        assert!(a.renames.is_empty() && a.table_rename.is_none());
    }

    #[test]
    fn the_alter_table_prefix_and_semicolon_are_stripped() {
        let a = parse("ALTER TABLE `app`.`orders` ADD COLUMN c INT;").unwrap();
        assert_eq!(a.schema.as_deref(), Some("app"));
        assert_eq!(a.table.as_deref(), Some("orders"));
        assert_eq!(a.body, "ADD COLUMN c INT");
        let a = parse("alter online table orders engine=innodb ;;").unwrap();
        assert_eq!(a.table.as_deref(), Some("orders"));
        assert_eq!(a.body, "engine=innodb");
    }

    #[test]
    fn change_column_with_a_new_name_is_a_rename() {
        let a = parse("CHANGE COLUMN a b INT, CHANGE `c` `c` BIGINT, change d D int").unwrap();
        assert_eq!(a.renames, vec![rename("a", "b")]);
    }

    #[test]
    fn rename_column_is_a_rename() {
        let a = parse("RENAME COLUMN `old name` TO new_name").unwrap();
        assert_eq!(a.renames, vec![rename("old name", "new_name")]);
        assert!(a.table_rename.is_none());
    }

    #[test]
    fn renaming_the_table_is_detected_in_every_form() {
        for body in [
            "RENAME TO x",
            "RENAME AS x",
            "RENAME x",
            "ADD COLUMN c INT, rename to `x`",
        ] {
            assert_eq!(
                parse(body).unwrap().table_rename.as_deref(),
                Some("x"),
                "{body}"
            );
        }
        assert!(parse("RENAME INDEX a TO b").unwrap().table_rename.is_none());
    }

    #[test]
    fn words_inside_strings_comments_and_parentheses_are_not_clauses() {
        let a = parse(
            "ADD COLUMN note VARCHAR(10) DEFAULT 'x, RENAME TO y' COMMENT \"change a b\" /* , RENAME TO z */, \
             ADD COLUMN g INT AS (IF(1, 2, 3)) -- , rename to w\n",
        )
        .unwrap();
        assert!(a.table_rename.is_none(), "{a:?}");
        assert!(a.renames.is_empty(), "{a:?}");
    }

    #[test]
    fn executable_comments_are_read_and_kept_in_the_body() {
        let a = parse("ADD COLUMN c INT /*!50001 , RENAME TO `x` */; -- done").unwrap();
        assert_eq!(a.table_rename.as_deref(), Some("x"));
        assert_eq!(a.body, "ADD COLUMN c INT /*!50001 , RENAME TO `x` */");
    }

    #[test]
    fn drops_are_listed() {
        let a =
            parse("DROP COLUMN a, DROP b, DROP INDEX i, DROP PRIMARY KEY, DROP COLUMN IF EXISTS c")
                .unwrap();
        assert_eq!(a.dropped_columns, vec!["a", "b", "c"]);
        assert!(a.drops_primary_key);
    }

    #[test]
    fn empty_and_non_alter_statements_are_refused() {
        assert_eq!(parse("  ; "), Err(AlterError::Empty));
        assert_eq!(parse("ALTER TABLE t"), Err(AlterError::Empty));
        assert!(matches!(
            parse("DROP TABLE t"),
            Err(AlterError::NotAnAlter(_))
        ));
        assert!(matches!(
            parse("ADD COLUMN c VARCHAR(3) DEFAULT 'x"),
            Err(AlterError::Unterminated(_))
        ));
    }
}
