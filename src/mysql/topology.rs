//! Where the binlog is read and where the ghost table is written.
//!
//! In: the server wraith was pointed at (`--host`, normally a replica) and the topology flags.
//! Out: the primary to write ([`resolve_primary`]), from the inspected server's replica status.
//! By default wraith reads a replica and writes the primary it replicates from;
//! `--allow-on-master` reads and writes the primary; `--assume-master-host` names the primary
//! instead of asking the replica.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::{Endpoint, Flavor};

/// What a replica says about its replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub source: Endpoint,
    pub io_running: bool,
    pub sql_running: bool,
    pub seconds_behind: Option<u64>,
}

/// Reads the replica status of the server behind `conn`; `None` if it is not a replica.
pub async fn replica_status(
    conn: &mut Conn,
    flavor: &Flavor,
) -> Result<Option<ReplicaStatus>, mysql_async::Error> {
    let rows: Vec<Row> = conn.query(flavor.replica_status_sql()).await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let [host, port, io, sql, behind] = flavor.replica_status_columns();
    let text = |name: &str| -> Option<String> {
        row.get_opt::<Option<String>, _>(name)
            .and_then(|r| r.ok())
            .flatten()
    };
    let host = text(host).unwrap_or_default();
    if host.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReplicaStatus {
        source: Endpoint {
            host,
            port: text(port).and_then(|p| p.parse().ok()).unwrap_or(3306),
        },
        io_running: text(io).as_deref() == Some("Yes"),
        sql_running: text(sql).as_deref() == Some("Yes"),
        seconds_behind: text(behind).and_then(|s| s.parse().ok()),
    }))
}

/// Why the primary could not be determined. The first sentences of `NotAReplica` and
/// `MasterMaster` are gh-ost's (`go/logic/migrator.go`, `initiateInspector`;
/// `go/mysql/utils.go`, `GetMasterConnectionConfigSafe`), as gh-ost 1.1.x prints them, for
/// scripts that grep them; wraith's explanation follows.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("It seems like this migration attempt to run directly on master. Preferably it would be executed on a replica (and this reduces load from the master). To proceed please provide --allow-on-master. {0} is not a replica (its replica status is empty), and wraith reads a replica's binlog by default; to name the primary instead, use --assume-master-host")]
    NotAReplica(Endpoint),
    #[error("There seems to be a master-master setup at {1}. This is unsupported. Bailing out: {0} replicates from {1}, which replicates back from it. Pass --allow-master-master together with --assume-master-host=<the master to write>")]
    MasterMaster(Endpoint, Endpoint),
    #[error("--assume-master-host={0} is not host or host:port")]
    BadAssumedHost(String),
    #[error("{0} is a replica; --allow-on-master expects --host to be the primary. Point --host at the primary, or drop --allow-on-master to read this replica")]
    OnMasterButReplica(Endpoint),
    #[error("reading replica status: {0}")]
    Sql(#[from] mysql_async::Error),
}

/// Determines the primary for a migration that reads `inspected`.
///
/// `status_of` reads the replica status of another server (used to walk up chained replicas and
/// detect master-master); it is only called for servers other than `inspected`.
pub async fn resolve_primary<F, Fut>(
    inspected: &Endpoint,
    inspected_status: Option<ReplicaStatus>,
    assume_master_host: Option<&str>,
    allow_on_master: bool,
    allow_master_master: bool,
    mut status_of: F,
) -> Result<Endpoint, TopologyError>
where
    F: FnMut(Endpoint) -> Fut,
    Fut: std::future::Future<Output = Result<Option<ReplicaStatus>, mysql_async::Error>>,
{
    if let Some(text) = assume_master_host.filter(|t| !t.is_empty()) {
        return Endpoint::parse(text, inspected.port)
            .ok_or_else(|| TopologyError::BadAssumedHost(text.to_string()));
    }
    let Some(status) = inspected_status else {
        if allow_on_master {
            return Ok(inspected.clone());
        }
        return Err(TopologyError::NotAReplica(inspected.clone()));
    };
    if allow_on_master && !allow_master_master {
        return Err(TopologyError::OnMasterButReplica(inspected.clone()));
    }
    if allow_master_master {
        return Ok(if allow_on_master {
            inspected.clone()
        } else {
            status.source
        });
    }
    // Walk up a chain of replicas to the top, refusing a cycle.
    let mut seen = vec![inspected.clone()];
    let mut current = status.source;
    for _ in 0..8 {
        match status_of(current.clone()).await? {
            None => return Ok(current),
            Some(up) => {
                if seen.contains(&up.source) {
                    return Err(TopologyError::MasterMaster(current, up.source));
                }
                seen.push(current);
                current = up.source;
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// The topology refusals gh-ost also makes open with gh-ost's words, as gh-ost 1.1.x prints
    /// them, for scripts that grep them; wraith's explanation follows.
    #[test]
    fn a_topology_refusal_gh_ost_also_makes_opens_with_gh_osts_words() {
        for (error, gh_ost) in [
            (
                TopologyError::NotAReplica(at(3306)),
                "It seems like this migration attempt to run directly on master. Preferably it \
                 would be executed on a replica (and this reduces load from the master). To \
                 proceed please provide --allow-on-master.",
            ),
            (
                TopologyError::MasterMaster(at(3307), at(3306)),
                "There seems to be a master-master setup at 127.0.0.1:3306. This is unsupported. \
                 Bailing out",
            ),
        ] {
            let message = error.to_string();
            assert!(
                message.starts_with(gh_ost) && message.len() > gh_ost.len(),
                "expected gh-ost's `{gh_ost}`, then wraith's explanation; got: {message}"
            );
        }
    }
}
