#!/usr/bin/env python3
"""tests/e2e/shared_refs.py - an independent reader of a job's checkpoint
directory for tests/e2e/test_rocksdb.sh: _metadata (state/metadata.h, in the
snapshot format of state/snapshot.h) and the ".state.shared" companions
(state/shared.h: a state file whose data section is a MessagePack array of
[name, size, crc32c]), checked against the files of <job>/shared/.

  shared_refs.py check JOB_DIR [--exact]
      Every shared file referenced by a completed checkpoint (chk-<n> with a
      _metadata) or by a finished subtask's companion (finished/*.shared) is
      there, with the recorded size and whole-file CRC32C, and named by its
      content ("<xxh64 16 hex>-<size>", xxh64 from xxhsum(1)); each
      checkpoint's "../shared/" entries are exactly the union of its
      companions' lists. With --exact, shared/ holds nothing else (no
      unreferenced file, no temporary upload). Prints a summary line; exit
      status 1 with one line per fault.
  shared_refs.py refs CHK_DIR
      The shared files _metadata of CHK_DIR references: "name size" lines.
  shared_refs.py incremental METADATA...
      _metadata files of successive checkpoints (copies, in order): for each
      after the first, "id new_bytes total_bytes" where total is the size of
      every shared file it references and new the size of those the one
      before did not reference (what it had to upload).
"""
import os
import struct
import subprocess
import sys

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _T.append(_c)


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class Bad(Exception):
    pass


def snapshot(path):
    """(kind, [(tag, bytes)]) of a snapshot file, every check of snapshot.h."""
    b = open(path, "rb").read()
    if len(b) < 32 or b[:8] != b"TIDESNAP":
        raise Bad("%s: not a snapshot file" % path)
    version, kind = struct.unpack_from("<II", b, 8)
    count, size, crc = struct.unpack_from("<IQI", b, len(b) - 16)
    if version != 1 or size != len(b) or crc32c(b[:-4]) != crc:
        raise Bad("%s: bad header, size or CRC" % path)
    pos, sections = 16, []
    while pos < len(b) - 16:
        tag, n = struct.unpack_from("<IQ", b, pos)
        sections.append((tag, b[pos + 12:pos + 12 + n]))
        pos += 12 + n
    if pos != len(b) - 16 or len(sections) != count:
        raise Bad("%s: bad sections" % path)
    return kind, sections


def metadata(chk):
    """{"id":, "files": [(subtask, size, crc, name)]} of chk/_metadata."""
    return metadata_file(os.path.join(chk, "_metadata"))


def metadata_file(path):
    kind, sections = snapshot(path)
    if kind != 2:
        raise Bad("%s: kind %d" % (path, kind))
    sec = dict(sections)
    mid = struct.unpack_from("<Q", sec[1], 0)[0]
    files, p, raw = [], 0, sec[5]
    while p < len(raw):
        sub, size, crc, nl = struct.unpack_from("<IQIH", raw, p)
        p += 18
        files.append((sub, size, crc, raw[p:p + nl].decode()))
        p += nl
    return {"id": mid, "files": files}


def mp_read(b, p):
    """One MessagePack value at b[p:] (the subset companions use)."""
    c = b[p]
    if c <= 0x7F:
        return c, p + 1
    if 0x90 <= c <= 0x9F or c in (0xDC, 0xDD):
        if c <= 0x9F:
            n, p = c & 0x0F, p + 1
        elif c == 0xDC:
            n, p = struct.unpack_from(">H", b, p + 1)[0], p + 3
        else:
            n, p = struct.unpack_from(">I", b, p + 1)[0], p + 5
        out = []
        for _ in range(n):
            v, p = mp_read(b, p)
            out.append(v)
        return out, p
    if 0xA0 <= c <= 0xBF or c in (0xD9, 0xDA, 0xDB):
        if c <= 0xBF:
            n, p = c & 0x1F, p + 1
        else:
            w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[c]
            n, p = int.from_bytes(b[p + 1:p + 1 + w], "big"), p + 1 + w
        return b[p:p + n].decode(), p + n
    if 0xCC <= c <= 0xCF:
        w = 1 << (c - 0xCC)
        return int.from_bytes(b[p + 1:p + 1 + w], "big"), p + 1 + w
    if 0xD0 <= c <= 0xD3:
        w = 1 << (c - 0xD0)
        return int.from_bytes(b[p + 1:p + 1 + w], "big", signed=True), p + 1 + w
    raise Bad("unexpected MessagePack byte %02x" % c)


def companion(path):
    """[(name, size, crc)] of a .state.shared file."""
    _, sections = snapshot(path)
    data = [d for t, d in sections if t == 1]
    if len(data) != 1:
        raise Bad("%s: no data section" % path)
    v, _ = mp_read(data[0], 0)
    return [(n, s, c) for n, s, c in v]


def shared_of(meta):
    return {name[len("../shared/"):]: (size, crc) for _, size, crc, name in meta["files"]
            if name.startswith("../shared/")}


def check(job, exact):
    faults = []
    shared = os.path.join(job, "shared")
    want = {}  # name -> (size, crc, who)
    chks = sorted((int(d[4:]), d) for d in os.listdir(job) if d.startswith("chk-")
                  and os.path.exists(os.path.join(job, d, "_metadata")))
    for _, d in chks:
        chk = os.path.join(job, d)
        meta = metadata(chk)
        refs = shared_of(meta)
        listed = set()
        for _, _, _, name in meta["files"]:
            if name.endswith(".state.shared"):
                for n, s, c in companion(os.path.join(chk, name)):
                    listed.add(n)
                    if refs.get(n) != (s, c):
                        faults.append("%s: %s lists %s (%d, %08x), _metadata %s" % (d, name, n, s, c, refs.get(n)))
        if listed != set(refs):
            faults.append("%s: _metadata's shared files are not its companions' (%d vs %d)" %
                          (d, len(refs), len(listed)))
        for n, (s, c) in refs.items():
            want[n] = (s, c, d)
    fin = os.path.join(job, "finished")
    if os.path.isdir(fin):
        for f in sorted(os.listdir(fin)):
            if f.endswith(".shared"):
                for n, s, c in companion(os.path.join(fin, f)):
                    want[n] = (s, c, "finished/" + f)
    have = sorted(os.listdir(shared)) if os.path.isdir(shared) else []
    names = [n for n in have if not n.startswith(".")]
    sums = {}
    if names:
        out = subprocess.run(["xxhsum", "-H1"] + names, cwd=shared, check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            h, n = line.split(None, 1)
            sums[n.strip()] = h
    for n, (s, c, who) in sorted(want.items()):
        p = os.path.join(shared, n)
        if not os.path.exists(p):
            faults.append("%s: references %s: missing" % (who, n))
            continue
        b = open(p, "rb").read()
        if len(b) != s or crc32c(b) != c:
            faults.append("%s: references %s: size %d CRC %08x, recorded %d %08x" %
                          (who, n, len(b), crc32c(b), s, c))
    for n in names:
        if n != "%s-%d" % (sums.get(n), os.path.getsize(os.path.join(shared, n))):
            faults.append("shared/%s: not named by its content (xxh64 %s)" % (n, sums.get(n)))
    extra = [n for n in have if n not in want]
    tmp = [n for n in extra if n.startswith(".tmp-")]
    if exact and extra:
        faults.append("shared/ holds %d files no checkpoint references: %s" % (len(extra), " ".join(extra[:10])))
    for f in faults:
        print(f)
    print("%d completed checkpoints (%s), %d shared files referenced, %d in shared/, "
          "%d unreferenced (%d temporary)" % (len(chks), " ".join(d for _, d in chks), len(want),
                                              len(have), len(extra), len(tmp)))
    return 1 if faults else 0


def main():
    cmd = sys.argv[1]
    if cmd == "check":
        sys.exit(check(sys.argv[2], "--exact" in sys.argv[3:]))
    if cmd == "refs":
        for n, (s, _) in sorted(shared_of(metadata(sys.argv[2])).items()):
            print(n, s)
    elif cmd == "incremental":
        prev = None
        for path in sys.argv[2:]:
            meta = metadata_file(path)
            refs = shared_of(meta)
            if prev is not None:
                new = sum(s for n, (s, _) in refs.items() if n not in prev)
                print(meta["id"], new, sum(s for s, _ in refs.values()))
            prev = refs
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    try:
        main()
    except Bad as e:
        print(e)
        sys.exit(1)
