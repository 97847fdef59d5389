-- The sandbox prelude: runs once in every recipe VM, before the recipe, with the global table
-- already stripped to the safe libraries. It makes every removed name fail with a clear
-- message instead of a nil-call error, and keeps `load` to text chunks.
local rawload, setmetatable, error, select, rawget = ...

local G = _G

local function say(name, instead)
  return "`" .. name .. "` is not available in recipes" .. (instead and ("; " .. instead) or "")
end

local removed_globals = {
  io = say("io", "run commands on the box with `box:exec{}` and fetch files with `box:fetch()`"),
  debug = say("debug"),
  package = say("package", "use `require(\"a.b\")` for `a/b.lua` in the repository"),
  dofile = say("dofile", "use `require(\"a.b\")` for `a/b.lua` in the repository"),
  loadfile = say("loadfile", "use `require(\"a.b\")` for `a/b.lua` in the repository"),
  loadstring = say("loadstring", "use `load` with a text chunk"),
  collectgarbage = say("collectgarbage"),
  module = say("module", "return a table from a module file"),
  ffi = say("ffi"),
  jit = say("jit"),
}

local removed_os = {
  execute = say("os.execute", "run commands on the box with `box:exec{}`"),
  exit = say("os.exit", "use `leasebox.fail(message, code)`"),
  remove = say("os.remove"),
  rename = say("os.rename"),
  tmpname = say("os.tmpname"),
  setlocale = say("os.setlocale"),
}

local removed_string = {
  dump = say("string.dump", "bytecode cannot be loaded in recipes"),
}

local function guard(t, removed, what)
  setmetatable(t, {
    __index = function(_, key)
      local message = removed[key]
      if message then
        error(message, 2)
      end
      return nil
    end,
    __metatable = what .. " is locked in recipes",
  })
end

guard(G, removed_globals, "the global table")
guard(rawget(G, "os"), removed_os, "`os`")
guard(rawget(G, "string"), removed_string, "`string`")

-- `load` of text chunks only; an explicit nil environment stays nil, as in plain Lua.
G.load = function(chunk, chunkname, mode, ...)
  if mode ~= nil and mode ~= "t" then
    error("loading bytecode is not available in recipes (`load` accepts mode \"t\" only)", 2)
  end
  if select("#", ...) > 0 then
    return rawload(chunk, chunkname, "t", ...)
  end
  return rawload(chunk, chunkname, "t")
end
