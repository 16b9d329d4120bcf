-- A record lock per task (docs/scenario-api.md, "Pools"): no two users, on any worker, process the
-- same data record at once. The record ids are a lease pool declared from a Lua table; each task
-- leases one record (waiting, first come first served across the cluster, while all are being
-- processed), processes it with two requests that name it, and releases it in the same task. A
-- task cut by the test's stop gives its record back anyway (the user's leases return when it
-- stops, and every lease returns when the test stops).
--
--   acrida-master -f examples/record_lock.lua -H http://127.0.0.1:8080 -u 10 -r 10 -t 20s \
--     --headless --local-workers 2
--
-- With $EXAMPLE_REPORT_DIR set (the test suite sets it), each worker appends a line
-- "B|E <record> <user id> <acrida.time()>" when a user begins and ends processing a record to a file
-- ev.* of its own there, so a test can check that no two processings of a record overlap.
local acrida = require "acrida"

local records = acrida.pool("records", { rows = { { id = "rec-1" }, { id = "rec-2" },
                                                  { id = "rec-3" } } }) -- mode "lease"

local dir = acrida.runner.role == "worker" and os.getenv("EXAMPLE_REPORT_DIR")
local log
local function note(kind, record, self)
  if not dir then return end
  if not log then
    log = assert(io.open(string.format("%s/ev.%d.%d", dir, math.random(1e9), math.random(1e9)),
                         "a"))
  end
  log:write(string.format("%s %s %d %.9f\n", kind, record, self.id, acrida.time()))
  log:flush()
end

acrida.user {
  name = "RecordProcessor",
  wait_time = acrida.between(0, 0.05),
  tasks = {
    function(self)
      local record = assert(records:acquire()) -- waits until a record is free
      note("B", record.id, self)
      self.client:get("/delay/10", { query = { record = record.id }, name = "/record/[id] read" })
      self.client:post("/echo", { json = { record = record.id, processed_by = self.id },
                                  name = "/record/[id] write" })
      note("E", record.id, self)
      records:release(record)
    end,
  },
}
