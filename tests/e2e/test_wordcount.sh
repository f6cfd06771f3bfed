#!/bin/sh
# End-to-end: scripts/wordcount.lua on the git commit messages corpus at
# parallelism 1, 2 and 4, against an independent shell-pipeline oracle.
#
# The job's word definition: line:lower():gmatch("%w+") in the C locale,
# i.e. maximal runs of the bytes [a-z0-9] after mapping A-Z to a-z. The
# oracle applies exactly that definition byte-wise with tr in LC_ALL=C
# (check 1 and 2 confirm the definition inside a tide task VM).
. tests/e2e/lib.sh

INPUT=$DATA/git-messages.txt.gz

# -- the word definition, as the job's VM sees it -------------------------
cat >"$TMP/wdef.lua" <<'EOF'
local tide = require "tide"
local env = tide.env()
local bytes = {}
for b = 0, 255 do bytes[#bytes + 1] = b end
env:from_list(bytes)
   :map(function(b)
     local c = string.char(b)
     local alnum = c:lower():match("^%w$") and "w" or "-"
     return string.format("%d %d %s", b, c:lower():byte(), alnum)
   end)
   :print()
env:execute()
EOF
run_tide "$TMP/wdef" run "$TMP/wdef.lua"
check_rc "word definition probe exits 0" 0
awk 'BEGIN {
  for (b = 0; b < 256; b++) {
    l = (b >= 65 && b <= 90) ? b + 32 : b
    w = ((l >= 48 && l <= 57) || (l >= 97 && l <= 122)) ? "w" : "-"
    print b, l, w
  }
}' >"$TMP/wdef.expected"
check_eq "lower() maps only A-Z and %w is exactly [a-z0-9] after lower() (C locale)" \
  "$TMP/wdef.expected" "$TMP/wdef.out"

# -- the oracle, computed once ---------------------------------------------
oracle() { # oracle FILE-CMD...: word,count rows, C-sorted
  # shellcheck disable=SC2018,SC2019 # ASCII ranges on purpose (LC_ALL=C)
  "$@" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '\n' | grep -v '^$' | sort | uniq -c |
    awk '{print $2","$1}' | sort
}
oracle zcat "$INPUT" >"$TMP/oracle"
n_words=$(wc -l <"$TMP/oracle" | tr -d ' ')
the_count=$(grep '^the,' "$TMP/oracle" | cut -d, -f2)
check "oracle has many distinct words ($n_words)" test "$n_words" -gt 10000
# the most frequent word per the oracle (ties: smallest word), as the job orders
awk -F, '{print $2" "$1}' "$TMP/oracle" | sort -k1,1nr -k2,2 | head -n 1 >"$TMP/oracle.top"
check_str "oracle's most frequent word is 'the'" "$the_count the" "$(cat "$TMP/oracle.top")"

for p in 1 2 4; do
  out=$TMP/out$p
  run_tide "$TMP/wc$p" run scripts/wordcount.lua --parallelism "$p" -- "$INPUT" "$out" 5
  check_rc "p=$p: wordcount exits 0" 0
  check "p=$p: at least one committed part file" test -n "$(committed_parts "$out")"
  check_str "p=$p: no hidden in-progress files remain" "" "$(hidden_files "$out")"
  cat_parts "$out" | sort >"$TMP/actual$p"
  check_eq "p=$p: committed counts equal the oracle" "$TMP/oracle" "$TMP/actual$p"
  check_match "p=$p: stdout reports $n_words distinct words" "$TMP/wc$p.out" "^$n_words distinct words"
  sed -n 2p "$TMP/wc$p.out" | awk '{print $1" "$2}' >"$TMP/top$p"
  check_str "p=$p: top-words list starts with 'the' ($the_count)" "$the_count the" "$(cat "$TMP/top$p")"
  check_str "p=$p: top-words list has 5 entries" 6 "$(wc -l <"$TMP/wc$p.out" | tr -d ' ')"
done

# -- a plain (uncompressed) file, split into byte ranges across subtasks ---
# A slice of the corpus that ends mid-line (no final newline), with some
# CRLF line ends and an empty first line mixed in.
{
  printf '\r\nCRLF Line one\r\nline TWO, with Words\r\n'
  zcat "$INPUT" | head -c 3000000
} >"$TMP/plain.txt"
oracle cat "$TMP/plain.txt" >"$TMP/plain.oracle"
for p in 1 3; do
  out=$TMP/plain$p
  run_tide "$TMP/pl$p" run scripts/wordcount.lua --parallelism "$p" -- "$TMP/plain.txt" "$out" 3
  check_rc "plain file p=$p: wordcount exits 0" 0
  cat_parts "$out" | sort >"$TMP/plain.actual$p"
  check_eq "plain file p=$p: counts equal the oracle (split boundaries)" "$TMP/plain.oracle" "$TMP/plain.actual$p"
  check_str "plain file p=$p: no hidden in-progress files remain" "" "$(hidden_files "$out")"
done

# -- an output path with quotes and shell syntax: no shell runs it --------
printf 'one two two\n' >"$TMP/small.txt"
out="$TMP/it's \$(touch $TMP/ran1); touch $TMP/ran2 '"
run_tide "$TMP/quoted" run scripts/wordcount.lua -- "$TMP/small.txt" "$out" 3
check_rc "an output path with quotes: wordcount exits 0" 0
check "an output path with quotes: no command in it ran" test ! -e "$TMP/ran1" -a ! -e "$TMP/ran2"
check_match "an output path with quotes: the top words are read back" "$TMP/quoted.out" "^ +2  two$"
run_tide "$TMP/again" run scripts/wordcount.lua -- "$TMP/small.txt" "$out" 3
check_rc "re-running into the same output: refused, exit 2" 2
check_contains "re-running: says the directory holds the job's committed output" "$TMP/again.err" \
  "already holds committed output of job 'wordcount'"

finish
