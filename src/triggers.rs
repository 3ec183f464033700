//! `--include-triggers`: the original table's triggers, carried over to the new table.
//!
//! In: the original table's triggers as `information_schema.TRIGGERS` describes them, and
//! `--trigger-suffix` / `--remove-trigger-suffix-if-exists`. Out: [`GhostTrigger`]s (the
//! `CREATE TRIGGER` statement for the ghost table under the new name, as gh-ost names it), the
//! preflight's verdict on the names, and creating or dropping them on the ghost table.
//! Invariant: the triggers exist on the ghost table only while the cut-over holds the original
//! table locked and the applier is held at the marker, and from then on only if the swap
//! happened: created any earlier, they would fire for every copied row and every change the
//! applier replays; left on a ghost table that was not swapped in, they would fire when the
//! applier resumes. At prepare time each one is created once on the empty ghost table and dropped
//! at once, so a trigger the new schema cannot hold (a dropped column named in its body) refuses
//! the run before anything is copied.
//!
//! Each trigger keeps its timing, event, order, body, `sql_mode` and, when the user may set it,
//! its definer (else the migrating user becomes the definer, as with gh-ost, and the log says so).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::mysql::sql;

/// The longest name a trigger may have.
const MAX_NAME: usize = 64;

/// One trigger of the original table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    /// `BEFORE` / `AFTER`.
    pub timing: String,
    /// `INSERT` / `UPDATE` / `DELETE`.
    pub event: String,
    /// The body, as written after `FOR EACH ROW`.
    pub statement: String,
    pub sql_mode: String,
    /// `user@host`, as `information_schema` shows it.
    pub definer: String,
}

/// A trigger as it is created on the ghost table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhostTrigger {
    pub name: String,
    /// The original trigger's `sql_mode`, set for the session that creates it.
    pub sql_mode: String,
    /// `CREATE TRIGGER ...` on the ghost table.
    pub create: String,
}

/// The triggers of `schema`.`table`, in the order they fire.
pub async fn read(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Vec<Trigger>, mysql_async::Error> {
    let rows: Vec<(String, String, String, String, String, String)> = conn
        .exec(
            "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, SQL_MODE, DEFINER \
             FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? \
             ORDER BY EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
            (schema, table),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, timing, event, statement, sql_mode, definer)| Trigger {
                name,
                timing,
                event,
                statement,
                sql_mode,
                definer,
            },
        )
        .collect())
}

/// The name a trigger gets on the new table, as gh-ost names it: `name` + suffix, or, with
/// `--remove-trigger-suffix-if-exists`, `name` without the suffix when it ends with it.
pub fn ghost_name(name: &str, suffix: &str, remove_if_exists: bool) -> String {
    match name.strip_suffix(suffix) {
        Some(stripped) if remove_if_exists && !suffix.is_empty() => stripped.to_string(),
        _ => format!("{name}{suffix}"),
    }
}

/// `user@host` as a `DEFINER` clause: `'user'@'host'`.
fn definer_clause(definer: &str) -> Option<String> {
    let (user, host) = definer.rsplit_once('@')?;
    Some(format!(
        "DEFINER = {}@{}",
        sql::quote_str(user),
        sql::quote_str(host)
    ))
}

/// The statements that create `triggers` on `schema`.`ghost` under their new names (with their
/// definer when `keep_definer`).
pub fn for_ghost(
    triggers: &[Trigger],
    schema: &str,
    ghost: &str,
    suffix: &str,
    remove_if_exists: bool,
    keep_definer: bool,
) -> Vec<GhostTrigger> {
    triggers
        .iter()
        .map(|t| {
            let name = ghost_name(&t.name, suffix, remove_if_exists);
            let definer = keep_definer
                .then(|| definer_clause(&t.definer))
                .flatten()
                .map(|d| format!("{d} "))
                .unwrap_or_default();
            GhostTrigger {
                create: format!(
                    "CREATE /* wraith */ {definer}TRIGGER {} {} {} ON {} FOR EACH ROW {}",
                    sql::qualified(schema, &name),
                    t.timing,
                    t.event,
                    sql::qualified(schema, ghost),
                    t.statement
                ),
                name,
                sql_mode: t.sql_mode.clone(),
            }
        })
        .collect()
}

/// What is wrong with the new names: too long, or taken in the schema (trigger names are unique
/// per schema). `taken` lists the schema's trigger names.
pub fn check_names(ghosts: &[GhostTrigger], taken: &[String]) -> Result<(), String> {
    let long: Vec<&str> = ghosts
        .iter()
        .filter(|g| g.name.chars().count() > MAX_NAME)
        .map(|g| g.name.as_str())
        .collect();
    if !long.is_empty() {
        return Err(format!(
            "gh-ost triggers ({}) length > {MAX_NAME} characters. Bailing out: choose a shorter --trigger-suffix",
            long.join(",")
        ));
    }
    let found: Vec<&str> = ghosts
        .iter()
        .filter(|g| taken.iter().any(|t| t.eq_ignore_ascii_case(&g.name)))
        .map(|g| g.name.as_str())
        .collect();
    if !found.is_empty() {
        return Err(format!(
            "found gh-ost triggers ({}). Please use a different suffix or drop them. Bailing out: trigger names are unique in a schema, so the new table's triggers need names of their own (--trigger-suffix)",
            found.join(",")
        ));
    }
    Ok(())
}

/// Creates `ghosts` on the ghost table, each in its own `sql_mode`, then puts the session's back.
pub async fn create(conn: &mut Conn, ghosts: &[GhostTrigger]) -> Result<(), mysql_async::Error> {
    if ghosts.is_empty() {
        return Ok(());
    }
    let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await?;
    for g in ghosts {
        conn.query_drop(format!(
            "SET SESSION sql_mode = {}",
            sql::quote_str(&g.sql_mode)
        ))
        .await?;
        conn.query_drop(&g.create).await?;
    }
    conn.query_drop(format!(
        "SET SESSION sql_mode = {}",
        sql::quote_str(&mode.unwrap_or_default())
    ))
    .await
}

/// Drops `ghosts` (those that exist).
pub async fn drop_all(
    conn: &mut Conn,
    schema: &str,
    ghosts: &[GhostTrigger],
) -> Result<(), mysql_async::Error> {
    for g in ghosts {
        conn.query_drop(format!(
            "DROP /* wraith */ TRIGGER IF EXISTS {}",
            sql::qualified(schema, &g.name)
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(name: &str) -> Trigger {
        Trigger {
            name: name.into(),
            timing: "AFTER".into(),
            event: "INSERT".into(),
            statement: "INSERT INTO audit VALUES (NEW.id)".into(),
            sql_mode: "STRICT_TRANS_TABLES".into(),
            definer: "app@%".into(),
        }
    }

    #[test]
    fn the_new_names_are_gh_osts() {
        assert_eq!(ghost_name("t_ai", "_v2", false), "t_ai_v2");
        assert_eq!(ghost_name("t_ai_v2", "_v2", false), "t_ai_v2_v2");
        assert_eq!(ghost_name("t_ai_v2", "_v2", true), "t_ai");
        assert_eq!(ghost_name("t_ai", "_v2", true), "t_ai_v2");
        assert_eq!(ghost_name("t_ai", "", true), "t_ai");
    }

    #[test]
    fn the_create_statement_keeps_timing_event_body_and_definer() {
        let g = for_ghost(&[trigger("t_ai")], "d", "_t_gho", "_v2", false, true);
        assert_eq!(
            g[0].create,
            "CREATE /* wraith */ DEFINER = 'app'@'%' TRIGGER `d`.`t_ai_v2` AFTER INSERT ON `d`.`_t_gho` FOR EACH ROW INSERT INTO audit VALUES (NEW.id)"
        );
        let g = for_ghost(&[trigger("t_ai")], "d", "_t_gho", "_v2", false, false);
        assert!(g[0]
            .create
            .starts_with("CREATE /* wraith */ TRIGGER `d`.`t_ai_v2`"));
    }

    #[test]
    fn names_too_long_or_taken_are_refused_with_gh_osts_words() {
        let g = for_ghost(&[trigger("t_ai")], "d", "_t_gho", "_v2", false, false);
        assert!(check_names(&g, &["t_ai".into()]).is_ok());
        let e = check_names(&g, &["T_AI_V2".into()]).unwrap_err();
        assert!(e.starts_with("found gh-ost triggers (t_ai_v2). Please use a different suffix"));
        let long = for_ghost(
            &[trigger(&"x".repeat(62))],
            "d",
            "_t_gho",
            "_v2",
            false,
            false,
        );
        assert!(check_names(&long, &[]).unwrap_err().contains("length > 64"));
    }
}
