#!/bin/sh
# End-to-end: failures are reported, with the right exit status and a
# message that names what went wrong (file, line, column, operator uid),
# and a failing job never hangs.
#   exit 0: success; 1: a runtime failure; 2: wrong usage or a job script
#   that does not load.
. tests/e2e/lib.sh

job() { cat >"$TMP/$1.lua"; }
run() {
  _name=$1
  shift
  run_tide "$TMP/$_name" run "$TMP/$_name.lua" "$@"
}

# ---- missing input files -----------------------------------------------------
job rtext <<'EOF'
local tide = require "tide"
local env = tide.env()
env:read_text(arg[1]):print()
env:execute()
EOF
job rcsv <<'EOF'
local tide = require "tide"
local env = tide.env()
env:read_csv(arg[1], { types = { a = "int", b = "int" }, on_error = arg[2] }):print()
env:execute()
EOF
missing=$TMP/no-such-dir/missing-input.txt
run rtext -- "$missing"
check_rc "read_text of a missing file: exit 1" 1
check_contains "read_text of a missing file: stderr names the file" "$TMP/rtext.err" "$missing"
run rcsv -- "$TMP/missing-input.csv"
check_rc "read_csv of a missing file: exit 1" 1
check_contains "read_csv of a missing file: stderr names the file" "$TMP/rcsv.err" "$TMP/missing-input.csv"

# a truncated gzip file fails (it is not read as if it ended there)
head -c 50000 "$DATA/git-messages.txt.gz" >"$TMP/truncated.txt.gz"
run rtext -- "$TMP/truncated.txt.gz"
check_rc "read_text of a truncated .gz: exit 1" 1
check_contains "read_text of a truncated .gz: stderr names the file" "$TMP/rtext.err" "truncated.txt.gz"
printf 'a,b\n' >"$TMP/trunc.csv"
awk 'BEGIN { for (i = 1; i <= 20000; i++) print i "," i * 7 % 1000 }' >>"$TMP/trunc.csv"
gzip -c "$TMP/trunc.csv" | head -c 5000 >"$TMP/truncated.csv.gz"
run rcsv -- "$TMP/truncated.csv.gz"
check_rc "read_csv of a truncated .gz: exit 1" 1
check_contains "read_csv of a truncated .gz: stderr names the file" "$TMP/rcsv.err" "truncated.csv.gz"

# ---- an output directory that cannot be created ---------------------------------
: >"$TMP/regular-file"
job wtext <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "a", "b" }:write_text(arg[1])
env:execute()
EOF
job wcsv <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ { 1, 2 } }:write_csv(arg[1])
env:execute()
EOF
run wtext -- "$TMP/regular-file/out"
check_rc "write_text into a dir under a regular file: exit 1" 1
check_contains "write_text: stderr names the directory" "$TMP/wtext.err" "$TMP/regular-file/out"
run wcsv -- "$TMP/regular-file/csv/deeper"
check_rc "write_csv into a dir under a regular file: exit 1" 1
# (the directory named may be the first one on the path that cannot be made)
check_contains "write_csv: stderr names the directory" "$TMP/wcsv.err" "'$TMP/regular-file/csv"

# a value that CSV cannot hold
job wcsv_nested <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ { a = 1, b = { 1, 2 } } }:write_csv(arg[1], { columns = { "a", "b" } }):uid("csv-out")
env:execute()
EOF
run wcsv_nested -- "$TMP/nested.d"
check_rc "write_csv of a nested table field: exit 1" 1
check_contains "write_csv of a nested table field: stderr says why" "$TMP/wcsv_nested.err" "cannot write a table value"

# ---- malformed CSV -------------------------------------------------------------
# physical line 5 (row 3 has a quoted field spanning lines 3 and 4) has one
# field instead of two
printf 'a,b\n1,2\n3,"x\ny"\n5\n6,7\n' >"$TMP/fields.csv"
job rcsv_str <<'EOF'
local tide = require "tide"
local env = tide.env()
env:read_csv(arg[1], { on_error = arg[2] }):map(function(r) return r.a .. "|" .. r.b end):print()
env:execute()
EOF
run rcsv_str -- "$TMP/fields.csv" fail
check_rc "CSV row with a wrong column count: exit 1" 1
check_contains "CSV wrong column count: stderr has FILE:5: (physical line)" "$TMP/rcsv_str.err" "$TMP/fields.csv:5:"
run rcsv_str -- "$TMP/fields.csv" skip
check_rc "CSV wrong column count, on_error = skip: exit 0" 0
printf '1|2\n3|x\ny\n6|7\n' >"$TMP/fields.expected"
check_eq "CSV wrong column count, on_error = skip: only the good rows" "$TMP/fields.expected" "$TMP/rcsv_str.out"

printf 'a,b\n1,2\n3,4\n5,x7\n8,9\n' >"$TMP/badint.csv"
run rcsv -- "$TMP/badint.csv" fail
check_rc "CSV bad int: exit 1" 1
check_contains "CSV bad int: stderr has FILE:4:" "$TMP/rcsv.err" "$TMP/badint.csv:4:"
check_contains "CSV bad int: stderr names the column" "$TMP/rcsv.err" "'b'"
check_contains "CSV bad int: stderr shows the bad value" "$TMP/rcsv.err" "x7"
run rcsv -- "$TMP/badint.csv" skip
check_rc "CSV bad int, on_error = skip: exit 0" 0
printf '{a=1, b=2}\n{a=3, b=4}\n{a=8, b=9}\n' >"$TMP/badint.expected"
check_eq "CSV bad int, on_error = skip: only the good rows" "$TMP/badint.expected" "$TMP/rcsv.out"

# types naming columns the header does not have: the file, the first such
# column in byte order (the same on every VM, whatever a table's order) and
# the source operator (uid and name), exit 1, no traceback of Tide's code
printf 'a,b\n1,2\n' >"$TMP/notype.csv"
job rcsv_notype <<'EOF'
local tide = require "tide"
local env = tide.env()
env:read_csv(arg[1], { types = { a = "int", zz = "int", nosuch = "int", yy = "bool", x = "int" } }):uid("csv-src"):print()
env:execute()
EOF
for p in 1 2; do
  run rcsv_notype --parallelism $p -- "$TMP/notype.csv"
  check_rc "CSV types name a missing column p=$p: exit 1" 1
  check_contains "CSV types name a missing column p=$p: the message" "$TMP/rcsv_notype.err" \
    "$TMP/notype.csv: types name column 'nosuch', which the file does not have"
  check_contains "CSV types name a missing column p=$p: the source's uid and name" "$TMP/rcsv_notype.err" \
    "operator 'csv-src' (read_csv, defined at $TMP/rcsv_notype.lua:3)"
  check_not_contains "CSV types name a missing column p=$p: no traceback" "$TMP/rcsv_notype.err" "traceback"
  check_not_contains "CSV types name a missing column p=$p: no Tide source position" "$TMP/rcsv_notype.err" "operators.lua"
done

printf 'a,b\n1,2\n3,4.5\n' >"$TMP/float-for-int.csv"
run rcsv -- "$TMP/float-for-int.csv" fail
check_rc "CSV '4.5' in an int column: exit 1" 1
check_contains "CSV '4.5' in an int column: stderr has FILE:3:" "$TMP/rcsv.err" "$TMP/float-for-int.csv:3:"

# ---- a Lua error inside a UDF --------------------------------------------------------
# (the error is raised on line 6 of the script)
job udf <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 1000)
   :map(function(x)
     if x == 500 then
       error("boom at " .. x)
     end
     return x
   end):uid("my-mapper")
   :discard()
env:execute()
EOF
run udf
check_rc "UDF error in a map chained to its source: exit 1" 1
check_contains "UDF error: stderr names the map's uid 'my-mapper'" "$TMP/udf.err" "my-mapper"
check_contains "UDF error: stderr has the script's file:line of the error" "$TMP/udf.err" "udf.lua:6:"
check_contains "UDF error: stderr has the error message" "$TMP/udf.err" "boom at 500"

job udf2 <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 1000)
   :filter(function(x) return x > 0 end):uid("keep")
   :map(function(x)
     if x == 500 then error("boom at " .. x) end
     return x
   end):uid("my-mapper")
   :discard()
env:execute()
EOF
run udf2
check_rc "UDF error in a map after a filter: exit 1" 1
check_contains "UDF error after a filter: stderr names the uid 'my-mapper'" "$TMP/udf2.err" "my-mapper"
check_contains "UDF error after a filter: stderr has udf2.lua:6:" "$TMP/udf2.err" "udf2.lua:6:"

# parallelism 2 with an unbounded source: only subtask 2 (even numbers)
# fails; the job must still end, with exit 1, instead of running forever.
job udf_par <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end)
   :rebalance()
   :map(function(x)
     if x == 5000 then error("boom at " .. x) end
     return x
   end):uid("par-mapper")
   :discard()
env:execute()
EOF
TIDE_TIMEOUT=60 run udf_par --parallelism 2
check_rc "UDF error at parallelism 2 (unbounded source): exit 1, no hang" 1
check_contains "UDF error at parallelism 2: stderr names the uid 'par-mapper'" "$TMP/udf_par.err" "par-mapper"
check_contains "UDF error at parallelism 2: stderr has udf_par.lua:6:" "$TMP/udf_par.err" "udf_par.lua:6:"

job udf_keyed <<'EOF'
local tide = require "tide"
local env = tide.env()
env:generate(function(i) return i end, 20000)
   :key_by(function(x) return x % 7 end)
   :reduce(function(a, b)
     if b == 12345 then error("reduce failed on " .. b) end
     return a + b
   end):uid("sum-mod7")
   :discard()
env:execute()
EOF
TIDE_TIMEOUT=60 run udf_keyed --parallelism 2
check_rc "reduce UDF error after a key_by at parallelism 2: exit 1, no hang" 1
check_contains "reduce UDF error: stderr names the uid 'sum-mod7'" "$TMP/udf_keyed.err" "sum-mod7"
check_contains "reduce UDF error: stderr has udf_keyed.lua:6:" "$TMP/udf_keyed.err" "udf_keyed.lua:6:"

# ---- key_by on a field that is nil in some record -----------------------------------
job nilkey <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ { k = "a", v = 1 }, { v = 2 }, { k = "b", v = 3 } }
   :key_by("k"):sum("v"):uid("sum-by-k")
   :print()
env:execute()
EOF
for p in 1 2; do
  run nilkey --parallelism $p
  check_rc "key_by on a nil field p=$p: exit 1" 1
  check_match "key_by on a nil field p=$p: stderr says the key is nil" "$TMP/nilkey.err" "key.*nil"
  check_contains "key_by on a nil field p=$p: stderr names the keyed operator's uid" "$TMP/nilkey.err" "sum-by-k"
done

# a record that is not a table, keyed by a field: the key function's own
# error (the exchange reads field keys in C and hands such records back)
job nontable <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ { k = "a", v = 1 }, 7, { k = "b", v = 3 } }
   :key_by("k"):sum("v"):uid("sum-nontable")
   :print()
env:execute()
EOF
run nontable --parallelism 2
check_rc "key_by a field of a number record p=2: exit 1" 1
check_match "key_by a field of a number record p=2: stderr says a number was indexed" "$TMP/nontable.err" \
  "index.*a number value"

# ---- the job script itself ---------------------------------------------------------
printf 'local tide = require "tide"\nlocal env = tide.env()\nlocal = 5\nenv:execute()\n' >"$TMP/syntax.lua"
run syntax
check_rc "syntax error in the job script: exit 2" 2
check_contains "syntax error: stderr has the script's file:line" "$TMP/syntax.err" "syntax.lua:3:"
run_tide "$TMP/noscript" run "$TMP/no-such-job.lua"
check_rc "missing job script: exit 2" 2
check_contains "missing job script: stderr names it" "$TMP/noscript.err" "no-such-job.lua"
job planerr <<'EOF'
local tide = require "tide"
local env = tide.env()
error("planning failed on purpose")
EOF
run planerr
check_rc "job script raising while building the graph: exit 1" 1
check_contains "job script raising: stderr has file:line and message" "$TMP/planerr.err" "planerr.lua:3: planning failed on purpose"

# ---- the command line ----------------------------------------------------------------
job ok <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list{ "fine" }:print()
env:execute()
EOF
run ok
check_rc "a valid job: exit 0" 0
check_str "a valid job: prints its record" "fine" "$(cat "$TMP/ok.out")"
run ok --bogus-flag
check_rc "unknown CLI flag: exit 2" 2
check_contains "unknown CLI flag: usage on stderr" "$TMP/ok.err" "usage:"
check_contains "unknown CLI flag: stderr names the flag" "$TMP/ok.err" "--bogus-flag"
check_empty "unknown CLI flag: the job does not run" "$TMP/ok.out"
run_tide "$TMP/norun" run
check_rc "'tide run' with no script: exit 2" 2
check_contains "'tide run' with no script: usage on stderr" "$TMP/norun.err" "usage:"
for bad in 0 abc -1 2x ""; do
  run ok --parallelism "$bad"
  check_rc "--parallelism '$bad': exit 2" 2
  check_contains "--parallelism '$bad': usage on stderr" "$TMP/ok.err" "usage:"
done
run ok -p 0
check_rc "-p 0: exit 2" 2
run ok --parallelism
check_rc "--parallelism without a value: exit 2" 2
run ok --max-parallelism 2 --parallelism 4
check_rc "--max-parallelism below --parallelism: exit 2" 2
run ok --parallelism 3
check_rc "--parallelism 3 (valid): exit 0" 0
run_tide "$TMP/nocmd"
check_rc "tide with no command: exit 2" 2
run_tide "$TMP/badcmd" frobnicate
check_rc "unknown command: exit 2" 2
check_contains "unknown command: usage on stderr" "$TMP/badcmd.err" "usage:"
run_tide "$TMP/version" version
check_rc "tide version: exit 0" 0
check_match "tide version: prints a version" "$TMP/version.out" '^tide [0-9]+\.[0-9]+\.[0-9]+'
run_tide "$TMP/help" help
check_rc "tide help: exit 0" 0
check_contains "tide help: prints the usage on stdout" "$TMP/help.out" "usage: tide run"

# ---- state no snapshot can hold ---------------------------------------------
# a function kept in value state: without checkpoints no snapshot is ever
# taken (not even of the final state at the end: nothing would read it),
# so the job ends normally; with checkpoints the final state's snapshot
# fails, naming the state file and the value
job fnstate <<'EOF'
local tide = require "tide"
local env = tide.env()
env:from_list({ "a", "b", "a" })
   :key_by(function(w) return w end)
   :process { on_record = function(w, ctx, out)
       ctx.state:value("f"):update(function() return w end)
       out:collect(w)
     end }
   :print()
env:execute("fnstate")
EOF
run fnstate
check_rc "a function in keyed state, no checkpoints: exit 0" 0
check_str "... with its whole output" "a b a" "$(tr '\n' ' ' <"$TMP/fnstate.out" | sed 's/ $//')"
run fnstate --checkpoint-dir "$TMP/ck-fnstate"
check_rc "a function in keyed state, with checkpoints: exit 1" 1
check_contains "... the final state's snapshot names the file and the value" "$TMP/fnstate.err" \
  "cannot write the final state: snapshot of process-2-0.state: cannot encode a function value"

finish
