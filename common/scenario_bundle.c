/*
 * The scenario's side of bundles (common/scenario.h, common/bundle.h): acrida.files{...}, which
 * records the data files a scenario declares (the master ships them; elsewhere the call only
 * checks the names), and running a scenario from an extracted bundle: `require` finds the
 * bundle's modules first (with bundle-relative chunk names in errors), the current directory is
 * taken off package.path / package.cpath, and relative paths given to io.open, io.lines, dofile
 * and loadfile resolve against the bundle's copy of the scenario's directory.
 */
#include "common/bundle.h"
#include "common/scenario.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACR_FILES_KEY "acrida.files"

/* acrida.files{"a.csv", "data/b.csv"}: checked names appended to the registry list. */
static int l_files(lua_State *L)
{
    char why[256];
    if (!lua_istable(L, 1)) {
        luaL_where(L, 1);
        lua_pushstring(
            L, "acrida.files expects a list of file names, e.g. acrida.files{\"urls.csv\"}");
        lua_concat(L, 2);
        return lua_error(L);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, ACR_FILES_KEY);
    int list = lua_gettop(L);
    size_t n = lua_objlen(L, 1);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        size_t len = 0;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!s || !acr_bundle_path_ok(s, len, why, sizeof why)) {
            luaL_where(L, 1);
            if (s)
                lua_pushfstring(L,
                                "acrida.files: %s (names are relative to the scenario's "
                                "directory and stay inside it)",
                                why);
            else
                lua_pushfstring(L, "acrida.files: entry %d is a %s, not a file name", (int)i,
                                luaL_typename(L, -2));
            lua_concat(L, 2);
            return lua_error(L);
        }
        lua_rawseti(L, list, (int)lua_objlen(L, list) + 1);
    }
    return 0;
}

int acr_scenario_files_open(lua_State *L)
{
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ACR_FILES_KEY);
    lua_getglobal(L, "acrida");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return -EINVAL;
    }
    lua_pushcfunction(L, l_files);
    lua_setfield(L, -2, "files");
    lua_pop(L, 1);
    return 0;
}

void acr_scenario_push_files(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, ACR_FILES_KEY);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
}

/* Arguments: the bundle's root, the scenario's directory in it (root or below), that directory
 * relative to the root ("" or "sub/"). */
static const char bundle_prelude[] =
    "local root, base, prefix = ...\n"
    "local open, lines, dofile0, loadfile0, loadstring = io.open, io.lines, dofile, loadfile, "
    "loadstring\n"
    "local sub, gsub, concat, ipairs, type, error = string.sub, string.gsub, table.concat, "
    "ipairs, type, error\n"
    "local function fix(p)\n"
    "  if type(p) == 'string' and sub(p, 1, 1) ~= '/' then return base .. '/' .. p end\n"
    "  return p\n"
    "end\n"
    "io.open = function(p, ...) return open(fix(p), ...) end\n"
    "io.lines = function(p, ...) if p == nil then return lines() end return lines(fix(p), ...) "
    "end\n"
    "dofile = function(p) if p == nil then return dofile0() end return dofile0(fix(p)) end\n"
    "loadfile = function(p, ...) if p == nil then return loadfile0() end\n"
    "  return loadfile0(fix(p), ...) end\n"
    "local function absolute(path)\n"
    "  local out = {}\n"
    "  for e in path:gmatch('[^;]+') do if sub(e, 1, 1) == '/' then out[#out + 1] = e end end\n"
    "  return concat(out, ';')\n"
    "end\n"
    "local dirs = { { base, prefix } }\n"
    "if base ~= root then dirs[2] = { root, '' } end\n"
    "local front = {}\n"
    "for _, d in ipairs(dirs) do\n"
    "  front[#front + 1] = d[1] .. '/?.lua;' .. d[1] .. '/?/init.lua;'\n"
    "end\n"
    "package.path = concat(front) .. absolute(package.path)\n"
    "package.cpath = absolute(package.cpath)\n"
    "local function searcher(name)\n"
    "  local rel = gsub(name, '%.', '/')\n"
    "  local tried = {}\n"
    "  for _, d in ipairs(dirs) do\n"
    "    for _, f in ipairs({ rel .. '.lua', rel .. '/init.lua' }) do\n"
    "      local fh = open(d[1] .. '/' .. f, 'rb')\n"
    "      if fh then\n"
    "        local src = fh:read('*a')\n"
    "        fh:close()\n"
    "        local fn, err = loadstring(src, '@' .. d[2] .. f)\n"
    "        if not fn then error(err, 0) end\n"
    "        return fn\n"
    "      end\n"
    "      tried[#tried + 1] = \"\\n\\tno file '\" .. d[2] .. f .. \"' in the scenario bundle\"\n"
    "    end\n"
    "  end\n"
    "  return concat(tried)\n"
    "end\n"
    "table.insert(package.loaders, 2, searcher)\n";

int acr_scenario_exec_bundle(lua_State *L, const char *root, const char *main, const char *src,
                             size_t len, char *err, size_t errlen)
{
    const char *slash = strrchr(main, '/');
    size_t plen = slash ? (size_t)(slash - main + 1) : 0;
    if (luaL_loadbuffer(L, bundle_prelude, sizeof(bundle_prelude) - 1, "=[acrida bundle]") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -EINVAL;
    }
    lua_pushstring(L, root);
    if (plen) { /* root .. '/' .. the scenario's directory in the bundle */
        lua_pushfstring(L, "%s/", root);
        lua_pushlstring(L, main, plen - 1);
        lua_concat(L, 2);
    } else {
        lua_pushstring(L, root);
    }
    lua_pushlstring(L, main, plen);
    if (lua_pcall(L, 3, 0, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -EINVAL;
    }
    return acr_scenario_exec_chunk(L, main, src, len, err, errlen);
}

/* ---- building a scenario's bundle ---- */

typedef struct build {
    acr_bundle_t *b;
    const char *root;
    size_t max;
    char *err;
    size_t errlen;
    int rc;
} build_t;

/* Adds module @name if it is a file under the root (and its own requires, through the queue that
 * acr_scenario_bundle_build walks). */
static void add_module(build_t *bd, const char *name)
{
    char rel[ACR_BUNDLE_PATH_MAX + 16];
    if (bd->rc < 0 || !acr_bundle_module_path(bd->root, name, rel, sizeof rel)) return;
    bd->rc = acr_bundle_add_file(bd->b, bd->root, rel, bd->max, bd->err, bd->errlen);
}

static void on_require(const char *name, size_t n, void *ud)
{
    char buf[257];
    if (n >= sizeof buf) return;
    memcpy(buf, name, n);
    buf[n] = '\0';
    add_module(ud, buf);
}

/* The modules of package.loaded that are files under the root. */
static void add_loaded(lua_State *L, build_t *bd)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING) add_module(bd, lua_tostring(L, -2));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
}

/* The files acrida.files declared (under the root). */
static void add_declared(lua_State *L, build_t *bd, const char *prefix)
{
    acr_scenario_push_files(L);
    size_t n = lua_objlen(L, -1);
    for (size_t i = 1; i <= n && bd->rc == 0; i++) {
        lua_rawgeti(L, -1, (int)i);
        lua_pushfstring(L, "%s%s", prefix, lua_tostring(L, -1));
        const char *rel = lua_tostring(L, -1);
        if (acr_bundle_has(bd->b, rel)) {
            lua_pop(L, 2);
            continue;
        }
        bd->rc = acr_bundle_add_file(bd->b, bd->root, rel, bd->max, bd->err, bd->errlen);
        if (bd->rc < 0 && bd->rc != -EFBIG) {
            char why[512];
            snprintf(why, sizeof why, "%s", bd->err);
            snprintf(bd->err, bd->errlen, "acrida.files: %s", why);
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

int acr_scenario_bundle_build(lua_State *L, const char *scenario, const char *scenario_dir,
                              size_t max, acr_bundle_t *out, char **main_out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    *main_out = NULL;
    const char *slash = strrchr(scenario, '/');
    char *dir =
        slash ? strndup(scenario, (size_t)(slash - scenario + (slash == scenario))) : strdup(".");
    char *main = NULL, *rroot = NULL, *rscen = NULL;
    build_t bd = {.b = out, .max = max, .err = err, .errlen = errlen};
    if (!dir) return -ENOMEM;
    if (scenario_dir) {
        rroot = realpath(scenario_dir, NULL);
        rscen = realpath(scenario, NULL);
        size_t rl = rroot ? strlen(rroot) : 0;
        if (!rroot || !rscen) {
            bd.rc = -errno;
            snprintf(err, errlen, "--scenario-dir %s: %s", scenario_dir, strerror(errno));
        } else if (strncmp(rscen, rroot, rl) != 0 || rscen[rl] != '/') {
            bd.rc = -EINVAL;
            snprintf(err, errlen, "the scenario %s is not inside --scenario-dir %s", scenario,
                     scenario_dir);
        } else if (!(main = strdup(rscen + rl + 1))) {
            bd.rc = -ENOMEM;
        }
        bd.root = scenario_dir;
        if (bd.rc == 0) bd.rc = acr_bundle_add_dir(out, scenario_dir, max, err, errlen);
    } else {
        bd.root = dir;
        if (!(main = strdup(slash ? slash + 1 : scenario))) bd.rc = -ENOMEM;
        if (bd.rc == 0) bd.rc = acr_bundle_add_file(out, dir, main, max, err, errlen);
        if (bd.rc == 0) add_loaded(L, &bd);
        /* the sources added so far, then the modules they name, until no new file comes */
        for (size_t i = 0; i < out->nfiles && bd.rc == 0; i++) {
            const acr_bundle_file_t *f = &out->files[i];
            size_t pl = strlen(f->path);
            if (pl > 4 && strcmp(f->path + pl - 4, ".lua") == 0)
                acr_bundle_scan_requires(f->data, f->len, on_require, &bd);
        }
    }
    if (bd.rc == 0) { /* acrida.files are relative to the scenario's directory */
        const char *ms = main ? strrchr(main, '/') : NULL;
        char *prefix = main ? strndup(main, ms ? (size_t)(ms - main + 1) : 0) : NULL;
        if (prefix)
            add_declared(L, &bd, prefix);
        else
            bd.rc = -ENOMEM;
        free(prefix);
    }
    if (bd.rc == 0) bd.rc = acr_bundle_finish(out, err, errlen);
    free(dir);
    free(rroot);
    free(rscen);
    if (bd.rc < 0) {
        free(main);
        return bd.rc;
    }
    *main_out = main;
    return 0;
}
