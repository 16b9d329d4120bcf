-- A staged load profile (docs/scenario-api.md, "Load shapes"): 2 users, then 6, then 3, for 4 s
-- each, then the test ends by itself. A real test would use stages of minutes.
--
--   build/acrida-target --port 8080 &
--   build/acrida-master -f examples/stages.lua -H http://127.0.0.1:8080 \
--       --headless --local-workers 2 --csv stages
--
-- The stages give the users and spawn rate (-u/-r are not used); stages_stats_history.csv shows
-- the user count follow them. Durations count from the start of the test, as in Locust's
-- examples: the second stage runs from 4 s to 8 s. Any function of the run time works as well:
--
--   acrida.shape(function(run_time)
--     if run_time >= 60 then return nil end            -- nil ends the test
--     return 10 + math.floor(run_time / 10) * 5, 10      -- users, spawn rate
--   end)
local acrida = require "acrida"

acrida.user {
  name = "Browser",
  wait_time = acrida.between(0.05, 0.1),
  tasks = {
    { weight = 3, name = "index", fn = function(self) self.client:get("/") end },
    { weight = 1, name = "bytes", fn = function(self)
        self.client:get("/bytes/512", { name = "/bytes/[n]" })
      end },
  },
}

acrida.stages {
  { duration = 4, users = 2, spawn_rate = 10 },
  { duration = 8, users = 6, spawn_rate = 10 },
  { duration = 12, users = 3, spawn_rate = 10 },
}
