//! One migration per table: a named lock on the primary, held for the whole run.
//!
//! In: the primary and the table. Out: a [`TableLock`] holding `GET_LOCK(name, 0)` on a dedicated
//! connection, or a refusal naming the connection that holds it. Invariant: taken before the run
//! creates or drops anything, held until the run has cleaned up; it dies with that connection, so
//! a wraith killed without cleanup never leaves it behind (the server ends the session).
//!
//! The name is `gh-ost.<schema>.<table>` (the shape of gh-ost's socket file name
//! `gh-ost.<schema>.<table>.sock`). This is wraith's own choice: gh-ost takes no per-table lock
//! (its only named lock is the cut-over's `gh-ost.<session id>.lock`), so two wraiths exclude each
//! other, while a gh-ost running on the same table is met only by the helper tables it created.
//! MySQL refuses lock names longer than 64 characters; a longer name is shortened to
//! `gh-ost.<hash>` (a 64-bit FNV-1a of the full name, in hex).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::{info, warn};

use crate::mysql::{self, ConnectError, Credentials, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("taking the lock {name} on {primary}: {source}")]
    Sql {
        name: String,
        primary: Endpoint,
        source: mysql_async::Error,
    },
    #[error("another migration of {schema}.{table} is running: the lock {name} on {primary} is held by connection {holder}. Nothing was created or changed. Wait for that migration to end, or, if it is stuck, end it (KILL {holder} on {primary} releases the lock) and run again")]
    Held {
        schema: String,
        table: String,
        name: String,
        primary: Endpoint,
        holder: String,
    },
}

/// The lock, held while this value lives (and its connection with it).
#[derive(Debug)]
pub struct TableLock {
    name: String,
    conn: Conn,
}

/// The lock's name for `schema`.`table`.
pub fn lock_name(schema: &str, table: &str) -> String {
    let name = format!("gh-ost.{schema}.{table}");
    if name.chars().count() <= 64 {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("gh-ost.{hash:016x}")
}

/// Takes the lock for `schema`.`table` on `primary`, without waiting.
pub async fn take(
    primary: &Endpoint,
    creds: &Credentials,
    schema: &str,
    table: &str,
) -> Result<TableLock, LockError> {
    let name = lock_name(schema, table);
    let sql_err = |source| LockError::Sql {
        name: name.clone(),
        primary: primary.clone(),
        source,
    };
    let mut conn = mysql::connect(primary, creds).await?;
    // The connection idles for the whole run: the server must not close it (and drop the lock).
    conn.query_drop("SET SESSION wait_timeout = 31536000")
        .await
        .map_err(sql_err)?;
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, 0)", (&name,))
        .await
        .map_err(sql_err)?;
    if got.flatten() == Some(1) {
        info!(
            "holding the lock {name} on {primary}: no other wraith migrates this table meanwhile"
        );
        return Ok(TableLock { name, conn });
    }
    let holder: Option<Option<u64>> = conn
        .exec_first("SELECT IS_USED_LOCK(?)", (&name,))
        .await
        .map_err(sql_err)?;
    let _ = conn.disconnect().await;
    Err(LockError::Held {
        schema: schema.to_string(),
        table: table.to_string(),
        name,
        primary: primary.clone(),
        holder: holder
            .flatten()
            .map(|id| id.to_string())
            .unwrap_or_else(|| "(ended just now; run again)".into()),
    })
}

impl TableLock {
    /// Releases the lock and closes its connection.
    pub async fn release(mut self) {
        if let Err(e) = self
            .conn
            .exec_drop("DO RELEASE_LOCK(?)", (&self.name,))
            .await
        {
            warn!(
                "releasing the lock {}: {e} (the server releases it as the connection closes)",
                self.name
            );
        }
        let _ = self.conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_gh_ost_schema_table_and_fits_mysqls_limit() {
        assert_eq!(lock_name("shop", "orders"), "gh-ost.shop.orders");
        let long = lock_name(&"s".repeat(64), &"t".repeat(64));
        assert!(long.starts_with("gh-ost.") && long.len() <= 64, "{long}");
        assert_ne!(long, lock_name(&"s".repeat(64), &"u".repeat(64)));
    }
}
