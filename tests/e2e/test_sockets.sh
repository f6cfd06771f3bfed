#!/bin/sh
# End-to-end: env:socket_text_stream and stream:write_socket with
# scripts/socket_wordcount.lua between two small Python servers
# (tests/e2e/socket_server.py): one sends a text in 7-byte chunks and
# closes, the other collects what the job sends. Oracle: the word counts
# computed by awk from the text (the last update per word is its total;
# every update is sent). Also: a custom delimiter, JSON records, and a
# refused connection's error.
. tests/e2e/lib.sh

SERVER=tests/e2e/socket_server.py
# wait_port FILE: until the server wrote its port to FILE (at most 10 s)
wait_port() {
  for _ in $(seq 200); do
    [ -s "$1" ] && return 0
    sleep 0.05
  done
}

awk 'BEGIN { srand(3); for (i = 1; i <= 3000; i++) { l = ""; for (j = 0; j < 1 + i % 9; j++) l = l " w" sprintf("%c%c", 97 + int(rand() * 26), 97 + int(rand() * 3)) (i % 4 == 0 ? " The" : ""); print l } }' >"$TMP/text"

"$PYTHON" "$SERVER" feed "$TMP/in.port" "$TMP/text" &
FEED=$!
"$PYTHON" "$SERVER" collect "$TMP/out.port" "$TMP/received" &
COLLECT=$!
wait_port "$TMP/in.port"
wait_port "$TMP/out.port"
run_tide "$TMP/wc" run scripts/socket_wordcount.lua -- 127.0.0.1 "$(cat "$TMP/in.port")" 127.0.0.1 "$(cat "$TMP/out.port")"
check_rc "wordcount: the job ends when the server closes" 0
wait "$FEED" "$COLLECT"
tr 'A-Z' 'a-z' <"$TMP/text" | awk '{ for (i = 1; i <= NF; i++) { c[$i]++; print $i "," c[$i] } }' | sort >"$TMP/want"
sort "$TMP/received" >"$TMP/got"
check_eq "wordcount: every count update received, as awk counts them" "$TMP/want" "$TMP/got"

# ---- a custom delimiter and JSON records ----------------------------------
cat >"$TMP/json.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env()
env:socket_text_stream("127.0.0.1", tonumber(arg[1]), { delimiter = "||", format = "json" }):uid("in")
   :map(function(r) return r.name .. "=" .. string.format("%d", r.n * 2) end):uid("fmt")
   :print()
env:execute()
EOF2
printf '{"name":"a","n":1}||{"name":"b","n":20}||\n||{"name":"c","n":-3}' >"$TMP/json.in"
rm -f "$TMP/in.port"
"$PYTHON" "$SERVER" feed "$TMP/in.port" "$TMP/json.in" &
FEED=$!
wait_port "$TMP/in.port"
run_tide "$TMP/json" run "$TMP/json.lua" -- "$(cat "$TMP/in.port")"
wait "$FEED"
check_rc "json: exit 0" 0
printf 'a=2\nb=40\nc=-6\n' >"$TMP/json.want"
check_eq "json: records split at '||', blank pieces skipped, the last piece kept" "$TMP/json.want" "$TMP/json.out"

# ---- errors ----------------------------------------------------------------
# a port nothing listens on: a server's port after it closed
"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' >"$TMP/free.port"
run_tide "$TMP/refused" run "$TMP/json.lua" -- "$(cat "$TMP/free.port")"
check_rc "refused: exit 1" 1
check_contains "refused: the error names the address" "$TMP/refused.err" "cannot connect to 127.0.0.1:$(cat "$TMP/free.port")"
cat >"$TMP/badport.lua" <<'EOF2'
local tide = require "tide"
local env = tide.env()
env:socket_text_stream("127.0.0.1", 70000):print()
env:execute()
EOF2
run_tide "$TMP/badport" run "$TMP/badport.lua"
check_rc "bad port: exit 1" 1
check_contains "bad port: the error names the script's line" "$TMP/badport.err" "badport.lua:3: socket_text_stream: port must be an integer 1..65535"

finish
