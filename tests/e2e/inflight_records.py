#!/usr/bin/env python3
"""Read Tide state files independently of Tide, from the layouts documented
in state/snapshot.h (header "TIDESNAP", u32 version, u32 kind; sections of
u32 tag, u64 length, data; trailer u32 count, u64 size, u32 CRC32C of all
before it; little-endian; the identity section, tag 0x80000000, of
state/metadata.h is skipped) and core/inband.h / core/codec.h (MessagePack
values, in-band ext entries d7 <kind> <int64 BE> and d4 <kind> <byte>).

usage: inflight_records.py inflight FILE
         one line per section: "CHANNEL FIRST LAST COUNT" of the records
         (strings whose first 8 characters are a decimal number) in it;
         exits 1 if the file is corrupt, a section holds anything but such
         records (and timestamps/watermarks), or its numbers do not rise
         by one constant step (a channel carries a source's numbers in
         order, every one or, after a rebalance, every p-th)
       inflight_records.py source_seq FILE
         the generator position in a source's state file (the seq of its
         first split: source.splits[1].state.seq)
"""
import struct
import sys

IDENTITY = 0x80000000

from make_snapshot import crc32c  # this script's directory is on sys.path


def sections(path):
    data = open(path, "rb").read()
    if data[:8] != b"TIDESNAP" or len(data) < 32:
        sys.exit("%s: not a snapshot file" % path)
    count, size, crc = struct.unpack("<IQI", data[-16:])
    if size != len(data) or crc != crc32c(data[:-4]):
        sys.exit("%s: bad size or CRC" % path)
    pos, out = 16, []
    for _ in range(count):
        tag, n = struct.unpack("<IQ", data[pos:pos + 12])
        if tag != IDENTITY:  # state/metadata.h: which checkpoint and job
            out.append((tag, data[pos + 12:pos + 12 + n]))
        pos += 12 + n
    return out


def value(b, i):
    """Decode one MessagePack value at b[i]: (value, next index)."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 0x100, i + 1
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if 0x80 <= t <= 0x9F or 0xDC <= t <= 0xDF:
        # fixmap, fixarray, array 16/32, map 16/32: 2 values per map entry
        is_map = t <= 0x8F or t >= 0xDE
        if t <= 0x9F:
            n, i = t & 0x0F, i + 1
        else:
            w = 2 if t in (0xDC, 0xDE) else 4
            n, i = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
        items = []
        for _ in range(2 * n if is_map else n):
            v, i = value(b, i)
            items.append(v)
        return (dict(zip(items[::2], items[1::2])) if is_map else items), i
    if t in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        w = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}[t]
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        s = b[i + 1 + w:i + 1 + w + n]
        return (s.decode() if t >= 0xD9 else s), i + 1 + w + n
    if t in (0xCC, 0xCD, 0xCE, 0xCF):
        w = 1 << (t - 0xCC)
        return int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    if t in (0xD0, 0xD1, 0xD2, 0xD3):
        w = 1 << (t - 0xD0)
        return int.from_bytes(b[i + 1:i + 1 + w], "big", signed=True), i + 1 + w
    if t == 0xCB:
        return struct.unpack(">d", b[i + 1:i + 9])[0], i + 9
    if t in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[t], i + 1
    if t == 0xD7:
        return ("ext", b[i + 1], int.from_bytes(b[i + 2:i + 10], "big", signed=True)), i + 10
    if t == 0xD4:
        return ("ext", b[i + 1], b[i + 2]), i + 3
    sys.exit("unsupported MessagePack type 0x%02x" % t)


def main():
    what, path = sys.argv[1], sys.argv[2]
    secs = sections(path)
    if what == "source_seq":
        v, _ = value(secs[0][1], 0)
        print(v["source"]["splits"][0]["state"]["seq"])
        return
    for tag, data in secs:
        i, nums = 0, []
        while i < len(data):
            v, i = value(data, i)
            if isinstance(v, tuple):
                if v[1] not in (1, 2, 3):  # timestamp, watermark, status only
                    sys.exit("channel %d: in-band entry of kind %d in in-flight data" % (tag, v[1]))
                continue
            if not isinstance(v, str) or not v[:8].isdigit():
                sys.exit("channel %d: unexpected value %r" % (tag, v))
            nums.append(int(v[:8]))
        step = nums[1] - nums[0] if len(nums) > 1 else 1
        if step < 1 or nums != list(range(nums[0], nums[0] + step * len(nums), step)):
            sys.exit("channel %d: numbers do not rise by a constant step" % tag)
        print(tag, nums[0] if nums else 0, nums[-1] if nums else 0, len(nums))


if __name__ == "__main__":
    main()
