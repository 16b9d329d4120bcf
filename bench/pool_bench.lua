-- bench/pool_bench.py's scenario (issue #9; docs/benchmarks.md, "Pools"): every user does
-- nothing but pool round trips, with no HTTP and no wait_time.
--
-- The environment (set by bench/pool_bench.py; the master and its local workers both read it):
--   POOL_BENCH_MODE  "lease" (default): each task is `local r = pool:acquire(); pool:release(r)`;
--                    "queue": each task is one `pool:next()`
--   POOL_BENCH_ROWS  rows in the pool (default 50)
--   POOL_BENCH_T0, POOL_BENCH_T1  the measured window, in seconds of the machine's monotonic
--                    clock (acrida.time() and Python's time.monotonic() are both CLOCK_MONOTONIC):
--                    only the round trips that end inside [T0, T1) are reported, so the master's
--                    counts and percentiles cover the window alone (default: every round trip)
local acrida = require "acrida"

local mode = os.getenv("POOL_BENCH_MODE") or "lease"
local nrows = tonumber(os.getenv("POOL_BENCH_ROWS") or "50")
local t0 = tonumber(os.getenv("POOL_BENCH_T0") or "0")
local t1 = tonumber(os.getenv("POOL_BENCH_T1") or "1e300")

local rows = {}
for i = 1, nrows do rows[i] = { id = i } end
local pool = acrida.pool("bench", { rows = rows, mode = mode })
local now = acrida.time

local function record(name, started, ended, err)
  if ended >= t0 and ended < t1 then
    acrida.report { request_type = "POOL", name = name, response_time = (ended - started) * 1000,
                    exception = err }
  end
end

local task
if mode == "lease" then
  task = function()
    local started = now()
    local row, err = pool:acquire()
    if row then pool:release(row) end
    record("acquire+release", started, now(), err)
  end
else
  task = function()
    local started = now()
    local _, err = pool:next()
    record("next", started, now(), err)
  end
end

acrida.user { name = "PoolUser", tasks = { task } }
