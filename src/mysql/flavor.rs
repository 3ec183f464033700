//! Every difference between MySQL and MariaDB that wraith cares about, in one place.
//!
//! In: `@@version` and `@@version_comment`, read once per server. Out: a [`Flavor`] that answers
//! which statement or variable name to use. Nothing else in the crate asks "is this MariaDB?".

use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::sql::quote_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MySql,
    MariaDb,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    pub kind: Kind,
    pub version: (u32, u32, u32),
    /// `@@version` as the server reports it.
    pub text: String,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        let name = match self.kind {
            Kind::MySql => "MySQL",
            Kind::MariaDb => "MariaDB",
        };
        write!(f, "{name} {a}.{b}.{c}")
    }
}

impl Flavor {
    /// Reads the version of the server behind `conn`.
    pub async fn detect(conn: &mut Conn) -> Result<Flavor, mysql_async::Error> {
        let (version, comment): (String, String) = conn
            .query_first("SELECT @@version, @@version_comment")
            .await?
            .unwrap_or_default();
        Ok(Flavor::parse(&version, &comment))
    }

    /// `10.11.6-MariaDB-0+deb12u1-log` / `8.0.36` / `5.5.5-10.6.12-MariaDB` (old replication prefix).
    pub fn parse(version: &str, comment: &str) -> Flavor {
        let mariadb = version.contains("MariaDB") || comment.contains("MariaDB");
        let text = version
            .strip_prefix("5.5.5-")
            .filter(|_| mariadb)
            .unwrap_or(version);
        let mut numbers = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let version = (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
        );
        Flavor {
            kind: if mariadb { Kind::MariaDb } else { Kind::MySql },
            version,
            text: version_text(version),
        }
    }

    fn mysql_at_least(&self, v: (u32, u32, u32)) -> bool {
        self.kind == Kind::MySql && self.version >= v
    }

    /// Refuses servers wraith does not know how to migrate on.
    pub fn check_supported(&self) -> Result<(), String> {
        let ok = match self.kind {
            Kind::MySql => self.version >= (5, 7, 0),
            Kind::MariaDb => self.version >= (10, 5, 0),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{self} is not supported; wraith supports MySQL 5.7, 8.0 and 8.4 and MariaDB 10.5 or later"
            ))
        }
    }

    /// `new` on MySQL from `version` on (the words MySQL renamed), `old` before it and on MariaDB.
    fn since(
        &self,
        version: (u32, u32, u32),
        new: &'static str,
        old: &'static str,
    ) -> &'static str {
        if self.mysql_at_least(version) {
            new
        } else {
            old
        }
    }

    /// The statements that stop and start this server's replication.
    pub fn stop_replication_sql(&self) -> &'static str {
        self.since((8, 0, 22), "STOP REPLICA", "STOP SLAVE")
    }

    pub fn start_replication_sql(&self) -> &'static str {
        self.since((8, 0, 22), "START REPLICA", "START SLAVE")
    }

    /// The statement that shows this server's replication source.
    pub fn replica_status_sql(&self) -> &'static str {
        self.since((8, 0, 22), "SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    }

    /// Column names of the replica status for (source host, source port, IO running, SQL
    /// running, seconds behind).
    pub fn replica_status_columns(&self) -> [&'static str; 5] {
        if self.mysql_at_least((8, 0, 22)) {
            [
                "Source_Host",
                "Source_Port",
                "Replica_IO_Running",
                "Replica_SQL_Running",
                "Seconds_Behind_Source",
            ]
        } else {
            [
                "Master_Host",
                "Master_Port",
                "Slave_IO_Running",
                "Slave_SQL_Running",
                "Seconds_Behind_Master",
            ]
        }
    }

    /// The statement that lists replicas registered with this server (server ids in use).
    pub fn replica_hosts_sql(&self) -> &'static str {
        self.since((8, 0, 22), "SHOW REPLICAS", "SHOW SLAVE HOSTS")
    }

    /// The statement that shows the current binlog file and position.
    pub fn binlog_status_sql(&self) -> &'static str {
        self.since((8, 2, 0), "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
    }

    /// The variable that says whether a replica writes what it replicates to its own binlog.
    pub fn log_replica_updates_variable(&self) -> &'static str {
        self.since((8, 0, 26), "log_replica_updates", "log_slave_updates")
    }

    /// The variable that makes the server compress its binlog in a form wraith does not read,
    /// if this server has one: MariaDB's `log_bin_compress` (compressed events, which the
    /// decoder cannot read) and MySQL 8.0.20+'s `binlog_transaction_compression` (a transaction
    /// as one compressed payload, which the driver decompresses whole in memory, skipping one it
    /// cannot decompress without an error).
    pub fn binlog_compression_variable(&self) -> Option<&'static str> {
        match self.kind {
            Kind::MariaDb => Some("log_bin_compress"),
            Kind::MySql if self.version >= (8, 0, 20) => Some("binlog_transaction_compression"),
            Kind::MySql => None,
        }
    }

    /// The statement that turns [`Self::binlog_compression_variable`] off.
    pub fn binlog_compression_off_sql(&self) -> Option<&'static str> {
        match self.binlog_compression_variable()? {
            "log_bin_compress" => Some("SET GLOBAL log_bin_compress=OFF"),
            _ => Some("SET GLOBAL binlog_transaction_compression=OFF"),
        }
    }

    /// The session setting that binlogs an ALTER in two parts (MariaDB 10.8+'s
    /// `binlog_alter_two_phase`): a replica with parallel replication starts it when the primary
    /// does and runs it beside its other work, instead of lagging for the whole ALTER after the
    /// primary has finished it. `None` where the server has no such setting.
    pub fn two_phase_alter_sql(&self) -> Option<&'static str> {
        (self.kind == Kind::MariaDb && self.version >= (10, 8, 1))
            .then_some("SET SESSION binlog_alter_two_phase = ON")
    }

    /// The query that reads whether the server makes transactions visible in the order it writes
    /// them to the binlog (1: it does), or `None` where it always does: MariaDB runs every
    /// engine's `commit_ordered` in binlog order; MySQL does with `binlog_order_commits` (on by
    /// default). The copy's front relies on it ([`crate::copy::CopyFront`]).
    pub fn commit_order_sql(&self) -> Option<&'static str> {
        match self.kind {
            Kind::MariaDb => None,
            Kind::MySql => Some("SELECT @@GLOBAL.binlog_order_commits"),
        }
    }

    /// MySQL 8.0's `binlog_row_value_options=PARTIAL_JSON` writes partial JSON updates.
    pub fn has_partial_json(&self) -> bool {
        self.mysql_at_least((8, 0, 3))
    }

    /// Version of the rows events in the binlog: 2 on MySQL 5.6+, 1 on MariaDB.
    pub fn rows_event_version(&self) -> u8 {
        match self.kind {
            Kind::MySql => 2,
            Kind::MariaDb => 1,
        }
    }

    /// Whether `ALTER TABLE ... ALGORITHM=INSTANT` exists.
    pub fn supports_instant_ddl(&self) -> bool {
        match self.kind {
            Kind::MySql => self.version >= (8, 0, 12),
            Kind::MariaDb => self.version >= (10, 3, 0),
        }
    }

    /// `LOCK TABLES ... NOWAIT` exists (MariaDB 10.3+): a lock request that fails at once while
    /// another session holds a table's metadata lock (an open transaction that wrote it),
    /// instead of queueing, with every later writer of the table queued behind it. MySQL has no
    /// such form, and its `lock_wait_timeout` is at least one second.
    pub fn lock_tables_nowait(&self) -> bool {
        self.kind == Kind::MariaDb && self.version >= (10, 3, 0)
    }

    /// `RENAME TABLE` is allowed under `LOCK TABLES` when every table involved is write-locked
    /// (MySQL 8.0.13+), which closes the cut-over race described in docs/mysql-notes.md.
    pub fn rename_under_lock_tables(&self) -> bool {
        self.mysql_at_least((8, 0, 13))
    }

    /// A query whose one value is 1 once connection `rename_id`, running the cut-over's RENAME
    /// of `schema`.`table`, has got past every lock it takes before the one on `table`: `before`
    /// names the rename's other tables whose locks it takes first (a statement takes its
    /// metadata locks in key order: `cutover::locked_before`).
    ///
    /// MySQL's `performance_schema.metadata_locks` shows the pending lock on `table` itself.
    /// MariaDB's `METADATA_LOCK_INFO` shows granted locks only: the RENAME must hold an exclusive
    /// lock on every name of `before` (none to hold when `table` comes first); the caller must
    /// then see it waiting, in a later query, to know it waits on `table`, the next lock.
    pub fn rename_queued_on_original_sql(
        &self,
        rename_id: u64,
        schema: &str,
        table: &str,
        before: &[&str],
    ) -> String {
        match self.kind {
            Kind::MySql => format!(
                "SELECT COUNT(*) > 0 FROM performance_schema.metadata_locks ml \
                 JOIN performance_schema.threads th ON ml.OWNER_THREAD_ID = th.THREAD_ID \
                 WHERE th.PROCESSLIST_ID = {rename_id} AND ml.OBJECT_SCHEMA = {} \
                 AND ml.OBJECT_NAME = {} AND ml.LOCK_STATUS = 'PENDING'",
                quote_str(schema),
                quote_str(table)
            ),
            Kind::MariaDb if before.is_empty() => "SELECT 1".to_string(),
            Kind::MariaDb => {
                let names: Vec<String> = before.iter().map(|n| quote_str(n)).collect();
                format!(
                    "SELECT COUNT(DISTINCT TABLE_NAME) = {} FROM information_schema.METADATA_LOCK_INFO \
                     WHERE THREAD_ID = {rename_id} AND TABLE_SCHEMA = {} AND TABLE_NAME IN ({}) \
                     AND LOCK_MODE LIKE '%EXCLUSIVE%'",
                    names.len(),
                    quote_str(schema),
                    names.join(", ")
                )
            }
        }
    }

    /// A query that tells whether the lock instrumentation [`Self::rename_queued_on_original_sql`]
    /// needs is available (one row when it is).
    pub fn metadata_lock_instrument_sql(&self) -> &'static str {
        match self.kind {
            Kind::MySql => {
                "SELECT 1 FROM performance_schema.setup_instruments WHERE NAME = 'wait/lock/metadata/sql/mdl' AND ENABLED = 'YES'"
            }
            Kind::MariaDb => {
                "SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'"
            }
        }
    }

    /// The statement that turns the instrumentation on (`--allow-setup-metadata-lock-instruments`).
    pub fn metadata_lock_instrument_setup_sql(&self) -> &'static str {
        match self.kind {
            Kind::MySql => {
                "UPDATE performance_schema.setup_instruments SET ENABLED = 'YES' WHERE NAME = 'wait/lock/metadata/sql/mdl'"
            }
            Kind::MariaDb => "INSTALL SONAME 'metadata_lock_info'",
        }
    }

    /// Session statements a binlog dump connection needs before `COM_BINLOG_DUMP`: MariaDB sends
    /// events an old replica would understand (or none) unless told the replica's capability,
    /// and checksummed events only when the replica announces the server's checksum.
    pub fn binlog_dump_session(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::MySql => &[],
            Kind::MariaDb => &[
                "SET @mariadb_slave_capability = 4",
                "SET @master_binlog_checksum = @@global.binlog_checksum",
            ],
        }
    }

    /// GTID sets look like `uuid:1-5` on MySQL and `domain-server-seq` on MariaDB.
    pub fn gtid_position_variable(&self) -> &'static str {
        match self.kind {
            Kind::MySql => "gtid_executed",
            Kind::MariaDb => "gtid_binlog_pos",
        }
    }

    /// A query for [`Self::gtid_position_variable`]: every transaction this server has written
    /// to its binlog (on a replica with `log_slave_updates`, those it applied too), in the form
    /// [`Self::wait_for_gtids_sql`] takes.
    pub fn gtid_position_sql(&self) -> &'static str {
        match self.kind {
            Kind::MySql => "SELECT @@GLOBAL.gtid_executed",
            Kind::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
        }
    }

    /// A query that waits, on a replica, until it has applied every transaction of a position
    /// its source gave with [`Self::gtid_position_sql`] (the first parameter), for at most the
    /// second parameter in seconds. It returns 0 once they are applied; anything else (1 on
    /// MySQL, -1 on MariaDB, or NULL) means they were not.
    pub fn wait_for_gtids_sql(&self) -> &'static str {
        match self.kind {
            Kind::MySql => "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
            Kind::MariaDb => "SELECT MASTER_GTID_WAIT(?, ?)",
        }
    }

    /// A query for how the GTIDs of transactions written on this server begin, as wraith's
    /// streamer spells them: `<server uuid>:` on MySQL (untagged), `<domain>-<server id>-` on
    /// MariaDB.
    pub fn own_gtid_prefix_sql(&self) -> &'static str {
        match self.kind {
            Kind::MySql => "SELECT CONCAT(@@GLOBAL.server_uuid, ':')",
            Kind::MariaDb => "SELECT CONCAT(@@GLOBAL.gtid_domain_id, '-', @@GLOBAL.server_id, '-')",
        }
    }

    /// The statement that makes this server a replica of `host`:`port`, finding its place in
    /// the source's binlog by GTIDs (MySQL's auto-positioning, MariaDB's `slave_pos`) and
    /// retrying a lost connection every second. [`Self::start_replication_sql`] starts it.
    /// MySQL 8 asks for the source's RSA key, so a password travels without TLS.
    pub fn replicate_from_sql(&self, host: &str, port: u16, user: &str, password: &str) -> String {
        let (host, user, password) = (quote_str(host), quote_str(user), quote_str(password));
        match self.kind {
            Kind::MySql if self.version >= (8, 0, 23) => format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST={host}, SOURCE_PORT={port}, \
                 SOURCE_USER={user}, SOURCE_PASSWORD={password}, SOURCE_AUTO_POSITION=1, \
                 SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1"
            ),
            Kind::MySql => format!(
                "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={password}, MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1{}",
                if self.version >= (8, 0, 4) {
                    ", GET_MASTER_PUBLIC_KEY=1"
                } else {
                    ""
                }
            ),
            Kind::MariaDb => format!(
                "CHANGE MASTER TO MASTER_HOST={host}, MASTER_PORT={port}, MASTER_USER={user}, \
                 MASTER_PASSWORD={password}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
            ),
        }
    }

    /// Statements that make a replica with no history of its own skip what its source wrote up
    /// to `position` (read there with [`Self::gtid_position_sql`]): after
    /// [`Self::replicate_from_sql`] it replicates only what comes later. On MySQL this empties
    /// the replica's own binlog first.
    pub fn skip_to_gtids_sql(&self, position: &str) -> Vec<String> {
        // MySQL writes a line break after each comma of a GTID set.
        let position = quote_str(&position.split_whitespace().collect::<String>());
        match self.kind {
            Kind::MySql => vec![
                self.since((8, 2, 0), "RESET BINARY LOGS AND GTIDS", "RESET MASTER")
                    .to_string(),
                format!("SET GLOBAL gtid_purged = {position}"),
            ],
            Kind::MariaDb => vec![format!("SET GLOBAL gtid_slave_pos = {position}")],
        }
    }
}

fn version_text(v: (u32, u32, u32)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_flavors_are_recognised() {
        let m = Flavor::parse("10.11.6-MariaDB-0+deb12u1-log", "Debian 12");
        assert_eq!((m.kind, m.version), (Kind::MariaDb, (10, 11, 6)));
        let m = Flavor::parse("5.5.5-10.6.12-MariaDB", "");
        assert_eq!((m.kind, m.version), (Kind::MariaDb, (10, 6, 12)));
        let m = Flavor::parse("8.0.36", "MySQL Community Server - GPL");
        assert_eq!((m.kind, m.version), (Kind::MySql, (8, 0, 36)));
        let m = Flavor::parse("5.7.44-log", "MySQL Community Server (GPL)");
        assert_eq!((m.kind, m.version), (Kind::MySql, (5, 7, 44)));
        assert_eq!(m.to_string(), "MySQL 5.7.44");
    }

    #[test]
    fn the_rename_proof_asks_for_the_locks_before_the_table_or_the_pending_one_on_it() {
        let maria = Flavor::parse("10.11.6-MariaDB", "");
        let sql = maria.rename_queued_on_original_sql(42, "d", "t", &["_t_del", "_t_gho"]);
        assert!(
            sql.starts_with("SELECT COUNT(DISTINCT TABLE_NAME) = 2 "),
            "{sql}"
        );
        assert!(
            sql.contains("THREAD_ID = 42 AND TABLE_SCHEMA = 'd'"),
            "{sql}"
        );
        assert!(sql.contains("TABLE_NAME IN ('_t_del', '_t_gho')"), "{sql}");
        // The table comes first: nothing to hold before it, only the wait to see.
        assert_eq!(
            maria.rename_queued_on_original_sql(42, "d", "Orders", &[]),
            "SELECT 1"
        );
        let mysql = Flavor::parse("8.0.36", "");
        let sql = mysql.rename_queued_on_original_sql(42, "d", "it's", &[]);
        assert!(sql.contains("th.PROCESSLIST_ID = 42"), "{sql}");
        assert!(
            sql.contains("ml.OBJECT_NAME = 'it''s' AND ml.LOCK_STATUS = 'PENDING'"),
            "{sql}"
        );
    }

    #[test]
    fn replica_status_statement_follows_the_version() {
        let old = Flavor::parse("8.0.21", "");
        let new = Flavor::parse("8.0.22", "");
        let lts = Flavor::parse("8.4.2", "");
        let maria = Flavor::parse("11.4.2-MariaDB", "");
        assert_eq!(old.replica_status_sql(), "SHOW SLAVE STATUS");
        assert_eq!(new.replica_status_sql(), "SHOW REPLICA STATUS");
        assert_eq!(maria.replica_status_sql(), "SHOW SLAVE STATUS");
        assert_eq!(new.replica_status_columns()[0], "Source_Host");
        assert_eq!(maria.replica_status_columns()[0], "Master_Host");
        assert_eq!(lts.binlog_status_sql(), "SHOW BINARY LOG STATUS");
        assert_eq!(new.binlog_status_sql(), "SHOW MASTER STATUS");
        assert_eq!(lts.log_replica_updates_variable(), "log_replica_updates");
        assert_eq!(
            Flavor::parse("5.7.1", "").log_replica_updates_variable(),
            "log_slave_updates"
        );
        assert_eq!(maria.log_replica_updates_variable(), "log_slave_updates");
        assert_eq!(lts.replica_hosts_sql(), "SHOW REPLICAS");
    }

    #[test]
    fn only_mariadb_10_8_and_later_binlogs_an_alter_in_two_phases() {
        let two_phase = |v: &str| Flavor::parse(v, "").two_phase_alter_sql().is_some();
        assert!(two_phase("10.11.6-MariaDB"));
        assert!(two_phase("10.8.1-MariaDB"));
        assert!(!two_phase("10.6.16-MariaDB"));
        assert!(!two_phase("8.0.36"));
        assert!(!two_phase("8.4.2"));
    }

    #[test]
    fn only_mysql_8_0_13_and_later_renames_under_lock_tables() {
        assert!(!Flavor::parse("10.11.6-MariaDB", "").rename_under_lock_tables());
        assert!(Flavor::parse("10.11.6-MariaDB", "").lock_tables_nowait());
        assert!(!Flavor::parse("10.2.44-MariaDB", "").lock_tables_nowait());
        assert!(!Flavor::parse("8.4.0", "").lock_tables_nowait());
        assert!(!Flavor::parse("8.0.12", "").rename_under_lock_tables());
        assert!(Flavor::parse("8.0.13", "").rename_under_lock_tables());
        assert!(Flavor::parse("8.4.0", "").rename_under_lock_tables());
    }

    #[test]
    fn each_flavor_names_its_own_binlog_compression() {
        let maria = Flavor::parse("10.11.6-MariaDB", "");
        assert_eq!(
            maria.binlog_compression_variable(),
            Some("log_bin_compress")
        );
        assert_eq!(
            maria.binlog_compression_off_sql(),
            Some("SET GLOBAL log_bin_compress=OFF")
        );
        let mysql = Flavor::parse("8.0.36", "");
        assert_eq!(
            mysql.binlog_compression_variable(),
            Some("binlog_transaction_compression")
        );
        assert_eq!(
            mysql.binlog_compression_off_sql(),
            Some("SET GLOBAL binlog_transaction_compression=OFF")
        );
        assert_eq!(
            Flavor::parse("8.0.19", "").binlog_compression_variable(),
            None
        );
        assert_eq!(
            Flavor::parse("5.7.44", "").binlog_compression_off_sql(),
            None
        );
    }

    #[test]
    fn a_replica_waits_for_its_sources_gtids_in_its_own_words() {
        let mysql = Flavor::parse("8.4.2", "");
        let maria = Flavor::parse("11.4.2-MariaDB", "");
        assert_eq!(mysql.gtid_position_sql(), "SELECT @@GLOBAL.gtid_executed");
        assert_eq!(maria.gtid_position_sql(), "SELECT @@GLOBAL.gtid_binlog_pos");
        for f in [&mysql, &maria] {
            assert!(f.gtid_position_sql().ends_with(f.gtid_position_variable()));
        }
        assert_eq!(
            mysql.wait_for_gtids_sql(),
            "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)"
        );
        assert_eq!(
            Flavor::parse("5.7.44", "").wait_for_gtids_sql(),
            "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)"
        );
        assert_eq!(maria.wait_for_gtids_sql(), "SELECT MASTER_GTID_WAIT(?, ?)");
        assert_eq!(
            mysql.own_gtid_prefix_sql(),
            "SELECT CONCAT(@@GLOBAL.server_uuid, ':')"
        );
        assert_eq!(
            maria.own_gtid_prefix_sql(),
            "SELECT CONCAT(@@GLOBAL.gtid_domain_id, '-', @@GLOBAL.server_id, '-')"
        );
    }

    #[test]
    fn a_replica_is_attached_by_gtid_in_each_servers_words() {
        let attach = |version: &str| {
            Flavor::parse(version, "").replicate_from_sql("127.0.0.1", 3306, "root", "it's")
        };
        assert_eq!(
            attach("8.4.2"),
            "CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=3306, \
             SOURCE_USER='root', SOURCE_PASSWORD='it''s', SOURCE_AUTO_POSITION=1, \
             SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1"
        );
        assert!(attach("8.0.23").starts_with("CHANGE REPLICATION SOURCE TO SOURCE_HOST="));
        assert_eq!(
            attach("8.0.22"),
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3306, MASTER_USER='root', \
             MASTER_PASSWORD='it''s', MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1, \
             GET_MASTER_PUBLIC_KEY=1"
        );
        assert!(attach("5.7.44").ends_with("MASTER_AUTO_POSITION=1, MASTER_CONNECT_RETRY=1"));
        assert_eq!(
            attach("11.4.2-MariaDB"),
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3306, MASTER_USER='root', \
             MASTER_PASSWORD='it''s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
        );
    }

    #[test]
    fn a_new_replica_skips_its_sources_history_in_each_servers_words() {
        let mysql_set =
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9";
        assert_eq!(
            Flavor::parse("8.4.2", "").skip_to_gtids_sql(mysql_set),
            [
                "RESET BINARY LOGS AND GTIDS".to_string(),
                "SET GLOBAL gtid_purged = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9'".into(),
            ]
        );
        assert_eq!(
            Flavor::parse("8.0.36", "").skip_to_gtids_sql("u:1-5")[0],
            "RESET MASTER"
        );
        assert_eq!(
            Flavor::parse("10.11.6-MariaDB", "").skip_to_gtids_sql("0-1-42"),
            ["SET GLOBAL gtid_slave_pos = '0-1-42'".to_string()]
        );
    }

    #[test]
    fn old_servers_are_refused() {
        assert!(Flavor::parse("5.6.51", "").check_supported().is_err());
        assert!(Flavor::parse("10.4.30-MariaDB", "")
            .check_supported()
            .is_err());
        assert!(Flavor::parse("10.6.1-MariaDB", "")
            .check_supported()
            .is_ok());
        assert!(Flavor::parse("5.7.10", "").check_supported().is_ok());
    }
}
