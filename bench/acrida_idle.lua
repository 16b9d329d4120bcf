-- Idle users for the memory benchmark. With BENCH_CONNECT=1 each user makes one request (so it
-- holds a keep-alive connection) and then waits an hour; otherwise it waits first. Users spread
-- over the target ports in BENCH_PORTS so connections do not exhaust one address pair's
-- ephemeral ports.
local acrida = require "acrida"
local ports = {}
for p in string.gmatch(os.getenv("BENCH_PORTS") or "8080", "%d+") do ports[#ports + 1] = p end
local connect = os.getenv("BENCH_CONNECT") == "1"
acrida.user {
  name = "Idle",
  wait_time = acrida.constant(3600),
  tasks = {
    function(self)
      if not connect then acrida.sleep(3600) end
      local p = ports[(self.id % #ports) + 1]
      self.client:get("http://127.0.0.1:" .. p .. "/100b.txt", { name = "/100b.txt" })
    end,
  },
}
