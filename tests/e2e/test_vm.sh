#!/bin/sh
# End-to-end: choosing the Lua VM (tide run --vm lua5.4|luajit, which runs
# the binary of the other VM beside $TIDE: build/tide and
# build/tide-luajit), and what a job script written for Lua 5.4 only gets
# under LuaJIT: a syntax error naming file:line, exit 2, before any
# operator runs (docs/LUAJIT.md). Runs the same under either suite: from
# build/tide (TIDE_VM=lua5.4) and from build/tide-luajit (TIDE_VM=luajit).
. tests/e2e/lib.sh

BIN=$(dirname "$TIDE")
LUA54=$BIN/tide
LUAJIT=$BIN/tide-luajit
check "both binaries are there ($LUA54, $LUAJIT)" test -x "$LUA54" -a -x "$LUAJIT"

# ---- which VM runs the job ---------------------------------------------------
cat >"$TMP/which.lua" <<'EOF'
local tide = require "tide"
local compat = require "tide.compat"
local env = tide.env()
env:from_list{ _VERSION .. " luajit=" .. tostring(compat.luajit) .. " args=" .. table.concat(arg, ",") }:print()
env:execute()
EOF
# vm_case NAME WANT BINARY ARG...: run BINARY ARG..., expect exit 0 and
# WANT on stdout
vm_case() {
  _name=$1
  _want=$2
  _bin=$3
  shift 3
  timeout -k 10 "$TIDE_TIMEOUT" "$_bin" "$@" >"$TMP/which.out" 2>"$TMP/which.err"
  RC=$?
  LAST=$TMP/which
  check_rc "$_name: exits 0" 0
  check_str "$_name: runs on the VM asked for" "$_want" "$(cat "$TMP/which.out")"
}
JIT_OUT="Lua 5.1 luajit=true args="
LUA_OUT="Lua 5.4 luajit=false args="
vm_case "no --vm: the VM of the binary ($TIDE_VM)" "$(by_vm "$LUA_OUT" "$JIT_OUT")" "$TIDE" run "$TMP/which.lua"
vm_case "tide: Lua 5.4 by default" "$LUA_OUT" "$LUA54" run "$TMP/which.lua"
vm_case "tide --vm luajit" "$JIT_OUT" "$LUA54" run "$TMP/which.lua" --vm luajit
vm_case "tide --vm lua5.4" "$LUA_OUT" "$LUA54" run "$TMP/which.lua" --vm lua5.4
vm_case "tide --vm=luajit, before the command" "$JIT_OUT" "$LUA54" --vm=luajit run "$TMP/which.lua"
vm_case "tide --vm=lua5.4 after other options" "$LUA_OUT" "$LUA54" run "$TMP/which.lua" -p 1 --vm=lua5.4
vm_case "tide --vm after -- is the job's argument" "$LUA_OUT--vm,luajit" \
  "$LUA54" run "$TMP/which.lua" -- --vm luajit
vm_case "tide-luajit: LuaJIT by default" "$JIT_OUT" "$LUAJIT" run "$TMP/which.lua"
vm_case "tide-luajit --vm lua5.4 goes back to Lua 5.4" "$LUA_OUT" "$LUAJIT" run "$TMP/which.lua" --vm lua5.4
vm_case "tide-luajit --vm luajit stays" "$JIT_OUT" "$LUAJIT" run "$TMP/which.lua" --vm luajit

run_tide "$TMP/version" --vm luajit version
check_rc "--vm luajit version: exits 0" 0
check_match "--vm luajit version: names LuaJIT" "$TMP/version.out" '^tide [0-9.]+ \(LuaJIT 2\.1'
run_tide "$TMP/version" --vm lua5.4 version
check_match "--vm lua5.4 version: names Lua 5.4" "$TMP/version.out" '^tide [0-9.]+ \(Lua 5\.4'

run_tide "$TMP/bad" run "$TMP/which.lua" --vm lua5.1
check_rc "--vm lua5.1: a usage error, exit 2" 2
check_contains "--vm lua5.1: says what --vm takes" "$TMP/bad.err" "tide: --vm needs lua5.4 or luajit, not 'lua5.1'"
run_tide "$TMP/bad" run "$TMP/which.lua" --vm
check_rc "--vm without a value: exit 2" 2
check_contains "--vm without a value: says what --vm takes" "$TMP/bad.err" "tide: --vm needs lua5.4 or luajit"

# ---- Lua 5.4 only syntax under LuaJIT ----------------------------------------
# five_four NAME EXPR RESULT: a job computing EXPR (Lua 5.4 syntax) on line 4
five_four() {
  cat >"$TMP/$1.lua" <<EOF
local tide = require "tide"
local env = tide.env()
local a, b = 7, 2
local r = $2
env:from_list{ r }:print()
env:execute()
EOF
  # Lua 5.4 runs it, with the result Lua 5.4's manual gives
  run_tide "$TMP/$1" run "$TMP/$1.lua" --vm lua5.4
  check_rc "$1 under Lua 5.4: exits 0" 0
  check_str "$1 under Lua 5.4: $2 is $3" "$3" "$(cat "$TMP/$1.out")"
  # LuaJIT refuses it before anything runs, from tide --vm luajit and from
  # the LuaJIT binary itself
  for how in "$LUA54 --vm luajit" "$LUAJIT"; do
    # shellcheck disable=SC2086 # $how is a command and an option
    timeout -k 10 "$TIDE_TIMEOUT" $how run "$TMP/$1.lua" >"$TMP/$1.out" 2>"$TMP/$1.err"
    RC=$?
    LAST=$TMP/$1
    check_rc "$1 under LuaJIT ($how): exit 2" 2
    check_match "$1 under LuaJIT ($how): a syntax error at $1.lua:4" "$TMP/$1.err" "^tide: $TMP/$1\.lua:4: "
    check_contains "$1 under LuaJIT ($how): says why" "$TMP/$1.err" \
      "(LuaJIT reads Lua 5.1 syntax with LuaJIT's extensions, not Lua 5.4's: "
    check_not_contains "$1 under LuaJIT ($how): no traceback" "$TMP/$1.err" "traceback"
    check_empty "$1 under LuaJIT ($how): no output" "$TMP/$1.out"
  done
}
five_four idiv "a // b" 3
five_four band "a & b" 2
five_four bor "a | b" 7
five_four bxor "a ~ b" 5
five_four bnot "~a" -8
five_four shl "a << b" 28
five_four shr "a >> b" 1
five_four const "(function() local c <const> = a return c end)()" 7
five_four close "(function() local c <close> = nil return a end)()" 7

# goto and labels are Lua 5.2 syntax that LuaJIT 2.1 has too: common
cat >"$TMP/goto.lua" <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ 1, 2, 3, 4 }
  :map(function(x)
    if x % 2 == 0 then goto even end
    do return x .. " odd" end
    ::even::
    return x .. " even"
  end)
  :print()
env:execute()
EOF
printf '1 odd\n2 even\n3 odd\n4 even\n' >"$TMP/goto.expected"
for vm in lua5.4 luajit; do
  run_tide "$TMP/goto" run "$TMP/goto.lua" --vm $vm
  check_rc "goto on $vm: exits 0" 0
  check_eq "goto on $vm: the same output" "$TMP/goto.expected" "$TMP/goto.out"
done

finish
