#!/usr/bin/env bash
# Makes the replica of one pair of docker-compose.yml replicate from its primary by GTID, once
# both answer, and checks that a transaction written on the primary reaches it:
#
#   docker compose -f docker/docker-compose.yml --profile mysql84 up -d
#   bash docker/attach-replica.sh mysql84          # or mysql80, mariadb114
#
# The replica starts at the primary's present GTID position (it has the same first-start state
# as the primary, so it skips the primary's history), then replicates with MySQL's
# auto-positioning or MariaDB's slave_pos. The statements are the ones wraith's flavor layer
# writes for the same steps (src/mysql/flavor.rs: skip_to_gtids_sql, replicate_from_sql,
# start_replication_sql, gtid_position_sql, wait_for_gtids_sql). Uses the replica container's own
# client, so nothing but Docker is needed on the host.
set -euo pipefail

pair=${1:-}
case "$pair" in
mysql84) primary=33841 replica=33842 client=mysql ;;
mysql80) primary=33801 replica=33802 client=mysql ;;
mariadb114) primary=31141 replica=31142 client=mariadb ;;
*)
    echo "usage: $0 mysql84|mysql80|mariadb114" >&2
    exit 2
    ;;
esac
compose=(docker compose -f "$(dirname "$0")/docker-compose.yml" --profile "$pair")

# Runs SQL as root on 127.0.0.1:<port> (both servers are on the host's network) and prints the
# values alone.
sql() {
    "${compose[@]}" exec -T "$pair-replica" "$client" -h127.0.0.1 -P"$1" -uroot -N -B -r -e "$2"
}

for port in "$primary" "$replica"; do
    tries=0
    until sql "$port" 'SELECT 1' >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -ge 180 ]; then
            echo "no server answered on 127.0.0.1:$port in 3 minutes" >&2
            exit 1
        fi
        sleep 1
    done
done

if [ "$client" = mysql ]; then
    reset='RESET MASTER'
    if [ "$pair" = mysql84 ]; then
        reset='RESET BINARY LOGS AND GTIDS'
    fi
    position=$(sql "$primary" 'SELECT @@GLOBAL.gtid_executed' | tr -d '\n')
    sql "$replica" "$reset;
        SET GLOBAL gtid_purged = '$position';
        CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT=$primary,
            SOURCE_USER='root', SOURCE_PASSWORD='', SOURCE_AUTO_POSITION=1,
            SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1;
        START REPLICA;"
    position_sql='SELECT @@GLOBAL.gtid_executed'
    wait_sql=WAIT_FOR_EXECUTED_GTID_SET
    status_sql='SHOW REPLICA STATUS\G'
else
    position=$(sql "$primary" 'SELECT @@GLOBAL.gtid_binlog_pos')
    sql "$replica" "SET GLOBAL gtid_slave_pos = '$position';
        CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$primary, MASTER_USER='root',
            MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
        START SLAVE;"
    position_sql='SELECT @@GLOBAL.gtid_binlog_pos'
    wait_sql=MASTER_GTID_WAIT
    status_sql='SHOW SLAVE STATUS\G'
fi

# A transaction on the primary, and the replica waits for it.
sql "$primary" 'CREATE DATABASE IF NOT EXISTS wraith_attach; DROP DATABASE wraith_attach'
position=$(sql "$primary" "$position_sql" | tr -d '\n')
if [ "$(sql "$replica" "SELECT $wait_sql('$position', 60)")" != 0 ]; then
    echo "the replica on 127.0.0.1:$replica did not catch up with the primary:" >&2
    "${compose[@]}" exec -T "$pair-replica" "$client" -h127.0.0.1 -P"$replica" -uroot \
        -e "$status_sql" >&2
    exit 1
fi

echo "127.0.0.1:$replica replicates from 127.0.0.1:$primary. Run the suite against them with:"
echo "  WRAITH_TEST_PRIMARY=mysql://root@127.0.0.1:$primary \\"
echo "  WRAITH_TEST_REPLICA=mysql://root@127.0.0.1:$replica cargo test --test integration"
