//! How a server compares schema and table names.
//!
//! In: the server's `lower_case_table_names`. Out: [`NameCase`], which says whether two names
//! are the same table (or schema) to that server. Invariant: every comparison of a name wraith
//! was given (`--database`, `--table` and the helper tables named after it) with a name the
//! server reports (binlog table maps, statements) goes through it: exact where names are
//! case-sensitive, case-insensitive where the server folds them.

/// The rule, from `lower_case_table_names`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NameCase {
    /// 0: names are compared byte for byte (`T` and `t` are two tables).
    #[default]
    Exact,
    /// 1 (names stored in lower case) or 2 (stored as given, compared in lower case).
    Folded,
}

impl NameCase {
    /// The rule of a server with this `lower_case_table_names` value.
    pub fn from_setting(lower_case_table_names: &str) -> NameCase {
        match lower_case_table_names.trim() {
            "" | "0" => NameCase::Exact,
            _ => NameCase::Folded,
        }
    }

    /// `name` in the form two names share when they name the same table.
    pub fn key(self, name: &str) -> String {
        match self {
            NameCase::Exact => name.to_string(),
            NameCase::Folded => name.to_lowercase(),
        }
    }

    /// Whether `a` and `b` name the same table (or schema).
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            NameCase::Exact => a == b,
            NameCase::Folded => a == b || a.to_lowercase() == b.to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact_unless_the_server_folds_them() {
        let exact = NameCase::from_setting("0");
        assert!(exact.same("MyTable", "MyTable"));
        assert!(!exact.same("MyTable", "mytable"));
        for folded in ["1", "2"].map(NameCase::from_setting) {
            assert_eq!(folded, NameCase::Folded);
            assert!(folded.same("MyTable", "mytable"));
            assert!(folded.same("TËST Ü", "tëst ü"));
            assert!(!folded.same("my-table", "my_table"));
            assert_eq!(folded.key("_MyTable_ghc"), "_mytable_ghc");
        }
        assert_eq!(exact.key("_MyTable_ghc"), "_MyTable_ghc");
    }
}
