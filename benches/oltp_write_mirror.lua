#!/usr/bin/env sysbench
-- oltp_write_mirror.lua: sysbench's oltp_write_only transaction, made on sbtest1 and, with the
-- same statements and the same random values, on sbtest1_mirror, in one transaction.
--
-- In: the options of oltp_common.lua (--tables must be 1, --table-size), a table sbtest1 and a
-- table sbtest1_mirror with the same rows (the bench creates the mirror with
-- `CREATE TABLE sbtest1_mirror LIKE sbtest1`, alters it natively and fills it with
-- INSERT ... SELECT before wraith starts), and the environment variable WRAITH_BENCH_STOP_FILE.
-- Out: writes. Each thread finishes its current transaction and stops once the stop file exists,
-- so sysbench ends by itself and prints its final statistics (including `ignored errors:`).
--
-- Invariant: whatever wraith does to sbtest1, every committed transaction made the same change
-- to the mirror, and the mirror is never written from what sbtest1 holds. The statements are
-- sent as text with literal values (the same text on both tables but for the name); the values
-- come from the same generators oltp_write_only uses. A transaction that fails with an error
-- sysbench ignores (deadlock, lock wait timeout) is rolled back explicitly before the event is
-- restarted: a lock wait timeout rolls back only its statement, and the next BEGIN would
-- otherwise commit half a transaction, one table without the other. The bench counts such
-- errors and fails if there are any.

require("oltp_common")

local stop_file = os.getenv("WRAITH_BENCH_STOP_FILE")
local TABLES = { "sbtest1", "sbtest1_mirror" }

function prepare_statements()
   -- Text statements only: nothing to prepare.
end

local function stop_requested()
   if stop_file == nil or stop_file == "" then
      return false
   end
   local f = io.open(stop_file, "r")
   if f ~= nil then
      f:close()
      return true
   end
   return false
end

local function both(fmt, ...)
   for _, t in ipairs(TABLES) do
      con:query(string.format(fmt, t, ...))
   end
end

function event()
   local size = sysbench.opt.table_size
   local a = sysbench.rand.default(1, size)
   local b = sysbench.rand.default(1, size)
   local c = get_c_value()
   local d = sysbench.rand.default(1, size)
   local k = sysbench.rand.default(1, size)
   local c2 = get_c_value()
   local pad = get_pad_value()

   con:query("BEGIN")
   both("UPDATE %s SET k=k+1 WHERE id=%d", a)
   both("UPDATE %s SET c='%s' WHERE id=%d", c, b)
   both("DELETE FROM %s WHERE id=%d", d)
   both("INSERT INTO %s (id, k, c, pad) VALUES (%d, %d, '%s', '%s')", d, k, c2, pad)
   con:query("COMMIT")

   -- A true return value ends this thread's loop (sysbench's thread_run).
   return stop_requested()
end

function sysbench.hooks.before_restart_event(errdesc)
   -- Said on stderr, so the bench can show which errors were retried.
   io.stderr:write(string.format("wraith-bench: retried error %s: %s (%s)\n",
      tostring(errdesc.sql_errno), tostring(errdesc.sql_errmsg), tostring(errdesc.query)))
   pcall(function() con:query("ROLLBACK") end)
end
