#!/usr/bin/env python3
"""Write a Tide snapshot file by hand, from the byte layout documented in
state/snapshot.h (an independent writer, to check `tide verify`):
header "TIDESNAP", version u32, kind u32; sections (tag u32, len u64,
data); trailer (count u32, size u64, CRC32C u32 of everything before it);
all little-endian.

usage: make_snapshot.py PATH KIND [TAG:TEXT ...]
"""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def main():
    path, kind = sys.argv[1], int(sys.argv[2])
    assert crc32c(b"123456789") == 0xE3069283
    body = b"TIDESNAP" + struct.pack("<II", 1, kind)
    sections = sys.argv[3:]
    for s in sections:
        tag, text = s.split(":", 1)
        data = text.encode()
        body += struct.pack("<IQ", int(tag), len(data)) + data
    size = len(body) + 16
    body += struct.pack("<IQ", len(sections), size)
    body += struct.pack("<I", crc32c(body))
    with open(path, "wb") as f:
        f.write(body)


if __name__ == "__main__":
    main()
