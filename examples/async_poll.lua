-- Poll an asynchronous job in the background and report its total time as one measurement
-- (docs/scenario-api.md, "Background tasks: acrida.spawn" and acrida.report).
--
--   build/acrida-target --port 8080 &
--   build/acrida-master -f examples/async_poll.lua -H http://127.0.0.1:8080 \
--       -u 4 -r 4 -t 30s --headless --local-workers 2
--
-- Each task submits a job (POST /echo stands for the job API), then hands the polling to a
-- background task started with acrida.spawn, so the user goes on with its next task at once. The
-- task polls the job's status every POLL_INTERVAL seconds until it is done and reports the time
-- from the submission to the end as one row `ASYNC job`. acrida-target has no job API, so a job
-- here is done at its POLLS-th poll: the status URL answers 202 (still running) before that and
-- 200 (done) then. The polls are recorded as `GET /job/status`; a job whose task is killed by the
-- test's stop reports nothing.
local acrida = require "acrida"

local POLLS = 3
local POLL_INTERVAL = 0.2
local TIMEOUT = 30 -- seconds after which a job counts as failed

local function poll(client, job, t0)
  for n = 1, math.huge do
    local path = n < POLLS and "/status/202" or "/status/200" -- the simulated job's state
    local r = client:get(path, { name = "/job/status", query = { job = job } })
    if r.status == 200 then
      acrida.report { request_type = "ASYNC", name = "job",
                      response_time = (acrida.time() - t0) * 1000 }
      return
    end
    if not r.ok or acrida.time() - t0 > TIMEOUT then
      acrida.report { request_type = "ASYNC", name = "job",
                      response_time = (acrida.time() - t0) * 1000,
                      exception = r.error or ("job not done after " .. n .. " polls") }
      return
    end
    acrida.sleep(POLL_INTERVAL)
  end
end

acrida.user {
  name = "JobSubmitter",
  wait_time = acrida.constant(0.5),
  tasks = { function(self)
    local t0 = acrida.time()
    local r = self.client:post("/echo", { name = "/job", json = { size = math.random(100) } })
    if r.ok then
      local job = string.format("%d-%d", self.id, math.random(1e9))
      acrida.spawn(poll, self.client, job, t0)
    end
  end },
}
