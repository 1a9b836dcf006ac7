"""A synthetic but realistic set of past incidents for the retrieval benchmark: 52 problem archetypes
across SQL Server, PostgreSQL, MySQL, logs, metrics, network and ITSM, each seen on several hosts
with its own service, date, numbers and wording. Deterministic for a seed; nothing is stored."""

# ruff: noqa: E501 -- a data table: one archetype per block reads better unwrapped
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tools.knowledge.documents import KnowledgeDoc

POOLS = {
    "mssql": [f"sql-prod-{i:02d}" for i in range(1, 25)],
    "pg": [f"pg-{n}-{i:02d}" for n in ("orders", "billing", "ledger", "analytics") for i in range(1, 7)],
    "mysql": [f"mysql-{n}-{i:02d}" for n in ("shop", "crm", "cms") for i in range(1, 9)],
    "app": [f"{n}-api" for n in ("checkout", "payments", "search", "auth", "catalog", "cart", "orders", "shipping",
                                   "profile", "pricing", "inventory", "reviews")],
    "host": [f"{n}-{i:02d}" for n in ("web", "app", "batch", "worker") for i in range(1, 7)],
    "net": [f"{n}-{i:02d}" for n in ("core-sw", "access-sw", "edge-rtr", "fw-dc1", "dist-sw") for i in range(1, 6)],
    "cache": [f"redis-{n}-{i:02d}" for n in ("session", "cart", "rate") for i in range(1, 7)],
}  # fmt: skip
SERVICES = ["orders", "billing", "checkout", "warehouse", "reporting", "payments", "crm", "search",
            "inventory", "shipping", "ledger", "loyalty", "pricing", "catalog"]  # fmt: skip


SYNTHETIC_SERVICES = [f"{a}{b}" for a in ("blue", "red", "amber", "green", "silver", "north", "east", "iron")
                      for b in ("falcon", "harbor", "river", "forge", "summit", "meadow", "lantern", "quartz")]  # fmt: skip


@dataclass(frozen=True)
class Archetype:
    key: str
    pool: str
    tags: tuple[str, ...]
    titles: tuple[str, ...]
    symptoms: tuple[str, ...]
    causes: tuple[tuple[str, str], ...]  # (root cause, resolution)


def A(
    key: str, pool: str, tags: str, titles: list[str], symptoms: list[str], causes: list[tuple[str, str]]
) -> Archetype:
    return Archetype(key, pool, tuple(tags.split()), tuple(titles), tuple(symptoms), tuple(causes))


ARCHETYPES = [
    A("mssql-blocking", "mssql", "mssql blocking locks",
      ["Blocking chain on {host}: sleeping session held locks", "{svc} requests blocked behind idle transaction on {host}"],
      ["{svc} requests timed out; {n} sessions waited on LCK_M_U behind session {spid}, sleeping with open_transaction_count 1",
       "head blocker session {spid} from {svc} job idle in an open transaction, {n} requests blocked on LCK_M_X"],
      [("the nightly {svc} job opened a transaction and hit an error without rolling back", "killed session {spid} after approval; the job now rolls back on error"),
       ("an ad-hoc query in SSMS left BEGIN TRAN open over lunch", "asked the DBA to commit, then killed the session; added an idle-transaction alert")]),
    A("mssql-tempdb-version-store", "mssql", "mssql tempdb version-store",
      ["tempdb filled by the version store on {host}", "{host} tempdb full: version store growth"],
      ["tempdb {pct}% used, version store {n} GB and growing, snapshot isolation transaction open for hours",
       "TempdbAlmostFull alert, sys.dm_tran_version_store_space_usage shows the {svc} database holding the version store"],
      [("an SSIS package kept a snapshot transaction open for {hours} hours", "killed the ETL session after approval; package commits per batch"),
       ("a long report under READ_COMMITTED_SNAPSHOT kept old row versions alive", "stopped the report; moved it to the readable secondary")]),
    A("mssql-tempdb-contention", "mssql", "mssql tempdb pagelatch",
      ["tempdb allocation contention on {host}", "PAGELATCH_UP on tempdb 2:1:1 at {host}"],
      ["PAGELATCH_UP and PAGELATCH_EX waits on 2:1:1 and 2:1:3, slow temp table inserts during {svc} month-end",
       "many sessions waiting on tempdb PFS/SGAM pages, temp table heavy workload from {svc}"],
      [("tempdb had only {files} data files on a {cores}-core server", "added tempdb data files to match cores (up to 8), equal sizes"),
       ("trace flag 1118 missing on an old build; mixed extents contention", "enabled TF 1118 and added data files")]),
    A("mssql-log-full-backup", "mssql", "mssql log backup 9002",
      ["Transaction log full on {host} ({svc})", "Error 9002 on {host}: log full, LOG_BACKUP"],
      ["error 9002: the transaction log for database {svc} is full due to LOG_BACKUP; writes failing",
       "log file {pct}% used and cannot grow, log_reuse_wait_desc = LOG_BACKUP on {svc}"],
      [("log backups had failed for {days} days after the backup account password rotated", "fixed the backup job credentials and took a log backup"),
       ("the backup share ran out of space so log backups failed", "freed the backup share and resumed log backups")]),
    A("mssql-log-full-active-tran", "mssql", "mssql log 9002 active-transaction",
      ["Log full on {host} held by an open transaction", "{svc} log cannot truncate: ACTIVE_TRANSACTION on {host}"],
      ["error 9002 on database {svc}, log_reuse_wait_desc = ACTIVE_TRANSACTION, log grew to {n} GB",
       "log space exhausted, DBCC OPENTRAN shows a transaction open for {hours} hours"],
      [("an index rebuild in one huge transaction on {svc}", "killed the rebuild after approval; rebuilds now run per partition with ONLINE=ON"),
       ("a data fix script ran without batching", "rolled the script back and reran it in batches of 10k rows")]),
    A("mssql-plan-regression", "mssql", "mssql plan-regression query-store",
      ["Plan regression on {host} after statistics update", "{svc} query slowed {x}x on {host}: parameter sniffing"],
      ["one stored procedure of {svc} went from {ms} ms to {sec} s average, CPU at {pct}%, Query Store shows a new plan",
       "top query by CPU changed plan overnight, logical reads up {x}x, {svc} API latency up"],
      [("parameter sniffing: the plan compiled for a rare customer with few rows", "forced the previous plan in Query Store; added OPTIMIZE FOR UNKNOWN"),
       ("auto-update statistics sampled poorly after a bulk load", "updated statistics WITH FULLSCAN and forced the good plan")]),
    A("mssql-writelog", "mssql", "mssql writelog storage",
      ["Slow commits on {host}: WRITELOG", "{host} commit latency from log writes"],
      ["commits slow at night around {clock}, WRITELOG dominates the waits, log write latency {ms} ms, no blocking",
       "{svc} inserts slow, WRITELOG waits, avg write stall on the log file {ms} ms"],
      [("a SAN snapshot on the log LUN stalled writes", "storage moved the snapshot off the log LUN"),
       ("the log file shared a volume with backups writing at full speed", "moved the log file to a dedicated volume")]),
    A("mssql-deadlock", "mssql", "mssql deadlock 1205",
      ["Deadlocks on {host} between {svc} jobs", "Error 1205 deadlock victims on {host}"],
      ["Msg 1205 transaction was deadlocked on lock resources and chosen as the deadlock victim, {n} per hour in {svc}",
       "deadlock graphs show two procedures updating the same tables in opposite order"],
      [("two {svc} procedures updated Orders and OrderLines in opposite order", "changed one procedure to lock in the same order"),
       ("missing index made an update scan and escalate locks", "added the index on the foreign key")]),
    A("mssql-ag-sync", "mssql", "mssql availability-group hadr",
      ["Synchronous commit delay on AG of {host}", "HADR_SYNC_COMMIT waits on {host}"],
      ["commits slow, HADR_SYNC_COMMIT waits dominate, secondary log send queue {n} MB",
       "{svc} writes slow since the secondary in the DR site went synchronous"],
      [("the synchronous secondary was in the remote DR site over a saturated WAN link", "set the DR replica to asynchronous commit"),
       ("redo on the secondary fell behind due to a slow disk", "replaced the secondary's log disk")]),
    A("mssql-parallelism", "mssql", "mssql cxpacket parallelism",
      ["CXPACKET waits on {host}", "Parallelism skew on {host}"],
      ["CXPACKET and CXCONSUMER top the wait stats, CPU {pct}%, reports from {svc} slow",
       "queries run with DOP {cores}, one thread does all the work"],
      [("MAXDOP 0 and cost threshold 5 on a {cores}-core server", "set MAXDOP 8 and cost threshold for parallelism 50"),
       ("a skewed distribution made one parallel thread process most rows", "rewrote the query and updated statistics")]),
    A("mssql-io-825", "mssql", "mssql io 825 storage",
      ["Read retries (error 825) on {host}", "I/O errors 823/825 on {host}"],
      ["error 825 read-retry messages in the errorlog for database {svc}, then a 823",
       "errorlog: A read of the file succeeded after failing {n} times, logical consistency"],
      [("a failing disk in the storage array", "storage replaced the disk; DBCC CHECKDB clean"),
       ("the HBA firmware bug caused path failovers", "upgraded HBA firmware")]),
    A("mssql-memory-grants", "mssql", "mssql memory resource-semaphore",
      ["RESOURCE_SEMAPHORE waits on {host}", "Queries waiting for memory grants on {host}"],
      ["RESOURCE_SEMAPHORE waits, {n} queries waiting for memory grants, {svc} reports stall",
       "sys.dm_exec_query_memory_grants shows huge grants for a sort"],
      [("a report requested {n} GB grants because of bad cardinality estimates", "added a MAX_GRANT_PERCENT hint and fixed statistics"),
       ("max server memory left too little for grants", "raised max server memory after adding RAM")]),
    A("mssql-threadpool", "mssql", "mssql threadpool workers",
      ["Worker thread exhaustion on {host}", "THREADPOOL waits on {host}"],
      ["new connections hang, THREADPOOL waits, {n} requests waiting for a worker",
       "login timeouts from {svc}, max worker threads reached"],
      [("a blocking chain kept hundreds of workers busy", "killed the head blocker; fixed the app's connection handling"),
       ("a parallel query storm used all workers", "lowered MAXDOP for the offending workload")]),
    A("mssql-stale-stats", "mssql", "mssql statistics etl",
      ["Nightly ETL slow on {host}: stale statistics", "Statistics not updated on {host}"],
      ["{svc} ETL ran {x}x longer, plan regressions on fact tables",
       "row estimates of 1 for tables with millions of rows"],
      [("auto update statistics disabled after a restore", "re-enabled auto update statistics and updated stats"),
       ("statistics maintenance job was disabled during a migration", "re-enabled the job")]),
    A("pg-idle-in-tx", "pg", "postgres locks idle-in-transaction",
      ["Migration blocked on {host} by idle in transaction", "{host}: AccessExclusiveLock waits behind idle session"],
      ["schema migration waits on AccessExclusiveLock, pg_stat_activity shows pid {spid} idle in transaction for {hours} h",
       "{svc} queries queue behind an ALTER TABLE waiting for a lock held by an idle transaction"],
      [("an application connection leaked an open transaction", "terminated pid {spid} after approval; set idle_in_transaction_session_timeout"),
       ("a psql session left open by an engineer", "terminated the session and added the timeout")]),
    A("pg-connection-slots", "pg", "postgres connections 53300",
      ["Connection slots exhausted on {host}", "FATAL too many clients on {host}"],
      ["FATAL: remaining connection slots are reserved for non-replication superuser connections, {svc} errors",
       "SQLSTATE 53300 too many clients already, {n} connections mostly idle"],
      [("a {svc} deployment doubled the pool size on every pod", "reverted the pool size; added PgBouncer"),
       ("connections leaked by a worker that never closed them", "fixed the worker and restarted it")]),
    A("pg-deadlock", "pg", "postgres deadlock 40p01",
      ["Deadlocks on {host} in {svc}", "ERROR 40P01 deadlock detected on {host}"],
      ["ERROR: deadlock detected (SQLSTATE 40P01) in {svc} logs, {n} per hour",
       "Process waits for ShareLock on transaction; blocked by another process, deadlock"],
      [("two {svc} workers updated rows in different orders", "sorted the ids before updating"),
       ("a trigger updated the parent row after the child row", "moved the logic out of the trigger")]),
    A("pg-vacuum-held", "pg", "postgres vacuum bloat xmin",
      ["Long transaction holds back vacuum on {host}", "Table bloat on {host}: xmin horizon stuck"],
      ["dead tuples growing, autovacuum cannot remove them, oldest xmin from a {hours} h old transaction",
       "{svc} tables bloated {x}x, queries slower, backend_xmin old"],
      [("a forgotten analytics query held a snapshot for days", "cancelled it; set statement_timeout for the analytics role"),
       ("an abandoned replication slot held back xmin", "dropped the unused replication slot")]),
    A("pg-replication-lag", "pg", "postgres replication lag",
      ["Replica lag on {host}", "Streaming replication behind on {host}"],
      ["replay lag {n} s and climbing on the replica, {svc} reads stale",
       "WAL receiver falls behind, replay_lsn far from sent_lsn"],
      [("a long query on the replica conflicted with replay (max_standby_streaming_delay)", "enabled hot_standby_feedback; moved reports off"),
       ("the replica's disk was slower than the primary's", "moved the replica to faster storage")]),
    A("pg-wal-full", "pg", "postgres wal disk archive",
      ["pg_wal filling on {host}", "WAL disk full on {host}: archiving failing"],
      ["pg_wal volume {pct}% full, archive_command failing, last_failed_wal in pg_stat_archiver",
       "disk forecast: pg_wal full in {days} days on {host}"],
      [("archive_command could not reach the backup bucket after a credentials change", "fixed the archive credentials; WAL drained"),
       ("a stale replication slot retained WAL", "dropped the slot")]),
    A("pg-plan-regression", "pg", "postgres plan-regression",
      ["Query regression on {host} after ANALYZE", "{svc} query slowed on {host}: seq scan"],
      ["mean_exec_time of a {svc} query up {x}x in pg_stat_statements, plan switched to a sequential scan",
       "latency alert on {svc}: one statement from {ms} ms to {sec} s"],
      [("statistics target too low for a skewed column", "raised the statistics target and re-analyzed"),
       ("a dropped index during a migration", "recreated the index concurrently")]),
    A("pg-wraparound", "pg", "postgres wraparound autovacuum",
      ["Autovacuum to prevent wraparound on {host}", "XID age high on {host}"],
      ["autovacuum: VACUUM (to prevent wraparound) running for hours, age(datfrozenxid) {n} million",
       "WARNING: database must be vacuumed within {n} transactions"],
      [("autovacuum throttled by a low cost limit on a huge table", "ran a manual VACUUM FREEZE and raised autovacuum_vacuum_cost_limit"),
       ("a long transaction blocked freezing", "ended the transaction and vacuumed")]),
    A("pg-lock-timeout", "pg", "postgres lock-timeout 55p03",
      ["Lock timeouts on {host}", "ERROR 55P03 lock not available on {host}"],
      ["ERROR: canceling statement due to lock timeout (55P03) in {svc}, {n} per minute",
       "{svc} writes failing with lock_not_available during a batch"],
      [("a batch job took row locks on hot rows for minutes", "batched the job in smaller transactions"),
       ("SELECT FOR UPDATE without SKIP LOCKED in a queue table", "switched the queue to SKIP LOCKED")]),
    A("pg-checkpoints", "pg", "postgres checkpoint io",
      ["Checkpoint spikes on {host}", "I/O stalls on {host}: checkpoints too frequent"],
      ["LOG: checkpoints are occurring too frequently ({n} seconds apart), write latency spikes",
       "periodic {svc} latency spikes every few minutes, checkpoint_req high"],
      [("max_wal_size too small for the write rate", "raised max_wal_size and checkpoint_completion_target"),
       ("a bulk load generated WAL far above normal", "rescheduled the bulk load")]),
    A("pg-oom", "pg", "postgres memory oom",
      ["Postgres backend killed by the OOM killer on {host}", "Out of memory on {host}"],
      ["server process was terminated by signal 9: Killed, the database system is in recovery mode",
       "kernel OOM killer chose postgres, {svc} errors during restart"],
      [("work_mem {n} MB with many parallel hash joins", "lowered work_mem; limited parallel workers"),
       ("a runaway analytics query built a huge hash table", "cancelled it; set a statement_timeout")]),
    A("mysql-too-many-connections", "mysql", "mysql connections 1040",
      ["Too many connections on {host}", "ERROR 1040 on {host}"],
      ["ERROR 1040 (HY000): Too many connections from {svc}, Threads_connected at max_connections",
       "{svc} cannot connect, processlist full of Sleep threads"],
      [("the {svc} app leaked connections after a driver upgrade", "rolled back the driver; set wait_timeout 300"),
       ("a cron storm opened hundreds of connections", "spread the cron jobs")]),
    A("mysql-lock-wait", "mysql", "mysql innodb lock-wait 1205",
      ["InnoDB lock waits on {host}", "Lock wait timeout exceeded on {host}"],
      ["ERROR 1205 Lock wait timeout exceeded; try restarting transaction, {n} in {svc}",
       "innodb_trx shows a transaction holding row locks for {hours} h, many waiting"],
      [("an uncommitted transaction from a batch job", "killed the blocking thread after approval; fixed the job"),
       ("a long UPDATE without an index scanned and locked many rows", "added an index on the WHERE column")]),
    A("mysql-deadlock", "mysql", "mysql deadlock 1213",
      ["Deadlocks on {host}", "ERROR 1213 on {host}"],
      ["ERROR 1213 (40001): Deadlock found when trying to get lock in {svc}",
       "SHOW ENGINE INNODB STATUS: LATEST DETECTED DEADLOCK between two inserts"],
      [("gap locks between concurrent inserts under REPEATABLE READ", "switched to READ COMMITTED for that workload"),
       ("two code paths locked tables in opposite order", "unified the lock order")]),
    A("mysql-replication", "mysql", "mysql replication 1062",
      ["Replication stopped on {host}", "Replica SQL thread error on {host}"],
      ["Slave_SQL_Running: No, Last_SQL_Errno: 1062 duplicate entry, replica {n} s behind",
       "replica of {svc} stopped with a duplicate key error"],
      [("a write went to the replica directly", "made the replica read_only; skipped the event after checking"),
       ("non-deterministic statement-based replication", "switched to binlog_format=ROW and resynced")]),
    A("mysql-digest-regression", "mysql", "mysql digest index",
      ["Query regression on {host} after index drop", "Slow digest on {host}"],
      ["a statement digest of {svc} went from {ms} ms to {sec} s, full table scans, rows_examined up",
       "performance_schema digest shows SUM_NO_INDEX_USED jumping"],
      [("a migration dropped an index still used by {svc}", "recreated the index"),
       ("the optimizer picked the wrong index after stats changed", "ran ANALYZE TABLE and added an index hint")]),
    A("mysql-disk-full", "mysql", "mysql disk binlog",
      ["Disk full on {host}: binary logs", "{host} data volume full"],
      ["data volume {pct}% full, binlogs not purged, writes failing with errno 28",
       "ERROR 3 Error writing file (errcode 28 - No space left on device)"],
      [("binlog_expire_logs_seconds unset after an upgrade", "purged old binlogs and set expiry to 7 days"),
       ("a huge temporary table from a report", "killed the report; limited tmp_table_size")]),
    A("mysql-metadata-lock", "mysql", "mysql metadata-lock ddl",
      ["ALTER TABLE stuck on {host}: metadata lock", "Waiting for table metadata lock on {host}"],
      ["processlist: Waiting for table metadata lock, {n} queries of {svc} queued behind an ALTER",
       "online schema change blocked by a long running SELECT"],
      [("a long report held the table open", "killed the report; ran the ALTER with pt-online-schema-change"),
       ("an idle transaction in a connection pool kept the metadata lock", "killed the idle transaction")]),
    A("app-error-burst-deploy", "app", "logs deploy http-500",
      ["Error burst on {host} after deploy", "{host} 5xx spike after release"],
      ["HTTP 500 rate jumped to {pct}% right after the {ver} release of {host}",
       "NullPointerException in logs of {host} since the deploy, {n} errors/min"],
      [("the {ver} release read a config key that did not exist in production", "rolled back to the previous release; added the key"),
       ("a feature flag defaulted to on in the new release", "turned the flag off")]),
    A("app-failed-logins", "app", "logs security auth",
      ["Failed login storm against {host}", "Credential stuffing on {host}"],
      ["{n} failed logins per minute to {host} from a small IP range, account lockouts",
       "auth failures 401 spike, many usernames from the same ASN"],
      [("credential stuffing from a botnet", "blocked the ranges at the WAF; enabled rate limiting"),
       ("a misconfigured partner integration retrying with an old password", "partner rotated their secret")]),
    A("app-pool-exhausted", "app", "logs connection-pool",
      ["Connection pool exhausted in {host}", "{host} pool timeouts"],
      ["HikariPool-1 - Connection is not available, request timed out after 30000ms in {host}",
       "{host} threads blocked waiting for a database connection"],
      [("slow database queries held connections longer", "fixed the slow query; pool recovered"),
       ("pool size 10 after a config reset", "restored pool size 50")]),
    A("app-tls-expired", "app", "logs tls certificate",
      ["Expired TLS certificate on {host}", "{host} x509 errors"],
      ["x509: certificate has expired or is not yet valid calling {host}, all requests fail",
       "SSL handshake failures to {host} since midnight"],
      [("the certificate renewal job failed silently", "renewed the certificate; added expiry monitoring"),
       ("an intermediate CA certificate expired", "deployed the new chain")]),
    A("app-dns", "app", "logs dns",
      ["DNS resolution failures for {host}", "{host} cannot resolve dependencies"],
      ["getaddrinfo ENOTFOUND / SERVFAIL resolving the database host from {host}",
       "intermittent NXDOMAIN for internal names, {n}% of requests fail"],
      [("one of the internal DNS resolvers was down", "removed it from resolv.conf; fixed the resolver"),
       ("a DNS zone change removed a record", "restored the record")]),
    A("app-oomkilled", "app", "logs kubernetes oom",
      ["{host} pods OOMKilled", "Memory limit kills on {host}"],
      ["pods of {host} restarting with OOMKilled, exit code 137, every {n} minutes",
       "container memory at the limit, then killed"],
      [("a memory leak in the new JSON parser", "rolled back; fixed the leak"),
       ("memory limit too low for the JVM heap setting", "raised the limit to heap + 30%")]),
    A("host-cpu-step", "host", "metrics cpu",
      ["CPU step change on {host}", "{host} CPU doubled after change"],
      ["CPU usage stepped from {ms}% to {pct}% on {host} at {clock} and stayed",
       "load average up {x}x on {host}, no traffic change"],
      [("a new log level DEBUG was enabled by a config change", "reverted the log level"),
       ("a cron job started running every minute instead of hourly", "fixed the cron expression")]),
    A("host-disk-forecast", "host", "metrics disk capacity",
      ["Disk filling on {host}", "{host} volume full in {days} days"],
      ["/var volume {pct}% used on {host}, growing {n} GB per day, full in {days} days",
       "disk usage forecast alert for {host} data volume"],
      [("log rotation broken after a package upgrade", "fixed logrotate; compressed old logs"),
       ("core dumps accumulating from a crashing service", "fixed the crash; cleaned the dumps")]),
    A("host-memory-leak", "host", "metrics memory",
      ["Memory leak on {host}", "{host} memory climbing steadily"],
      ["resident memory of the {svc} service climbs {n} MB per hour on {host} until swap",
       "memory usage above baseline for days, no traffic growth"],
      [("a cache without eviction in the {svc} service", "added a size bound; restarted"),
       ("a leaked file handle per request", "fixed the leak in the next release")]),
    A("host-gc-pauses", "host", "metrics latency jvm",
      ["p99 latency spikes on {host}: GC pauses", "Long GC pauses on {host}"],
      ["p99 latency spikes to {sec} s every few minutes on {host}, GC pause time high",
       "stop-the-world pauses of {n} ms in the GC log"],
      [("heap too small after traffic growth", "raised heap and switched to G1"),
       ("a large cache in old gen", "moved the cache off-heap")]),
    A("host-peer-outlier", "host", "metrics outlier",
      ["{host} slower than its peers", "Noisy neighbour on {host}"],
      ["{host} latency {x}x its peers in the same pool, CPU steal {pct}%",
       "one node of the {svc} pool with high iowait, the others fine"],
      [("a noisy neighbour VM on the same hypervisor", "migrated the VM to another host"),
       ("a failing disk on that node", "replaced the disk")]),
    A("net-crc", "net", "network interface crc",
      ["CRC errors on {host} {ifname}", "Rising input errors on {host}"],
      ["interface {ifname} on {host} shows rising CRC and input errors, {n} per minute",
       "ifInErrors climbing on {host} uplink, packet loss for {svc}"],
      [("a dirty fibre connector", "cleaned the connector; errors stopped"),
       ("a failing SFP optic", "replaced the optic")]),
    A("net-admin-down", "net", "network interface change",
      ["Link down on {host} after change", "{host} {ifname} administratively down"],
      ["{ifname} on {host} is down, ifAdminStatus down, servers behind it unreachable",
       "ports went down on {host} during a maintenance change"],
      [("a change script shut the wrong interface", "no shut on the port; the change template was fixed"),
       ("port security err-disabled the port", "cleared the err-disable and fixed the MAC limit")]),
    A("net-wan-saturation", "net", "network wan utilisation",
      ["WAN uplink saturated on {host}", "{host} uplink at {pct}%"],
      ["uplink {ifname} on {host} at {pct}% utilisation, latency to the DR site up",
       "traffic on {host} WAN link maxed out in the evening"],
      [("offsite backups started during business hours", "moved the backup window; QoS for backups"),
       ("a replication job without bandwidth limit", "set a bandwidth limit")]),
    A("net-bgp-flap", "net", "network bgp",
      ["BGP session flapping on {host}", "BGP neighbor down/up on {host}"],
      ["BGP session to the ISP on {host} flaps every few minutes, hold timer expired",
       "%BGP-5-ADJCHANGE neighbor Down on {host}"],
      [("packet loss on the provider circuit", "the ISP replaced a faulty line card"),
       ("MTU mismatch after a provider change", "aligned the MTU")]),
    A("net-fw-reboot", "net", "network firewall ha",
      ["Firewall {host} rebooted", "{host} unexpected reload"],
      ["sysUpTime reset on {host}, HA failover, sessions dropped for {svc}",
       "firewall {host} reloaded at {clock}, crash file present"],
      [("a known firmware bug under high session count", "upgraded the firmware"),
       ("power supply failure", "replaced the PSU")]),
    A("net-duplex", "net", "network duplex",
      ["Duplex mismatch on {host} {ifname}", "Late collisions on {host}"],
      ["late collisions and CRC on {ifname} at {host}, throughput low",
       "half duplex negotiated on {host} port to a server"],
      [("the server NIC was hard-set to 100/full while the switch auto-negotiated", "set both sides to auto"),
       ("an old cable", "replaced the cable")]),
    A("itsm-change-outage", "app", "itsm change",
      ["Outage of {host} during change", "{host} broken by a config change"],
      ["{host} errors started at {clock}, overlapping change CHG{chg} on the same CI",
       "incident opened for {host}, emergency change the same hour"],
      [("change CHG{chg} pushed a wrong load balancer pool", "backed out the change"),
       ("a firewall rule change blocked {host} to its database", "restored the rule")]),
    A("cache-evictions", "cache", "redis cache memory",
      ["Redis evictions on {host}", "{host} maxmemory reached"],
      ["evicted_keys climbing on {host}, cache hit rate down to {pct}%, {svc} latency up",
       "used_memory at maxmemory on {host}, OOM command not allowed errors"],
      [("keys written without TTL by a new {svc} feature", "added TTLs; flushed the namespace"),
       ("maxmemory left at the default after a migration", "raised maxmemory")]),
    A("cache-latency", "cache", "redis latency",
      ["Redis latency spikes on {host}", "Slow Redis commands on {host}"],
      ["SLOWLOG shows KEYS * and large HGETALL on {host}, latency {ms} ms",
       "{svc} timeouts to {host} during a batch"],
      [("a debug script ran KEYS * in production", "replaced it with SCAN; renamed KEYS"),
       ("a big hash of {n} fields read at once", "split the hash")]),
]  # fmt: skip

INSTANCES_PER_ARCHETYPE = 6


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


def _values(rng: random.Random, host: str, svc: str) -> dict[str, str]:
    return {
        "host": host, "svc": svc, "n": str(rng.randint(3, 900)), "spid": str(rng.randint(51, 999)),
        "pct": str(rng.randint(81, 99)), "hours": str(rng.randint(2, 40)), "days": str(rng.randint(2, 14)),
        "files": str(rng.choice([1, 2, 4])), "cores": str(rng.choice([16, 24, 32, 48])),
        "x": str(rng.randint(3, 40)), "ms": str(rng.randint(20, 80)), "sec": str(rng.randint(2, 30)),
        "clock": f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45'])}",
        "ver": f"v{rng.randint(2, 9)}.{rng.randint(0, 30)}", "ifname": f"Gi1/0/{rng.randint(1, 48)}",
        "chg": str(rng.randint(10000, 99999)),
    }  # fmt: skip


@dataclass(frozen=True)
class Instance:
    doc: KnowledgeDoc
    archetype: str
    slot: int  # which of the archetype's instances (0..5)
    host: str
    svc: str


def labelled_incidents(seed: int = 13) -> list[Instance]:
    """The labelled set: every archetype on INSTANCES_PER_ARCHETYPE distinct hosts and services."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    out: list[Instance] = []
    for a in ARCHETYPES:
        hosts = rng.sample(POOLS[a.pool], INSTANCES_PER_ARCHETYPE)
        svcs = rng.sample(SERVICES, INSTANCES_PER_ARCHETYPE)
        for slot, (host, svc) in enumerate(zip(hosts, svcs, strict=True)):
            out.append(
                Instance(
                    _incident(rng, a, host, svc, start, f"INC-{len(out) + 10001}"), a.key, slot, host, svc
                )
            )
    return out


def _incident(
    rng: random.Random, a: Archetype, host: str, svc: str, start: datetime, id: str
) -> KnowledgeDoc:
    v = _values(rng, host, svc)
    cause, fix = rng.choice(a.causes)
    return KnowledgeDoc(
        id=id,
        title=_fill(rng.choice(a.titles), v),
        occurred_at=start + timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60)),
        services=[host, svc],
        symptoms=_fill(rng.choice(a.symptoms), v),
        root_cause=_fill(cause, v),
        resolution=_fill(fix, v),
        tags=list(a.tags),
        source="bench",
    )


def synthetic_incidents(count: int, seed: int = 7) -> list[KnowledgeDoc]:
    """`count` incidents for the scale benchmark: random archetypes on random hosts (three-digit
    numbers) and services that the labelled set does not use, so that each labelled query still has
    one correct incident among them, and near-duplicates of its problem crowd the store."""
    rng = random.Random(seed)
    start = datetime(2016, 1, 1, tzinfo=UTC)
    docs = []
    for i in range(count):
        a = rng.choice(ARCHETYPES)
        base = rng.choice(POOLS[a.pool])
        host = f"{base.rsplit('-', 1)[0]}-{rng.randint(1, 400):03d}" if "-" in base else base
        docs.append(_incident(rng, a, host, rng.choice(SYNTHETIC_SERVICES), start, f"SYN-{i:06d}"))
    return docs
