-- Request paths and names for examples/bundle/scenario.lua.
local M = {}

function M.user(id)
  return "/status/200?user=" .. id
end

function M.name(name)
  return "/user/" .. name
end

return M
