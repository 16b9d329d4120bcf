-- One `get` task and no wait: the scenario of SPEC §11's CPU-per-request target.
local acrida = require "acrida"
acrida.user { name = "Get", tasks = { function(self) self.client:get("/100b.txt") end } }
