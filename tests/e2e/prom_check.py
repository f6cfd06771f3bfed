#!/usr/bin/env python3
"""prom_check.py - check a Prometheus text exposition (format 0.0.4) and
print its samples, for tests/e2e/test_metrics.sh.

  prom_check.py FILE        exit 1 with the first violation on stderr, else
                            print one line per sample: name{labels} value
                            (labels sorted, as name=value joined by ',')

Checks, after the format's description (prometheus.io/docs/instrumenting/
exposition_formats): every line is a comment, blank, or a sample
`name{label="value",...} value`; metric and label names match their
grammars; label values are quoted with only \\\\, \\" and \\n escapes; every
metric has one HELP and one TYPE line (counter, gauge, untyped, summary or
histogram) before its samples, and its samples are together; counters end in
_total; values parse as floats; no sample (name and labels) appears twice.
"""
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "untyped", "summary", "histogram"}


def parse_labels(s, where):
    """s starts after '{'; returns (labels, rest after '}')."""
    labels = {}
    i = 0
    while True:
        if s[i:i + 1] == "}":
            return labels, s[i + 1:]
        m = LABEL.match(s, i)
        if not m:
            raise ValueError(f"{where}: bad label name at {s[i:]!r}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError(f"{where}: label {name} lacks =\"")
        i += 2
        val = []
        while True:
            c = s[i:i + 1]
            if c == "":
                raise ValueError(f"{where}: unterminated label value")
            if c == "\\":
                e = s[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    raise ValueError(f"{where}: bad escape \\{e}")
                val.append("\n" if e == "n" else e)
                i += 2
                continue
            if c == '"':
                i += 1
                break
            val.append(c)
            i += 1
        if name in labels:
            raise ValueError(f"{where}: label {name} twice")
        labels[name] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1


def check(text):
    help_, type_, seen, done, samples = {}, {}, set(), set(), []
    current = None
    for n, line in enumerate(text.split("\n"), 1):
        where = f"line {n}"
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise ValueError(f"{where}: bad metric name {name!r}")
                table = help_ if parts[1] == "HELP" else type_
                if name in table:
                    raise ValueError(f"{where}: a second {parts[1]} for {name}")
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ValueError(f"{where}: bad TYPE line")
                    if parts[3] == "counter" and not name.endswith("_total"):
                        raise ValueError(f"{where}: counter {name} does not end in _total")
                table[name] = parts[3] if len(parts) == 4 else ""
            continue
        m = NAME.match(line)
        if not m:
            raise ValueError(f"{where}: bad sample line {line!r}")
        name, rest = m.group(0), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest[1:], where)
        if not rest.startswith(" "):
            raise ValueError(f"{where}: no space before the value")
        fields = rest.split()
        if len(fields) not in (1, 2):
            raise ValueError(f"{where}: bad value/timestamp {rest!r}")
        value = float(fields[0])  # raises on a bad value
        if name not in help_ or name not in type_:
            raise ValueError(f"{where}: {name} has no HELP or TYPE line before it")
        if name != current:
            if name in done:
                raise ValueError(f"{where}: samples of {name} are not together")
            if current:
                done.add(current)
            current = name
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError(f"{where}: sample {key} twice")
        seen.add(key)
        samples.append((name, labels, value))
    return samples


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    try:
        samples = check(text)
    except ValueError as e:
        print(f"{sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
    for name, labels, value in samples:
        lab = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        print(f"{name}{{{lab}}} {value!r}")


if __name__ == "__main__":
    main()
