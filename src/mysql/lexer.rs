//! Reading SQL text the way the server reads it: the one tokenizer of the crate (the `--alter`
//! text in `inspect::alter`, statements from the binlog in `binlog::statement`).
//!
//! In: statement text and the [`Dialect`] it was written in (the session's sql_mode). Out:
//! [`Spanned`] tokens: words, quoted identifiers (unquoted: `` `a``b` `` is `` a`b ``), strings,
//! punctuation, each with the byte range it came from. Comments are skipped, except MySQL's
//! executable comments (`/*! ... */`, `/*!50001 ... */`, MariaDB's `/*M!100301 ... */`), whose
//! content is read as statement text, whatever the version number says; [`tokenize_with_comments`]
//! also says where they are and which carry a condition (a version number, MariaDB's `M`), for a
//! reader that must refuse what only some servers run. Invariant: a word inside a string or a
//! comment never becomes a token, and a quoted identifier becomes exactly the name the server
//! sees.

use std::fmt;

/// How a session's sql_mode changes the reading of quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// `ANSI_QUOTES`: `"x"` is an identifier, not a string.
    pub ansi_quotes: bool,
    /// Backslash escapes in strings (off under `NO_BACKSLASH_ESCAPES`).
    pub backslash_escapes: bool,
}

impl Default for Dialect {
    /// The server's default: `"x"` is a string, `\'` escapes a quote.
    fn default() -> Self {
        Dialect {
            ansi_quotes: false,
            backslash_escapes: true,
        }
    }
}

impl Dialect {
    /// The dialect of a session with these sql_mode bits (as a binlog QUERY event carries them).
    pub fn from_sql_mode(bits: u64) -> Dialect {
        const ANSI_QUOTES: u64 = 0x4;
        const NO_BACKSLASH_ESCAPES: u64 = 0x10_0000;
        Dialect {
            ansi_quotes: bits & ANSI_QUOTES != 0,
            backslash_escapes: bits & NO_BACKSLASH_ESCAPES == 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word (a keyword, a name or a number) as written, or a quoted identifier without its
    /// quotes; `quoted` tells which.
    Word { text: String, quoted: bool },
    /// A string literal.
    Str,
    /// Any other character: `.`, `,`, `(`, `;`, `=`, `@`, ...
    Punct(char),
}

impl Token {
    /// The keyword this token is, upper-cased: an unquoted word.
    pub fn keyword(&self) -> Option<String> {
        match self {
            Token::Word {
                text,
                quoted: false,
            } => Some(text.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// Whether this token is the keyword `kw` (given in upper case).
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Token::Word { text, quoted: false } if text.eq_ignore_ascii_case(kw))
    }

    /// The name this token is, if it can be one: a word, quoted or not.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Token::Word { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A token and the byte range of the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub token: Token,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexError {
    /// A string, quoted identifier or comment runs to the end of the text; what it is.
    Unterminated(&'static str),
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexError::Unterminated(what) => write!(f, "unterminated {what}"),
        }
    }
}

impl std::error::Error for LexError {}

/// An executable comment: where it is and which servers run its text. MySQL runs `/*!NNNNN`
/// text only from version NNNNN on, and MariaDB skips MySQL's 5.7-and-later numbers; MariaDB
/// runs `/*M! */` text and MySQL skips it. Only a bare `/*! ... */` is run by every server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutableComment {
    /// The byte range from `/*` to the end of `*/`.
    pub start: usize,
    pub end: usize,
    /// The version number after `!`, as written.
    pub version: Option<String>,
    /// `/*M!`: MariaDB's form.
    pub mariadb_only: bool,
}

impl ExecutableComment {
    /// Whether the server's version or flavor decides if its text runs.
    pub fn conditional(&self) -> bool {
        self.version.is_some() || self.mariadb_only
    }

    /// Whether the byte at `at` is inside this comment.
    pub fn holds(&self, at: usize) -> bool {
        (self.start..self.end).contains(&at)
    }
}

/// Splits `s` into tokens as a session in `dialect` would.
pub fn tokenize(s: &str, dialect: Dialect) -> Result<Vec<Spanned>, LexError> {
    tokenize_with_comments(s, dialect).map(|(tokens, _)| tokens)
}

/// [`tokenize`], and the executable comments whose text the tokens include.
pub fn tokenize_with_comments(
    s: &str,
    dialect: Dialect,
) -> Result<(Vec<Spanned>, Vec<ExecutableComment>), LexError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut comments: Vec<ExecutableComment> = Vec::new();
    let mut i = 0;
    // Inside an executable comment: its `*/` ends it.
    let mut executable = false;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#'
            || (c == b'-'
                && b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || *c < 0x20))
        {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if executable && c == b'*' && b.get(i + 1) == Some(&b'/') {
            executable = false;
            i += 2;
            if let Some(open) = comments.last_mut() {
                open.end = i;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let rest = &b[i + 2..];
            let bang = match rest {
                [b'!', ..] => Some(1),
                [b'M', b'!', ..] => Some(2),
                _ => None,
            };
            match bang {
                Some(skip) if !executable => {
                    // `/*!50001 text */`: the text is read, the version number skipped.
                    i += 2 + skip;
                    let digits = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    executable = true;
                    comments.push(ExecutableComment {
                        start,
                        end: s.len(),
                        version: (i > digits).then(|| s[digits..i].to_string()),
                        mariadb_only: skip == 2,
                    });
                }
                _ => {
                    let end = s[i + 2..]
                        .find("*/")
                        .ok_or(LexError::Unterminated("comment"))?;
                    i += 2 + end + 2;
                }
            }
        } else if c == b'`' || (c == b'"' && dialect.ansi_quotes) {
            let (text, end) =
                quoted(s, i, c, false).ok_or(LexError::Unterminated(if c == b'`' {
                    "`quoted` identifier"
                } else {
                    "\"quoted\" identifier"
                }))?;
            i = end;
            out.push(Spanned {
                token: Token::Word { text, quoted: true },
                start,
                end,
            });
        } else if c == b'\'' || c == b'"' {
            let (_, end) = quoted(s, i, c, dialect.backslash_escapes)
                .ok_or(LexError::Unterminated("string"))?;
            i = end;
            out.push(Spanned {
                token: Token::Str,
                start,
                end,
            });
        } else if is_word_byte(c) {
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            out.push(Spanned {
                token: Token::Word {
                    text: s[start..i].to_string(),
                    quoted: false,
                },
                start,
                end: i,
            });
        } else {
            out.push(Spanned {
                token: Token::Punct(c as char),
                start,
                end: i + 1,
            });
            i += 1;
        }
    }
    if executable {
        return Err(LexError::Unterminated("executable comment"));
    }
    Ok((out, comments))
}

/// Bytes of an unquoted name or keyword: ASCII letters and digits, `_`, `$`, and every byte of a
/// character beyond ASCII.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Reads the quoted text that starts at `s[at]` (the quote `q`): a doubled quote stands for one,
/// and with `backslash`, `\` escapes the next character. Returns the text (quotes and escapes
/// removed) and the end of the quoted text; `None` if it is not closed.
fn quoted(s: &str, at: usize, q: u8, backslash: bool) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut text = String::new();
    let mut i = at + 1;
    loop {
        match *b.get(i)? {
            c if c == q && b.get(i + 1) == Some(&q) => {
                text.push(q as char);
                i += 2;
            }
            c if c == q => return Some((text, i + 1)),
            b'\\' if backslash => {
                let ch = s.get(i + 1..)?.chars().next()?;
                text.push(ch);
                i += 1 + ch.len_utf8();
            }
            _ => {
                let ch = s[i..].chars().next()?;
                text.push(ch);
                i += ch.len_utf8();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        words_in(s, Dialect::default())
    }

    /// Tokens as text: words as written (quoted ones in brackets), strings as `'…'`.
    fn words_in(s: &str, dialect: Dialect) -> Vec<String> {
        tokenize(s, dialect)
            .unwrap()
            .into_iter()
            .map(|t| match t.token {
                Token::Word {
                    text,
                    quoted: false,
                } => text,
                Token::Word { text, quoted: true } => format!("[{text}]"),
                Token::Str => "'…'".into(),
                Token::Punct(c) => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn quoted_identifiers_come_out_as_the_server_reads_them() {
        assert_eq!(
            words("ALTER TABLE `my-table`.`we``ird` ADD `tëst ü` INT"),
            [
                "ALTER",
                "TABLE",
                "[my-table]",
                ".",
                "[we`ird]",
                "ADD",
                "[tëst ü]",
                "INT"
            ]
        );
        assert_eq!(words("`a b`.c"), ["[a b]", ".", "c"]);
        assert_eq!(words("tëst_ü$1"), ["tëst_ü$1"]);
    }

    #[test]
    fn strings_hide_their_words_whatever_they_escape() {
        assert_eq!(
            words(r#"COMMENT 'it''s \' `t` -- no' x "a "" \" t" y"#),
            ["COMMENT", "'…'", "x", "'…'", "y"]
        );
    }

    #[test]
    fn comments_are_skipped_and_executable_comments_read() {
        assert_eq!(
            words("DROP /* t */ TABLE -- t\n# t\n u --x"),
            ["DROP", "TABLE", "u", "-", "-", "x"]
        );
        assert_eq!(
            words("DROP /*!40005 TEMPORARY */ TABLE /*!*/ t /*M!100301 IF EXISTS*/"),
            ["DROP", "TEMPORARY", "TABLE", "t", "IF", "EXISTS"]
        );
        assert_eq!(words("a/**/b"), ["a", "b"]);
    }

    #[test]
    fn executable_comments_are_located_with_their_version() {
        let s = "a /*!50001 b */ c /*M! d*/ /*! e */ 'f /*! g */'";
        let (tokens, comments) = tokenize_with_comments(s, Dialect::default()).unwrap();
        assert_eq!(tokens.len(), 6);
        let shown: Vec<(&str, Option<&str>, bool, bool)> = comments
            .iter()
            .map(|c| {
                (
                    &s[c.start..c.end],
                    c.version.as_deref(),
                    c.mariadb_only,
                    c.conditional(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("/*!50001 b */", Some("50001"), false, true),
                ("/*M! d*/", None, true, true),
                ("/*! e */", None, false, false),
            ]
        );
        assert!(comments[0].holds(tokens[1].start) && !comments[0].holds(tokens[2].start));
    }

    #[test]
    fn the_session_sql_mode_decides_what_quotes_mean() {
        let ansi = Dialect::from_sql_mode(0x4);
        assert_eq!(
            words_in(r#"ALTER TABLE "my-table""#, ansi),
            ["ALTER", "TABLE", "[my-table]"]
        );
        let no_backslash = Dialect::from_sql_mode(0x10_0000);
        assert!(!no_backslash.backslash_escapes && !no_backslash.ansi_quotes);
        // 'C:\' is a whole string without backslash escapes, an open one with them.
        assert_eq!(
            words_in(r"x = 'C:\' y", no_backslash),
            ["x", "=", "'…'", "y"]
        );
        assert_eq!(
            tokenize(r"x = 'C:\' y", Dialect::default()),
            Err(LexError::Unterminated("string"))
        );
    }

    #[test]
    fn unterminated_text_is_an_error() {
        for (s, what) in [
            ("a `b", "`quoted` identifier"),
            ("a 'b", "string"),
            ("a /* b", "comment"),
            ("a /*!50001 b", "executable comment"),
        ] {
            assert_eq!(
                tokenize(s, Dialect::default()),
                Err(LexError::Unterminated(what)),
                "{s}"
            );
        }
    }

    #[test]
    fn spans_point_at_the_text() {
        let s = "ALTER  `t` ;";
        let t = tokenize(s, Dialect::default()).unwrap();
        assert_eq!(&s[t[1].start..t[1].end], "`t`");
        assert_eq!(&s[t[2].start..t[2].end], ";");
    }
}
