-- A small CSV reader (header line, comma-separated, no quoting) for examples/bundle/scenario.lua.
local M = {}

function M.read(path)
  local f = assert(io.open(path, "r"))
  local header, rows = nil, {}
  for line in f:lines() do
    local fields = {}
    for v in line:gmatch("[^,]+") do fields[#fields + 1] = v end
    if not header then
      header = fields
    elseif #fields > 0 then
      local row = {}
      for i, k in ipairs(header) do row[k] = fields[i] end
      rows[#rows + 1] = row
    end
  end
  f:close()
  assert(#rows > 0, path .. " has no rows")
  return rows
end

return M
