-- Forward every request's result to an external store in bulk, without the forwarding counting
-- as load (docs/scenario-api.md, "Events" and "Background tasks: acrida.spawn").
--
--   build/acrida-target --port 8080 &
--   FORWARD_URL=http://127.0.0.1:9200/_bulk \
--   build/acrida-master -f examples/forwarder.lua -H http://127.0.0.1:8080 \
--       -u 4 -r 4 -t 30s --headless --local-workers 2
--
-- On each worker a `request` listener appends every recorded result to a buffer (a listener must
-- not wait, so it only buffers). A background task started with acrida.spawn from the first
-- user's on_start sends the buffer to FORWARD_URL (default: Elasticsearch's _bulk API on
-- 127.0.0.1:9200) in Elasticsearch's bulk format whenever it holds BATCH results (all it holds:
-- at high rates a batch is larger), or every second, with `record = false`: those requests are
-- not in the statistics and fire no `request` event. Spawned tasks are killed at once when the
-- test stops, so each user's on_stop flushes what is left, including a batch whose request was
-- abandoned by the kill. Every document has an `_id` (worker and sequence number): sending one
-- twice overwrites it, so the store ends up with exactly one document per recorded request.
local acrida = require "acrida"

local FORWARD_URL = os.getenv("FORWARD_URL") or "http://127.0.0.1:9200/_bulk"
local INDEX = "acrida"
local BATCH = 100 -- send the buffer once it holds this many results (checked every 0.1 s)
local PERIOD = 1 -- else every PERIOD seconds

local start_forwarding, flush_all -- workers only: a user's on_start and on_stop call them

if acrida.runner.role == "worker" then
  local json = require "cjson"
  local unsent = {} -- results not yet sent: { id = ..., doc = {...} }
  local inflight = {} -- batches sent whose answer has not arrived (set of lists)
  local seq = 0
  local loop -- the spawned task of the current test

  acrida.events.request:add_listener(function(r)
    seq = seq + 1
    unsent[#unsent + 1] = {
      id = string.format("w%d-%d", acrida.runner.worker_index or -1, seq),
      doc = {
        ["@timestamp"] = os.time(),
        request_type = r.request_type,
        name = r.name,
        response_time = r.response_time,
        response_length = r.response_length,
        status = r.status,
        exception = r.exception and tostring(r.exception) or json.null,
      },
    }
  end)

  -- Sends @batch (a list of results) with record = false; puts it back in the buffer when the
  -- store did not accept it, so the next flush retries it.
  local function send(client, batch)
    local lines = {}
    for _, e in ipairs(batch) do
      lines[#lines + 1] = json.encode({ index = { _index = INDEX, _id = e.id } })
      lines[#lines + 1] = json.encode(e.doc)
    end
    inflight[batch] = true
    local r = client:post(FORWARD_URL, {
      body = table.concat(lines, "\n") .. "\n",
      headers = { ["Content-Type"] = "application/x-ndjson" },
      record = false,
    })
    inflight[batch] = nil
    if not r.ok then
      for _, e in ipairs(batch) do unsent[#unsent + 1] = e end
      io.stderr:write("forwarder: " .. (r.error or ("HTTP " .. r.status)) .. "\n")
    end
  end

  local function take_unsent()
    local batch = unsent
    unsent = {}
    return batch
  end

  local function forward_loop(client)
    local last = acrida.time()
    while true do
      if #unsent >= BATCH or (#unsent > 0 and acrida.time() - last >= PERIOD) then
        last = acrida.time()
        send(client, take_unsent())
      else
        acrida.sleep(0.1)
      end
    end
  end

  -- Everything not acknowledged: the buffer and the batches a killed task left in flight.
  function flush_all(client)
    local batch = take_unsent()
    for b in pairs(inflight) do
      for _, e in ipairs(b) do batch[#batch + 1] = e end
    end
    inflight = {}
    if #batch > 0 then send(client, batch) end
  end

  function start_forwarding(client)
    if not (loop and loop:alive()) then loop = acrida.spawn(forward_loop, client) end
  end
end

acrida.user {
  name = "Visitor",
  wait_time = acrida.constant(0.05),
  on_start = function(self) start_forwarding(self.client) end,
  on_stop = function(self) flush_all(self.client) end,
  tasks = {
    { weight = 3, fn = function(self) self.client:get("/") end },
    function(self) self.client:get("/bytes/100") end,
  },
}
