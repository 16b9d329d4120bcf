-- Master-only and worker-only code with a message exchange (docs/scenario-api.md, "Messages").
--
--   build/acrida-target --port 8080 &
--   build/acrida-master -f examples/messages.lua -H http://127.0.0.1:8080 \
--       -u 4 -r 4 -t 20s --headless --local-workers 2
--
-- Every process loads this file; acrida.runner.role says which one runs it. When the test starts,
-- the master sends each worker a share of the item ids to request; each worker answers with what
-- it got, and its users request only their worker's items. The master writes what the workers
-- answered to $EXAMPLE_REPORT_DIR/messages-report.txt when that variable is set (the test suite
-- sets it), else to stderr.
local acrida = require "acrida"

local ITEMS = 40
local my_ids = nil -- a worker's share, once the master sent it

acrida.user {
  name = "ItemReader",
  wait_time = acrida.constant(0.1),
  tasks = { function(self)
    if my_ids then
      self.client:get("/?item=" .. my_ids[math.random(#my_ids)], { name = "/?item=[id]" })
    else
      self.client:get("/")
    end
  end },
}

if acrida.runner.role == "master" then
  local replies = {}

  local function report()
    local n, lines = 0, {}
    for node, r in pairs(replies) do
      n = n + 1
      lines[#lines + 1] = string.format("%s got %d items (first %d)", node, r.count, r.first)
    end
    table.sort(lines)
    local text = string.format("workers=%d\n%s\n", n, table.concat(lines, "\n"))
    local dir = os.getenv("EXAMPLE_REPORT_DIR")
    if dir then
      local f = assert(io.open(dir .. "/messages-report.txt", "w"))
      f:write(text)
      f:close()
    else
      io.stderr:write(text)
    end
  end

  -- a worker's answer: msg.node_id names it, msg.data is the table it sent
  acrida.runner:register_message("items_received", function(msg)
    replies[msg.node_id] = msg.data
    report()
  end)

  -- deal the ids out when the workers have their users: one message per worker
  acrida.events.worker_report:add_listener(function(node_id, data)
    if data.worker_index ~= nil and not replies[node_id] then
      local ids = {}
      for id = 1, ITEMS do
        if id % 2 == data.worker_index % 2 then ids[#ids + 1] = id end
      end
      acrida.runner:send_message("items", { ids = ids, note = { from = "master" } }, node_id)
    end
  end)
else
  local index = nil

  acrida.events.test_start:add_listener(function(env) index = env.worker_index end)
  -- tell the master who we are in every report until the ids came
  acrida.events.report_to_master:add_listener(function(data)
    if not my_ids and index then data.worker_index = index end
  end)

  acrida.runner:register_message("items", function(msg)
    my_ids = msg.data.ids
    acrida.runner:send_message("items_received", {
      count = #my_ids, first = my_ids[1], from = msg.data.note.from,
    })
  end)
end
