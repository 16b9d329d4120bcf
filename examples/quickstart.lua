-- The quick-start scenario: two user classes against acrida-target's routes.
--
--   build/acrida-target --port 8080 &
--   build/acrida-master -f examples/quickstart.lua -H http://127.0.0.1:8080 \
--       -u 20 -r 10 -t 30s --headless --local-workers 2
--
-- The classes set no `host`, so the master's -H decides (acrida-target listens on
-- http://127.0.0.1:8080 by default). A class's own `host = "http://..."` would win over -H.
local acrida = require "acrida"

acrida.user {
  name = "Reader",
  weight = 3,
  wait_time = acrida.between(0.01, 0.05),
  tasks = {
    { weight = 4, name = "index", fn = function(self)
        self.client:get("/")
      end },
    { weight = 2, name = "bytes", fn = function(self)
        local n = math.random(1, 4) * 256
        self.client:get("/bytes/" .. n, {
          name = "/bytes/[n]",
          check = function(r) return #r.body == n, "short body" end,
        })
      end },
    { weight = 1, name = "slow", fn = function(self)
        self.client:get("/delay/" .. math.random(5, 50), { name = "/delay/[ms]" })
      end },
  },
}

acrida.user {
  name = "Breaker",
  weight = 1,
  wait_time = acrida.constant(0.1),
  lang = "en",  -- extra fields are defaults of every instance (self.lang)
  tasks = {
    function(self)
      -- fails on purpose: the failures table of the demo is not empty
      self.client:get("/status/500", { name = "/status/500" })
    end,
    function(self)
      local r = self.client:get("/status/404", {
        name = "/status/404", catch_response = true, headers = { ["Accept-Language"] = self.lang } })
      if r.status == 404 then r:success() end  -- expected: recorded as a success
    end,
  },
}
