//! Secondary indexes built after the copy (`--defer-secondary-indexes`), as Vitess and Spirit
//! defer them: the ghost table fills faster without them, and one index build at the end sorts
//! the rows once instead of inserting every row into every index.
//!
//! In: table definitions as `SHOW CREATE TABLE` prints them (in [`crate::verify::definition`]'s
//! comparable form, read in a session without quoting modes, so names are in backticks).
//! Out: the indexes the copy can do without ([`deferrable`]), each with the clause that builds
//! it again, and which of them a table lacks ([`missing`]).
//! Invariant: only plain secondary indexes (`KEY`: not primary, unique, full-text or spatial)
//! are deferred, and none when the table has a foreign key (which may need them). The key the
//! copy and the applier match rows on is primary or unique, so it is never deferred, and a
//! new unique key still rejects duplicates while the copy runs. The migration swaps the ghost
//! table in only once its definition is again, word for word, the one the ALTER built.

/// A plain secondary index of a table definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredIndex {
    /// Its name, unquoted.
    pub name: String,
    /// Its line of the definition, as `ALTER TABLE ... ADD` takes it: ``KEY `k` (`a`,`b`(4))``.
    pub clause: String,
}

/// The plain secondary indexes of `definition`, in its order; none if it has a foreign key.
pub fn deferrable(definition: &str) -> Vec<DeferredIndex> {
    let lines = || definition.lines().map(str::trim);
    if lines().any(|l| l.starts_with("CONSTRAINT ") && l.contains(" FOREIGN KEY ")) {
        return Vec::new();
    }
    lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("KEY ")?;
            let name = backticked(rest)?;
            Some(DeferredIndex {
                name,
                clause: line.trim_end_matches(',').to_string(),
            })
        })
        .collect()
}

/// The indexes [`deferrable`] finds in `wanted` that `current` does not have (by name).
pub fn missing(wanted: &str, current: &str) -> Vec<DeferredIndex> {
    let have = deferrable(current);
    deferrable(wanted)
        .into_iter()
        .filter(|index| !have.iter().any(|h| h.name == index.name))
        .collect()
}

/// The name in backticks at the start of `text` (a doubled backtick is one in the name).
fn backticked(text: &str) -> Option<String> {
    let mut chars = text.strip_prefix('`')?.chars().peekable();
    let mut name = String::new();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
            } else {
                return Some(name);
            }
        }
        name.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFINITION: &str = "CREATE TABLE `t` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `a` int(11) NOT NULL,
  `b` varchar(32) NOT NULL,
  `v` int(11) GENERATED ALWAYS AS (`a` * 2) VIRTUAL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `ab` (`a`,`b`),
  KEY `v_idx` (`v`),
  KEY `b_prefix` (`b`(4)) COMMENT 'KEY `x` (`y`)',
  KEY `odd``name` (`a` DESC,`id`),
  FULLTEXT KEY `ft` (`b`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1";

    #[test]
    fn plain_secondary_indexes_are_deferred_with_the_clause_that_builds_them_again() {
        let found = deferrable(DEFINITION);
        let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["v_idx", "b_prefix", "odd`name"]);
        assert_eq!(
            found[1].clause,
            "KEY `b_prefix` (`b`(4)) COMMENT 'KEY `x` (`y`)'"
        );
        assert_eq!(found[2].clause, "KEY `odd``name` (`a` DESC,`id`)");
    }

    #[test]
    fn primary_unique_full_text_and_spatial_indexes_stay() {
        let only_others = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `g` point NOT NULL,\n  `b` text,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`id`),\n  SPATIAL KEY `g` (`g`),\n  FULLTEXT KEY `b` (`b`)\n) ENGINE=InnoDB";
        assert!(deferrable(only_others).is_empty());
    }

    #[test]
    fn nothing_is_deferred_from_a_table_with_a_foreign_key() {
        let with_fk = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `p` int NOT NULL,\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `parent` (`id`)\n) ENGINE=InnoDB";
        assert!(deferrable(with_fk).is_empty());
    }

    #[test]
    fn missing_lists_the_deferred_indexes_a_table_has_not_got_back() {
        let without: String = DEFINITION
            .lines()
            .filter(|l| !l.contains("KEY `v_idx`") && !l.contains("KEY `odd"))
            .collect::<Vec<_>>()
            .join("\n");
        let names: Vec<String> = missing(DEFINITION, &without)
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["v_idx", "odd`name"]);
        assert!(missing(DEFINITION, DEFINITION).is_empty());
    }
}
