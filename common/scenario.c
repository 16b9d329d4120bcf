/*
 * The scenario loader: a LuaJIT state with the `acrida` module's declaration side (acrida.user and
 * its validation, the wait_time helpers, acrida.time, acrida.runner), running a scenario file and
 * reading back the user classes it declared. Both daemons use it: the master to validate a
 * scenario and learn its classes, the worker's runtime (worker/runtime*.c) as the base it adds
 * the running side to (users, HTTP client, sleep, report).
 *
 * The declaration code is a Lua prelude compiled into the binary (chunk name "=[acrida]"), so
 * validation errors are raised with error(msg, level) at the scenario's own file:line. Declared
 * classes live in a registry list (ACR_CLASSES_KEY) as validated tables; the module table is at
 * ACR_MODULE_KEY.
 */
#include "common/scenario.h"

#include "common/events.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACR_CLASSES_KEY "acrida.classes"
#define ACR_MODULE_KEY "acrida.module"
#define ACR_APPLY_TAGS_KEY "acrida.apply_tags"

/* Arguments: the module table, the classes list, a table of C helpers. */
static const char prelude_src[] =
    "local acrida, classes, C = ...\n"
    "local type, pairs, ipairs, error, tostring, rawget, rawset, next = type, pairs, ipairs, "
    "error, tostring, rawget, rawset, next\n"
    "local random, huge = math.random, math.huge\n"
    "local now = C.time\n"
    "local byname = {}\n"
    "local DECL = setmetatable({}, { __mode = 'k' })\n"
    "local KNOWN = { name = true, weight = true, fixed_count = true, host = true,\n"
    "  wait_time = true, on_start = true, on_stop = true, tasks = true }\n"
    "local SETKNOWN = { name = true, weight = true, tags = true, wait_time = true,\n"
    "  on_start = true, on_stop = true, tasks = true }\n"
    "local function bad(msg, lv) error(msg, lv or 3) end\n"
    "local function isnum(v) return type(v) == 'number' and v == v and v < huge end\n"
    "local function check_tags(tags, P, lv)\n"
    "  if tags == nil then return {} end\n"
    "  if type(tags) ~= 'table' then bad(P .. \"'tags' must be a list of strings\", lv + 1) end\n"
    "  local out = {}\n"
    "  for _, g in pairs(tags) do\n"
    "    if type(g) ~= 'string' then bad(P .. \"'tags' must be a list of strings\", lv + 1) end\n"
    "    out[#out + 1] = g\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "local function check_wait(wt, P, lv)\n"
    "  if isnum(wt) then\n"
    "    if wt < 0 then bad(P .. \"'wait_time' must be >= 0\", lv + 1) end\n"
    "    local s = wt\n"
    "    return function() return s end\n"
    "  elseif wt ~= nil and type(wt) ~= 'function' then\n"
    "    bad(P .. \"'wait_time' must be a function such as acrida.between(1, 3)\", lv + 1)\n"
    "  end\n"
    "  return wt\n"
    "end\n"
    "local function check_hooks(spec, P, lv)\n"
    "  for _, k in ipairs({ 'on_start', 'on_stop' }) do\n"
    "    if spec[k] ~= nil and type(spec[k]) ~= 'function' then\n"
    "      bad(P .. \"'\" .. k .. \"' must be a function(self)\", lv + 1)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "-- The entries of a tasks list: { fn = f | set = declaration, weight, name, tags }.\n"
    "local function entries(tasks, P, seq, lv)\n"
    "  if type(tasks) ~= 'table' or next(tasks) == nil then\n"
    "    bad(P .. \"'tasks' is required (a non-empty list of tasks)\", lv + 1)\n"
    "  end\n"
    "  local n = 0\n"
    "  for _ in pairs(tasks) do n = n + 1 end\n"
    "  if n ~= #tasks then\n"
    "    bad(P .. \"'tasks' must be a list: tasks = { f1, { fn = f2, weight = 2 } }\", lv + 1)\n"
    "  end\n"
    "  local out, any = {}, false\n"
    "  for i, t in ipairs(tasks) do\n"
    "    local TP = P .. 'task #' .. i .. ': '\n"
    "    local e\n"
    "    if type(t) == 'table' and DECL[t] then\n"
    "      e = { set = t, weight = t.weight, name = t.name or (t.kind .. i), tags = t.tags }\n"
    "    elseif type(t) == 'table' then\n"
    "      local fn, w, tname = t.fn or t[1], t.weight, t.name\n"
    "      if w == nil then w = 1 end\n"
    "      if type(fn) ~= 'function' then bad(TP .. \"'fn' must be a function(self)\", lv + 1) "
    "end\n"
    "      if not isnum(w) or w < 0 then bad(TP .. \"'weight' must be a number >= 0\", lv + 1) "
    "end\n"
    "      if tname ~= nil and type(tname) ~= 'string' then bad(TP .. \"'name' must be a string\", "
    "lv + 1) end\n"
    "      e = { fn = fn, weight = w, name = tname or ('task' .. i), tags = check_tags(t.tags, TP, "
    "lv + 1) }\n"
    "    elseif type(t) == 'function' then\n"
    "      e = { fn = t, weight = 1, name = 'task' .. i, tags = {} }\n"
    "    else\n"
    "      bad(TP .. 'expected a function, a table { fn = function(self) ... end, weight = n }, '\n"
    "        .. 'an acrida.taskset or an acrida.sequence', lv + 1)\n"
    "    end\n"
    "    if seq and e.weight % 1 ~= 0 then\n"
    "      bad(TP .. \"'weight' in a sequence must be an integer (runs in a row)\", lv + 1)\n"
    "    end\n"
    "    if e.weight > 0 then any = true end\n"
    "    out[#out + 1] = e\n"
    "  end\n"
    "  if not any then bad(P .. \"'tasks' has no task with weight > 0\", lv + 1) end\n"
    "  return out\n"
    "end\n"
    "local function declare_set(kind, spec)\n"
    "  local W = 'acrida.' .. kind\n"
    "  if type(spec) ~= 'table' then bad(W .. ' expects a table: ' .. W .. ' { tasks = { ... } }', "
    "4) end\n"
    "  local name = spec.name\n"
    "  if name ~= nil and (type(name) ~= 'string' or name == '') then\n"
    "    bad(W .. \": 'name' must be a non-empty string\", 4)\n"
    "  end\n"
    "  local P = W .. (name and (\" '\" .. name .. \"'\") or '') .. ': '\n"
    "  local w = spec.weight\n"
    "  if w == nil then w = 1 end\n"
    "  if not isnum(w) or w < 0 then bad(P .. \"'weight' must be a number >= 0\", 4) end\n"
    "  check_hooks(spec, P, 4)\n"
    "  local d = { kind = kind, name = name, weight = w, tags = check_tags(spec.tags, P, 4),\n"
    "    wait_time = check_wait(spec.wait_time, P, 4), on_start = spec.on_start,\n"
    "    on_stop = spec.on_stop, entries = entries(spec.tasks, P, kind == 'sequence', 4) }\n"
    "  for k, v in pairs(spec) do\n"
    "    if not SETKNOWN[k] then d[k] = v end\n"
    "  end\n"
    "  DECL[d] = true\n"
    "  return d\n"
    "end\n"
    "function acrida.taskset(spec)\n"
    "  local d = declare_set('taskset', spec)\n"
    "  return d\n"
    "end\n"
    "function acrida.sequence(spec)\n"
    "  local d = declare_set('sequence', spec)\n"
    "  return d\n"
    "end\n"
    "local function has_any(tags, set)\n"
    "  for i = 1, #tags do\n"
    "    if set[tags[i]] then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "-- The runnable tree of a task list after the tag filter (inc/exc: sets of tags or nil): "
    "items\n"
    "-- (functions or nested nodes), cum (cumulative weights), total, names, seq (a sequence's "
    "run\n"
    "-- order, weights expanded), nil when nothing is left.\n"
    "local function prepare(d, ents, inh, inc, exc, seqkind)\n"
    "  local items, names, cum, total, seq = {}, {}, {}, 0, nil\n"
    "  if seqkind then seq = {} end\n"
    "  for _, e in ipairs(ents) do\n"
    "    if e.weight > 0 then\n"
    "      local tags = inh\n"
    "      if #e.tags > 0 then\n"
    "        tags = {}\n"
    "        for i = 1, #inh do tags[i] = inh[i] end\n"
    "        for i = 1, #e.tags do tags[#tags + 1] = e.tags[i] end\n"
    "      end\n"
    "      local item\n"
    "      if e.set then\n"
    "        item = prepare(e.set, e.set.entries, tags, inc, exc, e.set.kind == 'sequence')\n"
    "      elseif (not inc or has_any(tags, inc)) and not (exc and has_any(tags, exc)) then\n"
    "        item = e.fn\n"
    "      end\n"
    "      if item then\n"
    "        total = total + e.weight\n"
    "        local k = #items + 1\n"
    "        items[k], cum[k], names[k] = item, total, e.name\n"
    "        if seq then\n"
    "          for _ = 1, e.weight do seq[#seq + 1] = item end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if #items == 0 then return nil end\n"
    "  local node = { items = items, n = #items, cum = cum, total = total, names = names, seq = "
    "seq,\n"
    "    nseq = seq and #seq or 0, decl = d }\n"
    "  if d then\n"
    "    node.wait_time, node.on_start, node.on_stop = d.wait_time, d.on_start, d.on_stop\n"
    "  end\n"
    "  return node\n"
    "end\n"
    "local function set_root(cls, root)\n"
    "  cls.root = root\n"
    "  cls.ntasks = root and root.n or 0\n"
    "  cls.task_fns = root and root.items or {}\n"
    "  cls.task_cum = root and root.cum or {}\n"
    "  cls.task_names = root and root.names or {}\n"
    "  cls.total = root and root.total or 0\n"
    "end\n"
    "local function tagset(list)\n"
    "  if list == nil or #list == 0 then return nil end\n"
    "  local s = {}\n"
    "  for i = 1, #list do s[list[i]] = true end\n"
    "  return s\n"
    "end\n"
    "-- Applies --tags/--exclude-tags to every class; nil, or the message naming the first class "
    "left\n"
    "-- without a task (nothing is changed then).\n"
    "local function apply_tags(inc, exc)\n"
    "  inc, exc = tagset(inc), tagset(exc)\n"
    "  local roots = {}\n"
    "  for i, cls in ipairs(classes) do\n"
    "    local r = prepare(nil, cls.entries, {}, inc, exc, false)\n"
    "    if not r and (cls.weight > 0 or cls.fixed_count > 0) then\n"
    "      return \"user class '\" .. cls.name .. \"' has no task left after "
    "--tags/--exclude-tags\"\n"
    "    end\n"
    "    roots[i] = r or false\n"
    "  end\n"
    "  for i, cls in ipairs(classes) do set_root(cls, roots[i] or nil) end\n"
    "  return nil\n"
    "end\n"
    "function acrida.user(spec)\n"
    "  if type(spec) ~= 'table' then\n"
    "    bad('acrida.user expects a table: acrida.user { name = \"...\", tasks = { ... } }')\n"
    "  end\n"
    "  local name = spec.name\n"
    "  if type(name) ~= 'string' or name == '' then\n"
    "    bad(\"acrida.user: 'name' is required (a non-empty string)\")\n"
    "  end\n"
    "  local P = \"acrida.user '\" .. name .. \"': \"\n"
    "  if byname[name] then bad(P .. 'duplicate user class name') end\n"
    "  local weight = spec.weight\n"
    "  if weight == nil then weight = 1 end\n"
    "  if not isnum(weight) or weight < 0 then bad(P .. \"'weight' must be a number >= 0\") end\n"
    "  local fixed = spec.fixed_count\n"
    "  if fixed == nil then fixed = 0 end\n"
    "  if not isnum(fixed) or fixed < 0 or fixed % 1 ~= 0 then\n"
    "    bad(P .. \"'fixed_count' must be an integer >= 0\")\n"
    "  end\n"
    "  local host = spec.host\n"
    "  if host ~= nil then\n"
    "    if type(host) ~= 'string' or not (host:match('^https?://[^/]')) then\n"
    "      bad(P .. \"'host' must be a string starting with http:// or https://\")\n"
    "    end\n"
    "    host = host:gsub('/+$', '')\n"
    "  end\n"
    "  local wt = check_wait(spec.wait_time, P, 3)\n"
    "  check_hooks(spec, P, 3)\n"
    "  local ents = entries(spec.tasks, P, false, 3)\n"
    "  local proto = {}\n"
    "  for k, v in pairs(spec) do\n"
    "    if not KNOWN[k] then proto[k] = v end\n"
    "  end\n"
    "  local cls = { name = name, weight = weight, fixed_count = fixed, host = host,\n"
    "    wait_time = wt, on_start = spec.on_start, on_stop = spec.on_stop, entries = ents,\n"
    "    proto = proto }\n"
    "  set_root(cls, prepare(nil, ents, {}, nil, nil, false))\n"
    "  byname[name] = cls\n"
    "  classes[#classes + 1] = cls\n"
    "  return cls\n"
    "end\n"
    "local function secs(v, what)\n"
    "  if not isnum(v) or v < 0 then error(what .. ' expects a number of seconds >= 0', 3) end\n"
    "end\n"
    "function acrida.between(a, b)\n"
    "  secs(a, 'acrida.between'); secs(b, 'acrida.between')\n"
    "  if b < a then error('acrida.between(min, max): max is smaller than min', 2) end\n"
    "  local d = b - a\n"
    "  return function() return a + random() * d end\n"
    "end\n"
    "function acrida.constant(x)\n"
    "  secs(x, 'acrida.constant')\n"
    "  return function() return x end\n"
    "end\n"
    "local function pacing(x)\n"
    "  local key = {}\n"
    "  return function(self)\n"
    "    local t = now()\n"
    "    local last_end = rawget(self, key)\n"
    "    local w = x\n"
    "    if last_end then\n"
    "      w = x - (t - last_end)\n"
    "      if w < 0 then w = 0 end\n"
    "    end\n"
    "    rawset(self, key, t + w)\n"
    "    return w\n"
    "  end\n"
    "end\n"
    "function acrida.constant_pacing(x)\n"
    "  secs(x, 'acrida.constant_pacing')\n"
    "  return pacing(x)\n"
    "end\n"
    "function acrida.constant_throughput(n)\n"
    "  if not isnum(n) or n <= 0 then\n"
    "    error('acrida.constant_throughput expects a number of task runs per second > 0', 2)\n"
    "  end\n"
    "  return pacing(1 / n)\n"
    "end\n"
    "acrida.time = now\n"
    "return apply_tags\n";

static int l_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

static int l_sleep_master(lua_State *L)
{
    return luaL_error(L, "acrida.sleep is only available inside a user on a worker");
}

static int l_spawn_master(lua_State *L)
{
    return luaL_error(L, "acrida.spawn is only available on workers");
}

static int l_report_noop(lua_State *L)
{
    (void)L;
    return 0;
}

/* acrida.pool where no runtime installed its own (master/pools.c, worker/pools.c): an inert
 * declaration, so that a scenario loads for validation. */
static int l_pool_default(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    return 1;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg ? msg : "unknown error");
}

/* Message handler for the scenario's main chunk: keeps the message, logs nothing. Non-string
 * error values get a readable description. */
static int msgh(lua_State *L)
{
    if (!lua_isstring(L, 1)) {
        lua_pushfstring(L, "scenario raised a non-string error (a %s value)", luaL_typename(L, 1));
    }
    return 1;
}

int acr_scenario_open(lua_State *L, const char *role, char *err, size_t errlen)
{
    luaL_openlibs(L);

    /* math.random differs per process (workers fork from one parent). */
    lua_getglobal(L, "math");
    lua_getfield(L, -1, "randomseed");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)(((unsigned)getpid() * 2654435761u) ^ (unsigned)ts.tv_nsec));
    lua_call(L, 1, 0);
    lua_pop(L, 1);

    lua_newtable(L); /* module */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ACR_MODULE_KEY);
    lua_newtable(L); /* runner */
    lua_pushstring(L, role);
    lua_setfield(L, -2, "role");
    lua_setfield(L, -2, "runner");
    lua_pushcfunction(L, l_sleep_master);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, l_report_noop);
    lua_setfield(L, -2, "report");
    lua_pushcfunction(L, l_spawn_master);
    lua_setfield(L, -2, "spawn");
    lua_pushcfunction(L, l_report_noop); /* load shapes run on the master (master/shape.c) */
    lua_setfield(L, -2, "shape");
    lua_pushcfunction(L, l_report_noop);
    lua_setfield(L, -2, "stages");
    lua_pushcfunction(L, l_pool_default); /* replaced by master/pools.c and worker/pools.c */
    lua_setfield(L, -2, "pool");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "acrida");
    lua_pop(L, 2);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "acrida");

    if (luaL_loadbuffer(L, prelude_src, sizeof(prelude_src) - 1, "=[acrida]") != 0) {
        set_err(err, errlen, lua_tostring(L, -1));
        lua_pop(L, 2);
        return -EINVAL;
    }
    lua_pushvalue(L, -2); /* module */
    lua_newtable(L);      /* classes */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, ACR_CLASSES_KEY);
    lua_newtable(L); /* C helpers */
    lua_pushcfunction(L, l_time);
    lua_setfield(L, -2, "time");
    if (lua_pcall(L, 3, 1, 0) != 0) {
        set_err(err, errlen, lua_tostring(L, -1));
        lua_pop(L, 2);
        return -EINVAL;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, ACR_APPLY_TAGS_KEY);
    lua_pop(L, 1);
    if (acr_events_open(L) < 0) {
        set_err(err, errlen, "cannot install acrida.events");
        return -ENOMEM;
    }
    if (acr_scenario_files_open(L) < 0) {
        set_err(err, errlen, "cannot install acrida.files");
        return -ENOMEM;
    }
    return 0;
}

/* Pushes @list (NULL-terminated, may be NULL) as a Lua list. */
static void push_list(lua_State *L, const char *const *list)
{
    lua_newtable(L);
    for (int i = 0; list && list[i]; i++) {
        lua_pushstring(L, list[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

int acr_scenario_apply_tags(lua_State *L, const char *const *tags, const char *const *exclude,
                            char *err, size_t errlen)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ACR_APPLY_TAGS_KEY);
    push_list(L, tags);
    push_list(L, exclude);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        set_err(err, errlen, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -EINVAL;
    }
    if (lua_isstring(L, -1)) {
        set_err(err, errlen, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -EINVAL;
    }
    lua_pop(L, 1);
    return 0;
}

/* package.path gets "<dir>/?.lua;<dir>/?/init.lua;" in front. */
static void add_require_dir(lua_State *L, const char *path)
{
    const char *slash = strrchr(path, '/');
    lua_getglobal(L, "package");
    if (slash) {
        lua_pushlstring(L, path, (size_t)(slash - path + 1));
    } else {
        lua_pushliteral(L, "./");
    }
    const char *dir = lua_tostring(L, -1);
    lua_pushfstring(L, "%s?.lua;%s?/init.lua;", dir, dir);
    lua_getfield(L, -3, "path");
    lua_concat(L, 2);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static int run_loaded(lua_State *L, int status, char *err, size_t errlen)
{
    if (status != 0) { /* syntax error or unreadable file: "file:line: message" already */
        set_err(err, errlen, lua_isstring(L, -1) ? lua_tostring(L, -1) : "cannot load scenario");
        lua_pop(L, 1);
        return -EINVAL;
    }
    int base = lua_gettop(L);
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    status = lua_pcall(L, 0, 0, base);
    if (status != 0) {
        set_err(err, errlen, lua_tostring(L, -1));
        lua_settop(L, base - 1);
        return -EINVAL;
    }
    lua_settop(L, base - 1);
    return 0;
}

int acr_scenario_exec_file(lua_State *L, const char *path, char *err, size_t errlen)
{
    add_require_dir(L, path);
    return run_loaded(L, luaL_loadfile(L, path), err, errlen);
}

int acr_scenario_exec_string(lua_State *L, const char *chunkname, const char *src, size_t len,
                             char *err, size_t errlen)
{
    add_require_dir(L, chunkname);
    return acr_scenario_exec_chunk(L, chunkname, src, len, err, errlen);
}

int acr_scenario_exec_chunk(lua_State *L, const char *chunkname, const char *src, size_t len,
                            char *err, size_t errlen)
{
    lua_pushfstring(L, "@%s", chunkname);
    int st = luaL_loadbuffer(L, src, len, lua_tostring(L, -1));
    lua_remove(L, -2);
    return run_loaded(L, st, err, errlen);
}

size_t acr_scenario_nclasses(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ACR_CLASSES_KEY);
    size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
    lua_pop(L, 1);
    return n;
}

void acr_scenario_push_class(lua_State *L, size_t i)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ACR_CLASSES_KEY);
    lua_rawgeti(L, -1, (int)i + 1);
    lua_remove(L, -2);
}

void acr_scenario_classes_free(acr_user_class_t *classes, size_t n)
{
    if (!classes) return;
    for (size_t i = 0; i < n; i++) {
        free(classes[i].name);
        free(classes[i].host);
        for (size_t t = 0; classes[i].task_names && t < classes[i].ntasks; t++)
            free(classes[i].task_names[t]);
        free(classes[i].task_names);
        free(classes[i].task_weights);
    }
    free(classes);
}

/* The task names and weights of the class table on top of @L's stack (left there) into @c.
 * Returns 0 or -ENOMEM (what was read is freed with the class). */
static int read_tasks(lua_State *L, acr_user_class_t *c)
{
    lua_getfield(L, -1, "ntasks");
    size_t n = (size_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (n == 0) return 0;
    c->task_names = calloc(n, sizeof(*c->task_names));
    c->task_weights = calloc(n, sizeof(*c->task_weights));
    if (!c->task_names || !c->task_weights) return -ENOMEM;
    c->ntasks = n;
    lua_getfield(L, -1, "task_names");
    lua_getfield(L, -2, "task_cum");
    double prev = 0;
    for (size_t t = 0; t < n; t++) {
        lua_rawgeti(L, -2, (int)t + 1);
        lua_rawgeti(L, -2, (int)t + 1);
        const char *name = lua_tostring(L, -2);
        double cum = lua_tonumber(L, -1);
        c->task_names[t] = strdup(name ? name : "");
        c->task_weights[t] = cum - prev;
        prev = cum;
        lua_pop(L, 2);
        if (!c->task_names[t]) {
            lua_pop(L, 2);
            return -ENOMEM;
        }
    }
    lua_pop(L, 2);
    return 0;
}

int acr_scenario_read_classes(lua_State *L, bool drop_zero, acr_user_class_t **out, size_t *n,
                              char *err, size_t errlen)
{
    size_t total = acr_scenario_nclasses(L), k = 0;
    acr_user_class_t *cls = NULL;
    *out = NULL;
    *n = 0;
    if (total == 0) {
        set_err(err, errlen, "scenario declares no user class (use acrida.user { ... })");
        return -EINVAL;
    }
    cls = calloc(total, sizeof(*cls));
    if (!cls) goto nomem;
    for (size_t i = 0; i < total; i++) {
        acr_scenario_push_class(L, i);
        lua_getfield(L, -1, "weight");
        double w = lua_tonumber(L, -1);
        lua_getfield(L, -2, "fixed_count");
        long fixed = (long)lua_tonumber(L, -1);
        lua_pop(L, 2);
        if (drop_zero && w <= 0 && fixed <= 0) {
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, -1, "name");
        cls[k].name = strdup(lua_tostring(L, -1));
        lua_getfield(L, -2, "host");
        cls[k].host = lua_isstring(L, -1) ? strdup(lua_tostring(L, -1)) : NULL;
        bool host_bad = lua_isstring(L, -1) && !cls[k].host;
        lua_pop(L, 2);
        cls[k].weight = w;
        cls[k].fixed_count = fixed;
        int trc = read_tasks(L, &cls[k]);
        lua_pop(L, 1);
        k++;
        if (!cls[k - 1].name || host_bad || trc < 0) goto nomem;
    }
    if (k == 0) {
        acr_scenario_classes_free(cls, k);
        set_err(err, errlen, "scenario declares no user class with weight > 0 or fixed_count > 0");
        return -EINVAL;
    }
    *out = cls;
    *n = k;
    return 0;
nomem:
    acr_scenario_classes_free(cls, k);
    set_err(err, errlen, "out of memory");
    return -ENOMEM;
}

int acr_scenario_classes(const char *path, acr_user_class_t **out, size_t *n, char *err,
                         size_t errlen)
{
    return acr_scenario_classes_tagged(path, NULL, NULL, out, n, err, errlen);
}

int acr_scenario_classes_tagged(const char *path, const char *const *tags,
                                const char *const *exclude, acr_user_class_t **out, size_t *n,
                                char *err, size_t errlen)
{
    int rc;
    lua_State *L = luaL_newstate();
    *out = NULL;
    *n = 0;
    if (!L) {
        set_err(err, errlen, "out of memory (Lua state)");
        return -ENOMEM;
    }
    rc = acr_scenario_open(L, "master", err, errlen);
    if (rc < 0) goto done;
    rc = acr_scenario_exec_file(L, path, err, errlen);
    if (rc < 0) goto done;
    if (acr_scenario_nclasses(L) > 0 && ((tags && tags[0]) || (exclude && exclude[0]))) {
        rc = acr_scenario_apply_tags(L, tags, exclude, err, errlen);
        if (rc < 0) goto done;
    }
    rc = acr_scenario_read_classes(L, true, out, n, err, errlen);
done:
    lua_close(L);
    return rc;
}
