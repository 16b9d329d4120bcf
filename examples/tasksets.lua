-- Nested task sets, an ordered sequence and tags, against acrida-target (examples/target.sh).
--
--   acrida-master -f examples/tasksets.lua -H http://127.0.0.1:8080 -u 4 -r 4 -t 30s \
--     --headless --local-workers 1
--   ... -T checkout          only the checkout sequence (a class left with no task is an error)
--   ... -E slow              everything but the tasks tagged "slow"
--
-- A shop visitor browses (a task set: several page views, then back to the top level), or goes
-- through a checkout (a sequence: cart, address, twice payment, confirmation, in that order).
local acrida = require "acrida"

local browse = acrida.taskset {
  name = "browse",
  weight = 3,
  tags = { "browse" },                 -- every task inside is tagged "browse" too
  wait_time = acrida.constant(0.1),    -- inside the set; the user's wait_time otherwise
  on_start = function(self) self.pages = 0 end,
  tasks = {
    { weight = 3, fn = function(self)
        self.client:get("/bytes/100", { name = "/product" })
        self.pages = self.pages + 1
        if self.pages >= 5 then self:interrupt() end   -- back to the user's top-level tasks
      end },
    { weight = 1, tags = { "slow" }, fn = function(self)
        self.client:get("/delay/50", { name = "/search" })
      end },
  },
}

local checkout = acrida.sequence {
  name = "checkout",
  tags = { "checkout" },
  on_stop = function(self) self.client:get("/status/204", { name = "/checkout/done" }) end,
  tasks = {
    function(self) self.client:post("/echo", { name = "/cart", json = { item = 1 } }) end,
    function(self) self.client:get("/status/200", { name = "/address" }) end,
    { weight = 2, fn = function(self)   -- runs twice in a row
        self.client:get("/status/201", { name = "/pay" })
      end },
    function(self)
      self.client:get("/status/202", { name = "/confirm" })
      self:interrupt()                   -- the sequence ends here
    end,
  },
}

acrida.user {
  name = "Shopper",
  wait_time = acrida.between(0.1, 0.3),
  tasks = {
    browse,
    checkout,
    { weight = 1, tags = { "home" }, fn = function(self) self.client:get("/") end },
  },
}
