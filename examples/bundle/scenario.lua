-- A scenario shipped as a bundle (docs/scenario-api.md, "Shipping files to workers"): it requires
-- a helper module and a nested one from its own directory, and reads a data file it declares
-- with acrida.files. Workers started without -f receive all three from the master, whatever
-- their working directory:
--
--   (cd examples/bundle && acrida-master -f scenario.lua -H http://127.0.0.1:8080 -u 4 -r 4 \
--      -t 10s --headless --expect-workers 2)
--   acrida-worker --master-host 127.0.0.1     # twice, from any directory, without -f
local acrida = require "acrida"
local paths = require "paths" -- paths.lua, next to this file

-- Shipped with the scenario; read by each user on the worker (relative to this directory).
acrida.files { "data/users.csv" }

acrida.user {
  name = "Reader",
  wait_time = acrida.constant(0.05),
  on_start = function(self)
    local csv = require "lib.csv" -- lib/csv.lua; also found when required inside a task
    self.users = csv.read("data/users.csv")
    self.i = 0
  end,
  tasks = {
    function(self)
      self.i = self.i % #self.users + 1
      local u = self.users[self.i]
      self.client:get(paths.user(u.id), { name = paths.name(u.name) })
    end,
  },
}
