#!/usr/bin/env python3
"""Write Tide snapshot files by hand, from the byte layouts documented in
state/snapshot.h and state/metadata.h (an independent writer, to check
`tide verify` and recovery):

  snapshot file: header "TIDESNAP", version u32, kind u32; sections (tag
  u32, len u64, data); trailer (count u32, size u64, CRC32C u32 of
  everything before it); all little-endian.
  state file: kind 1, an identity section (tag 0x80000000: u64 checkpoint
  id, u32 flags (1 = final state), the job name), then its data.
  _metadata: kind 2; sections 1 info (u64 id, u64 time ms, u32 flags, u32
  subtasks, 8 zero bytes), 2 job description, 3 one flag byte per subtask,
  4 the job name, 5 the files (u32 subtask, u64 size, u32 CRC32C of the
  file's trailer, u16 name length, name).

usage: make_snapshot.py PATH KIND [TAG:TEXT ...]
       make_snapshot.py checkpoint DIR ID JOB NAME:SUBTASK:TEXT ...
         (a complete checkpoint: the state files, each with the identity
         of checkpoint ID of JOB, then DIR/_metadata listing them)
"""
import os
import struct
import sys

IDENTITY = 0x80000000


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def snapshot(kind, sections):
    body = b"TIDESNAP" + struct.pack("<II", 1, kind)
    for tag, data in sections:
        body += struct.pack("<IQ", tag, len(data)) + data
    size = len(body) + 16
    body += struct.pack("<IQ", len(sections), size)
    return body + struct.pack("<I", crc32c(body))


def checkpoint(d, cid, job, specs):
    os.makedirs(d, exist_ok=True)
    files, subtasks = b"", 0
    for spec in specs:
        name, sub, text = spec.split(":", 2)
        ident = struct.pack("<QI", cid, 0) + job.encode()
        data = snapshot(1, [(IDENTITY, ident), (1, text.encode())])
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        crc = struct.unpack("<I", data[-4:])[0]
        files += struct.pack("<IQIH", int(sub), len(data), crc, len(name)) + name.encode()
        subtasks = max(subtasks, int(sub) + 1)
    info = struct.pack("<QQII", cid, 1700000000000, 0, subtasks) + bytes(8)
    meta = snapshot(2, [(1, info), (2, b"\x80"), (3, bytes(subtasks)), (4, job.encode()), (5, files)])
    with open(os.path.join(d, "_metadata"), "wb") as f:
        f.write(meta)


def main():
    assert crc32c(b"123456789") == 0xE3069283
    if sys.argv[1] == "checkpoint":
        checkpoint(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
        return
    path, kind = sys.argv[1], int(sys.argv[2])
    sections = []
    for s in sys.argv[3:]:
        tag, text = s.split(":", 1)
        sections.append((int(tag), text.encode()))
    with open(path, "wb") as f:
        f.write(snapshot(kind, sections))


if __name__ == "__main__":
    main()
