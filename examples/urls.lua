-- Test data from CSV files (docs/scenario-api.md, "Pools"): random URLs from urls.csv for every
-- request, and a one-time list of orders that the whole cluster consumes once ("queue": each row
-- goes to exactly one user on one worker, then next() answers nil, "exhausted").
--
--   acrida-master -f examples/urls.lua -H http://127.0.0.1:8080 -u 4 -r 4 -t 10s \
--     --headless --local-workers 2
local acrida = require "acrida"

local urls = acrida.pool("urls", { csv = "urls.csv", mode = "random" })

local orders = {}
for i = 1, 20 do orders[i] = { id = i } end
local order_queue = acrida.pool("orders", { rows = orders, mode = "queue" })

acrida.user {
  name = "Browser",
  wait_time = acrida.constant(0.05),
  tasks = {
    { weight = 3, fn = function(self)
        local u = urls:next()
        self.client:get(u.path, { name = u.name })
      end },
    { weight = 1, fn = function(self)
        local order, err = order_queue:next()
        if not order then return end -- "exhausted": every order was placed once
        self.client:get("/status/201?order=" .. order.id, { name = "/order" })
      end },
  },
}
