//! Reading the `--alter` text.
//!
//! In: the ALTER as the user wrote it, with or without `ALTER TABLE [db.]t`, maybe ending in `;`.
//! Out: [`Alter`]: the body to run against the ghost table, the table it names (if any), and what
//! wraith must know before it trusts the ALTER: column renames, a table rename, dropped columns,
//! a dropped primary key, the engine it sets. Invariant: the body is one statement: text with a
//! `;` before its end (outside strings, quoted names and comments) is refused, and so is an
//! executable comment that only some servers run (`/*!50700 */`, `/*M! */`), which this module
//! would read differently from the server. The server remains the judge of syntax: the body is
//! applied to the ghost table for real, and its error is shown as is. This module only needs to
//! be right about the clause shapes it recognises, and to recognise them through quoting and
//! comments (it reads the text with the crate's one tokenizer, `mysql::lexer`, in the server's
//! default dialect: the ghost table is altered in a session without ANSI_QUOTES or
//! NO_BACKSLASH_ESCAPES, `mysql::connect_ddl`). What it misses is caught after the ALTER:
//! `plan::check_built` compares the ghost table the server built with what was read here.

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
    /// `DROP PRIMARY KEY` (or `DROP INDEX|KEY|CONSTRAINT `PRIMARY``) is present.
    pub drops_primary_key: bool,
    /// The engine named by an `ENGINE [=] x` table option, as written.
    pub engine: Option<String>,
    /// A clause sets `ALGORITHM` or `LOCK` (so wraith must not add its own).
    pub names_algorithm_or_lock: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterError {
    Empty,
    Unterminated(&'static str),
    NotAnAlter(String),
    /// A `;` before the end, or inside an executable comment: a second statement.
    MultipleStatements,
    /// An executable comment whose text some servers run and others skip; its text.
    ConditionalComment(String),
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
            AlterError::MultipleStatements => write!(
                f,
                "it holds a `;` before its end (outside strings, quoted names and comments), which would make it more than one statement; wraith runs one statement, the ALTER, and nothing else. Remove the `;` and what follows it (a `;` at the very end is fine)"
            ),
            AlterError::ConditionalComment(text) => write!(
                f,
                "it holds the executable comment `{text}`, whose text some servers run and others skip (by its version number, or MariaDB only for `/*M!`), so wraith cannot know what the server will do with it. Write the clause without the comment, or in a bare `/*! ... */`"
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
    let (mut tokens, comments) =
        lexer::tokenize_with_comments(input, Dialect::default()).map_err(|e| match e {
            LexError::Unterminated(what) => AlterError::Unterminated(what),
        })?;
    if let Some(c) = comments.iter().find(|c| c.conditional()) {
        return Err(AlterError::ConditionalComment(shortened(
            &input[c.start..c.end],
        )));
    }
    let semicolon = |t: &Spanned| t.token == Token::Punct(';');
    let in_comment = |t: &Spanned| comments.iter().any(|c| c.holds(t.start));
    // The body runs to the trailing semicolons (comments before them included: an executable
    // comment's text is part of the statement), or to the end.
    let mut body_end = input.len();
    while let Some(last) = tokens.last().filter(|t| semicolon(t) && !in_comment(t)) {
        body_end = last.start;
        tokens.pop();
    }
    if tokens.iter().any(semicolon) {
        return Err(AlterError::MultipleStatements);
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
        analyse_clause(input, clause, &mut alter);
    }
    Ok(alter)
}

impl Alter {
    /// What to add to the server's refusal of the ALTER (error `code`): a syntax error in an
    /// ALTER with double-quoted text may come from names written for an ANSI_QUOTES session.
    pub fn rejection_hint(&self, code: u16) -> Option<&'static str> {
        let double_quoted = lexer::tokenize(&self.body, Dialect::default())
            .map(|tokens| {
                tokens
                    .iter()
                    .any(|t| t.token == Token::Str && self.body[t.start..].starts_with('"'))
            })
            .unwrap_or(false);
        (code == 1064 && double_quoted).then_some(
            "wraith has the server read the ALTER without ANSI_QUOTES, whatever its sql_mode, so text in double quotes is a string, not a name: quote names with backticks",
        )
    }
}

/// The first characters of `text`, for a message.
fn shortened(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The engine an `ENGINE [=] x` table option of `clause` names: at the clause's start, or
/// anywhere outside parentheses when followed by `=` (a column named `engine` is never followed
/// by `=`). A string is read as written between its quotes.
fn table_engine(input: &str, clause: &[Spanned]) -> Option<String> {
    let mut depth = 0i32;
    for (i, t) in clause.iter().enumerate() {
        match t.token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            _ if depth == 0 && t.token.is("ENGINE") => {
                let equals = matches!(clause.get(i + 1).map(|t| &t.token), Some(Token::Punct('=')));
                if !(equals || i == 0) {
                    continue;
                }
                let value = clause.get(i + 1 + usize::from(equals))?;
                return match &value.token {
                    Token::Word { text, .. } => Some(text.clone()),
                    Token::Str => Some(input[value.start + 1..value.end - 1].to_string()),
                    Token::Punct(_) => None,
                };
            }
            _ => {}
        }
    }
    None
}

fn analyse_clause(input: &str, clause: &[Spanned], alter: &mut Alter) {
    if let Some(engine) = table_engine(input, clause) {
        alter.engine = Some(engine);
    }
    let kw = |i: usize| clause.get(i).and_then(|t| t.token.keyword());
    let ident = |i: usize| {
        clause
            .get(i)
            .and_then(|t| t.token.ident())
            .map(str::to_string)
    };
    if matches!(kw(0).as_deref(), Some("ALGORITHM") | Some("LOCK")) {
        alter.names_algorithm_or_lock = true;
    }
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
                let at = if kw(2).as_deref() == Some("IF") && kw(3).as_deref() == Some("EXISTS") {
                    4
                } else {
                    2
                };
                if let (Some(from), Some("TO"), Some(to)) =
                    (ident(at), kw(at + 1).as_deref(), ident(at + 2))
                {
                    alter.renames.push(ColumnRename { from, to });
                }
            }
            Some("INDEX") | Some("KEY") => {}
            Some("TO") | Some("AS") => alter.table_rename = ident(2).or(Some(String::new())),
            _ => alter.table_rename = ident(1).or(Some(String::new())),
        },
        Some("DROP") => match kw(1).as_deref() {
            Some("PRIMARY") => alter.drops_primary_key = true,
            Some("INDEX") | Some("KEY") | Some("CONSTRAINT") => {
                let at = if kw(2).as_deref() == Some("IF") { 4 } else { 2 };
                if ident(at).is_some_and(|i| i.eq_ignore_ascii_case("PRIMARY")) {
                    alter.drops_primary_key = true;
                }
            }
            Some("FOREIGN") | Some("CHECK") | Some("PARTITION") | Some("SYSTEM") => {}
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
        let a = parse("RENAME COLUMN IF EXISTS a TO b, CHANGE COLUMN IF EXISTS c d INT").unwrap();
        assert_eq!(a.renames, vec![rename("a", "b"), rename("c", "d")]);
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
        let a = parse("ADD COLUMN c INT /*! , RENAME TO `x` */; -- done").unwrap();
        assert_eq!(a.table_rename.as_deref(), Some("x"));
        assert_eq!(a.body, "ADD COLUMN c INT /*! , RENAME TO `x` */");
        let a = parse("ADD COLUMN c INT /*! , CHANGE a b INT */").unwrap();
        assert_eq!(a.renames, vec![rename("a", "b")]);
    }

    #[test]
    fn executable_comments_that_only_some_servers_run_are_refused() {
        for body in [
            "ADD COLUMN c INT /*!50001 , RENAME TO `x` */",
            "ADD COLUMN c INT /*!80000 , CHANGE a b INT */",
            "ADD COLUMN c INT /*M! , CHANGE a b INT */",
            "ADD COLUMN c INT /*M!100301 , CHANGE a b INT */",
        ] {
            assert!(
                matches!(parse(body), Err(AlterError::ConditionalComment(_))),
                "{body}"
            );
        }
        let e = parse("ADD c INT /*!50001 , CHANGE a b INT */").unwrap_err();
        assert!(
            e.to_string().contains("`/*!50001 , CHANGE a b INT */`"),
            "{e}"
        );
    }

    #[test]
    fn a_semicolon_before_the_end_is_a_second_statement_and_refused() {
        for body in [
            "ADD COLUMN c INT; DROP TABLE app.t",
            "ADD COLUMN c INT;DROP TABLE app.t;",
            "ADD COLUMN c INT ; GRANT ALL ON *.* TO 'x'@'%'",
            "ADD COLUMN c INT /*! ; DROP TABLE app.t */",
            "ADD COLUMN c INT /*! ; */",
            "; ADD COLUMN c INT",
            "ALTER TABLE t ADD c INT; ALTER TABLE u ADD c INT",
        ] {
            assert_eq!(parse(body), Err(AlterError::MultipleStatements), "{body}");
        }
        assert!(AlterError::MultipleStatements
            .to_string()
            .contains("one statement"));
    }

    #[test]
    fn semicolons_in_strings_names_comments_and_at_the_end_are_not_statements() {
        for (body, kept) in [
            (
                "ADD c VARCHAR(3) DEFAULT ';'",
                "ADD c VARCHAR(3) DEFAULT ';'",
            ),
            ("ADD c INT COMMENT \"a;b\"", "ADD c INT COMMENT \"a;b\""),
            ("ADD `a;b` INT", "ADD `a;b` INT"),
            (
                "ADD c INT /* ; DROP TABLE t */",
                "ADD c INT /* ; DROP TABLE t */",
            ),
            (
                "ADD c INT -- ; DROP TABLE t\n",
                "ADD c INT -- ; DROP TABLE t",
            ),
            ("ADD c INT;  \n", "ADD c INT"),
            ("ADD c INT ; ; -- done", "ADD c INT"),
            (
                "ADD c INT /*! , ADD d INT */;",
                "ADD c INT /*! , ADD d INT */",
            ),
        ] {
            assert_eq!(parse(body).map(|a| a.body), Ok(kept.to_string()), "{body}");
        }
    }

    #[test]
    fn an_algorithm_or_lock_clause_is_noticed() {
        for (body, named) in [
            ("ADD c INT, ALGORITHM=COPY", true),
            ("LOCK = NONE, ADD c INT", true),
            ("ADD COLUMN algorithm INT, MODIFY lock BIGINT", false),
            ("ADD c INT", false),
        ] {
            assert_eq!(
                parse(body).unwrap().names_algorithm_or_lock,
                named,
                "{body}"
            );
        }
    }

    #[test]
    fn the_engine_a_table_option_names_is_read() {
        for (body, engine) in [
            ("ENGINE=MEMORY", Some("MEMORY")),
            ("ADD c INT, engine = BLACKHOLE", Some("BLACKHOLE")),
            ("ENGINE 'MEMORY'", Some("MEMORY")),
            ("ADD c INT, ENGINE \"Aria\"", Some("Aria")),
            ("COMMENT 'x' ENGINE=Aria ROW_FORMAT=DYNAMIC", Some("Aria")),
            ("ENGINE=InnoDB", Some("InnoDB")),
            ("ADD COLUMN engine INT, MODIFY engine BIGINT", None),
            ("ADD INDEX engine (engine), CHANGE engine motor INT", None),
            ("ADD COLUMN c INT COMMENT 'ENGINE=MEMORY'", None),
            (
                "PARTITION BY HASH (id) (PARTITION p0 ENGINE = MEMORY)",
                None,
            ),
        ] {
            assert_eq!(parse(body).unwrap().engine.as_deref(), engine, "{body}");
        }
    }

    #[test]
    fn a_double_quoted_name_rejected_by_the_server_gets_a_hint() {
        let a = parse("CHANGE \"a\" \"b\" INT").unwrap();
        assert!(a.renames.is_empty(), "double quotes are a string here");
        assert!(a.rejection_hint(1064).unwrap().contains("backticks"));
        assert_eq!(a.rejection_hint(1054), None);
        assert_eq!(
            parse("CHANGE `a\"` b INT").unwrap().rejection_hint(1064),
            None
        );
    }

    #[test]
    fn drops_are_listed() {
        let a =
            parse("DROP COLUMN a, DROP b, DROP INDEX i, DROP PRIMARY KEY, DROP COLUMN IF EXISTS c")
                .unwrap();
        assert_eq!(a.dropped_columns, vec!["a", "b", "c"]);
        assert!(a.drops_primary_key);
        for body in [
            "DROP INDEX `PRIMARY`",
            "DROP KEY IF EXISTS `primary`",
            "DROP CONSTRAINT `PRIMARY`",
        ] {
            let a = parse(body).unwrap();
            assert!(
                a.drops_primary_key && a.dropped_columns.is_empty(),
                "{body}"
            );
        }
        assert!(!parse("DROP INDEX `primary_idx`").unwrap().drops_primary_key);
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
