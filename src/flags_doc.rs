//! The flag table of `docs/gh-ost.md`, generated from the command line so that it cannot drift.
//!
//! In: the clap definition of [`crate::cli::Flags`] (every long flag, its default and its help
//! text) and [`crate::config::NOT_IMPLEMENTED`] (what wraith does with a gh-ost flag it accepts
//! but does not act on). Out: [`markdown`], one Markdown table row per long flag:
//! `| --flag | default | what wraith does |`, where "what wraith does" is the refusal or the
//! warning for a flag listed in `NOT_IMPLEMENTED`, and the help text otherwise. Invariant: the
//! section of `docs/gh-ost.md` between `<!-- flags:begin -->` and `<!-- flags:end -->` is exactly
//! [`markdown`]; the unit test below fails when it is not, and rewrites it when run with
//! `WRAITH_BLESS=1` (`WRAITH_BLESS=1 cargo test --lib flags_doc`).

use clap::CommandFactory;

use crate::config::{Handling, NotImplemented, NOT_IMPLEMENTED};

/// The marker line that opens the generated section of `docs/gh-ost.md`.
pub const BEGIN: &str = "<!-- flags:begin -->";
/// The marker line that closes it.
pub const END: &str = "<!-- flags:end -->";

/// The flag table: a header, then one row per long flag in the order `--help` lists them.
pub fn markdown() -> String {
    let mut command = crate::cli::Flags::command();
    // Built, so that every switch shows its implicit default (`false`).
    command.build();
    let mut out = String::from("| flag | default | what wraith does |\n| --- | --- | --- |\n");
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let default = if defaults.is_empty() {
            String::new()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let does = match NOT_IMPLEMENTED.iter().find(|n| n.flag == long) {
            Some(n) => not_implemented(n),
            None => cell(&help),
        };
        out.push_str(&format!("| `--{long}` | {default} | {does} |\n"));
    }
    out
}

/// What wraith says about a flag it does not act on.
fn not_implemented(n: &NotImplemented) -> String {
    match n.handling {
        Handling::Refused => format!(
            "**Refused** (not implemented; the run stops before connecting): {}. {}.",
            cell(n.consequence),
            cell(n.instead)
        ),
        Handling::Warned => format!(
            "**Warned** (accepted, not acted on; named in a warning at start): {}.",
            cell(n.consequence)
        ),
    }
}

/// Text made safe for one Markdown table cell: one line, no column separator, no HTML, no
/// stray emphasis; code spans (between backticks) are kept as written but for `|`.
fn cell(text: &str) -> String {
    let chars: Vec<char> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let in_word = |i: usize| {
        let alnum = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        alnum(i.checked_sub(1)) && alnum(Some(i + 1))
    };
    let mut out = String::with_capacity(chars.len());
    let mut code = false;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '`' => {
                code = !code;
                out.push(c);
            }
            // GitHub's tables split on `|` even inside a code span.
            '|' => out.push_str("\\|"),
            _ if code => out.push(c),
            '*' => out.push_str("\\*"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Inside a word (`GH_OST_HOOKS_HINT`) an underscore is plain text; elsewhere
            // (`_<table>_del`) it could open or close emphasis.
            '_' if !in_word(i) => out.push_str("\\_"),
            other => out.push(other),
        }
    }
    out.trim_end_matches('.').to_string()
}

/// `doc` with the text between the markers replaced by `table`; `None` when a marker is missing.
pub fn with_table(doc: &str, table: &str) -> Option<String> {
    let start = doc.find(BEGIN)? + BEGIN.len();
    let end = start + doc[start..].find(END)?;
    Some(format!("{}\n{table}{}", &doc[..start], &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_table_in_docs_gh_ost_md_is_generated_from_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gh-ost.md");
        let doc = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let wanted = with_table(&doc, &markdown())
            .unwrap_or_else(|| panic!("{} lacks the {BEGIN} / {END} markers", path.display()));
        if wanted == doc {
            return;
        }
        if std::env::var_os("WRAITH_BLESS").is_some() {
            std::fs::write(&path, wanted)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        panic!(
            "the flag table in {} differs from the flags in the code (src/cli.rs, \
             NOT_IMPLEMENTED in src/config.rs); rewrite it with \
             `WRAITH_BLESS=1 cargo test --lib flags_doc` and commit the result",
            path.display()
        );
    }

    #[test]
    fn every_long_flag_has_one_row_and_cells_stay_in_their_column() {
        let table = markdown();
        let command = crate::cli::Flags::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let rows = table
                .lines()
                .filter(|l| l.starts_with(&format!("| `--{long}` |")))
                .count();
            assert_eq!(rows, 1, "--{long}");
        }
        for line in table.lines() {
            let separators = line.replace("\\|", "").matches('|').count();
            assert_eq!(separators, 4, "{line}");
        }
        assert!(table.contains("| `--analyze-ghost-table-before-cutover` | `false` | **Refused**"));
        assert!(table.contains("| `--gtid` | `false` | **Warned**"));
        assert!(table.contains("| `--chunk-size` | `1000` | rows per copy chunk (10..100000) |"));
    }

    #[test]
    fn cells_escape_what_markdown_would_read_as_markup() {
        assert_eq!(cell("a | b"), "a \\| b");
        assert_eq!(
            cell("_<t>_del and GH_OST_HOOKS_HINT"),
            "\\_&lt;t&gt;\\_del and GH_OST_HOOKS_HINT"
        );
        assert_eq!(cell("`ALTER TABLE <t>` x*"), "`ALTER TABLE <t>` x\\*");
        assert_eq!(cell("two\n  lines."), "two lines");
    }

    #[test]
    fn the_section_between_the_markers_is_replaced_and_the_rest_kept() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\nafter\n");
        assert_eq!(
            with_table(&doc, "new\n").unwrap(),
            format!("intro\n{BEGIN}\nnew\n{END}\nafter\n")
        );
        assert_eq!(with_table("no markers", "x"), None);
    }
}
