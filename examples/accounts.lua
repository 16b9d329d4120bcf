-- A cluster-wide account pool (docs/scenario-api.md, "Pools"): 5 accounts from accounts.csv
-- shared by every user on every worker. Each user leases an account on start and gives it back on
-- stop; no two users anywhere hold the same account at once. With more users than accounts, the
-- others wait in acquire() until one is released (here for at most 30 s).
--
--   acrida-master -f examples/accounts.lua -H http://127.0.0.1:8080 -u 8 -r 8 -t 20s \
--     --headless --local-workers 2
local acrida = require "acrida"

local accounts = acrida.pool("accounts", { csv = "accounts.csv" }) -- mode "lease" by default

acrida.user {
  name = "AccountUser",
  wait_time = acrida.between(0.1, 0.3),
  on_start = function(self)
    local account, err = accounts:acquire(30)
    if not account then
      self:stop() -- no account within 30 s ("timeout"): this user gives up
      return
    end
    self.account = account
    self.client:post("/echo", { form = { user = account.user, password = account.password },
                                name = "/login" })
  end,
  on_stop = function(self)
    -- optional: a user's accounts return when it stops anyway (and at the test's stop, and when
    -- its worker is lost)
    if self.account then accounts:release(self.account) end
  end,
  tasks = {
    function(self) self.client:get("/cookies", { name = "/home" }) end,
  },
}
