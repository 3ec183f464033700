#!/usr/bin/env bash
# Points the compose replica at the compose primary (GTID auto-positioning).
set -euo pipefail
until mysql -h127.0.0.1 -P33060 -uroot -pwraith -e 'SELECT 1' >/dev/null 2>&1; do sleep 1; done
until mysql -h127.0.0.1 -P33061 -uroot -pwraith -e 'SELECT 1' >/dev/null 2>&1; do sleep 1; done
mysql -h127.0.0.1 -P33061 -uroot -pwraith -e "
  CHANGE REPLICATION SOURCE TO SOURCE_HOST='primary', SOURCE_PORT=3306, SOURCE_USER='root',
    SOURCE_PASSWORD='wraith', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1;
  START REPLICA;"
