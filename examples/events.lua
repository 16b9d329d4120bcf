-- Setup and cleanup around a test, and user counting (docs/scenario-api.md, "Events").
--
--   build/acrida-target --port 8080 &
--   build/acrida-master -f examples/events.lua -H http://127.0.0.1:8080 \
--       -u 4 -r 2 -t 20s --headless --local-workers 2
--
-- On the master, test_start prepares the target once per test (here it resets acrida-target's
-- counters through GET /_reset) and test_stop reads them back (GET /_count) when every worker
-- has stopped, so the target's count equals the requests the test made. The master's listeners
-- have no self.client, so they call curl (a listener blocks the master while it runs: keep it
-- short). On the workers, user_start and user_stop count users; the counts travel to the master
-- in the stats reports (report_to_master -> worker_report). The summary goes to
-- $EXAMPLE_REPORT_DIR/events-report.txt when that variable is set, else to stderr.
local acrida = require "acrida"

local function curl(url)
  local p = assert(io.popen("curl -sS --max-time 10 '" .. url:gsub("'", "") .. "'"))
  local body = p:read("*a")
  p:close()
  return body
end

if acrida.runner.role == "master" then
  local setups, cleanups, served = 0, 0, -1
  local started, stopped = {}, {} -- per worker, the totals it reported last

  acrida.events.test_start:add_listener(function(env)
    setups = setups + 1
    curl(env.host .. "/_reset")
  end)

  acrida.events.worker_report:add_listener(function(node_id, data)
    if data.users_started then
      started[node_id], stopped[node_id] = data.users_started, data.users_stopped
    end
  end)

  acrida.events.test_stop:add_listener(function(env)
    cleanups = cleanups + 1
    served = tonumber(curl(env.host .. "/_count"):match('"served":%s*(%d+)')) or -1
    local s, t = 0, 0
    for node in pairs(started) do s, t = s + started[node], t + stopped[node] end
    local text = string.format("setup=%d\ncleanup=%d\nserved=%d\nusers_started=%d\n" ..
                               "users_stopped=%d\n", setups, cleanups, served, s, t)
    local dir = os.getenv("EXAMPLE_REPORT_DIR")
    if dir then
      local f = assert(io.open(dir .. "/events-report.txt", "w"))
      f:write(text)
      f:close()
    else
      io.stderr:write(text)
    end
  end)
else
  local started, stopped = 0, 0
  acrida.events.user_start:add_listener(function(user) started = started + 1 end)
  acrida.events.user_stop:add_listener(function(user) stopped = stopped + 1 end)
  acrida.events.report_to_master:add_listener(function(data)
    data.users_started, data.users_stopped = started, stopped
  end)
end

acrida.user {
  name = "Visitor",
  wait_time = acrida.constant(0.1),
  tasks = { function(self) self.client:get("/") end },
}
