#!/bin/sh
# End-to-end: the LuaJIT bindings' ffi.cdef text (lua/tide/cdef.lua) is
# what core/cdef.sh generates from core/tide.h today (no drift), LuaJIT's
# FFI accepts it, and every function it declares is a symbol of the
# LuaJIT host binary (a declaration the core does not define would fail
# only when called).
. tests/e2e/lib.sh

sh core/cdef.sh core/tide.h >"$TMP/cdef.lua"
check_eq "lua/tide/cdef.lua is generated from core/tide.h (run make cdef)" "$TMP/cdef.lua" lua/tide/cdef.lua

LUAJIT=${LUAJIT:-luajit}
cat >"$TMP/parse.lua" <<'EOF2'
local ffi = require "ffi"
ffi.cdef(dofile(arg[1]))
print("ok")
EOF2
"$LUAJIT" "$TMP/parse.lua" "$TMP/cdef.lua" >"$TMP/parse.out" 2>&1
check_contains "LuaJIT's ffi.cdef accepts it" "$TMP/parse.out" "ok"

BIN=$(dirname "$TIDE")/tide-luajit
grep -oE '^[a-z_0-9 *]*\b(td|tide)_[a-z_0-9]+\(' "$TMP/cdef.lua" | grep -oE '(td|tide)_[a-z_0-9]+' | sort -u >"$TMP/declared"
check "it declares functions ($(wc -l <"$TMP/declared" | tr -d ' '))" test -s "$TMP/declared"
nm -D --defined-only "$BIN" | awk '{print $3}' | sort -u >"$TMP/defined"
comm -23 "$TMP/declared" "$TMP/defined" >"$TMP/missing"
check_empty "every declared function is defined in $BIN" "$TMP/missing"

finish
