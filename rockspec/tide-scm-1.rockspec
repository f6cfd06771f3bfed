-- LuaRocks rockspec: `luarocks --lua-version=5.4 make rockspec/tide-scm-1.rockspec`
-- builds with the project's Makefile (so `luarocks make` and `make install`
-- run the same code) and installs the `tide` module, its C core module
-- tide.core, libtide and the `tide` command.
rockspec_format = "3.0"
package = "tide"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Tide: a stateful stream processor with Lua jobs on a C runtime",
  detailed = [[
Tide runs dataflow jobs written in Lua (a DataStream API in the mould of
Apache Flink: sources, map/filter/flat_map, key_by with keyed state,
aggregations, sinks) on a C runtime with parallel subtasks, exchanges with
credit-based flow control and a MessagePack record encoding.
]],
  license = "MIT",
}
dependencies = {
  "lua == 5.4",
}
external_dependencies = {
  ZLIB = { header = "zlib.h" },
  XXHASH = { header = "xxhash.h" },
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA = "$(LUA)",
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LIBDIR = "$(PREFIX)/lib",
    LUA_LDIR = "$(LUADIR)",
    LUA_CDIR = "$(LIBDIR)",
  },
}
test = {
  type = "busted",
}
