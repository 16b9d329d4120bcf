-- One `get` task and no wait: the scenario of the CPU-per-request comparison with wrk (docs/benchmarks.md).
local acrida = require "acrida"
acrida.user { name = "Get", tasks = { function(self) self.client:get("/100b.txt") end } }
