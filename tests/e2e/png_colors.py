"""Count the pixels of given colours in a PNG (tests/e2e/test_dashboard.sh).

    python3 png_colors.py FILE RRGGBB...

prints "RRGGBB COUNT" per colour: pixels within 8 of it in each channel.
Reads 8-bit RGB and RGBA, non-interlaced (what Chromium's screenshots
are), with the standard library only (zlib), undoing the scanline filters
of the PNG specification (section 9). (Quick enough in pure Python: rows
of filter None and Up, Chromium's usual ones, are undone a row at a time,
and the pixels are counted by distinct colour.)
"""
import collections
import struct
import sys
import zlib


def pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, width = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                sys.exit(f"{path}: only 8-bit RGB/RGBA, non-interlaced (depth {depth}, type {ctype})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    # bytewise addition mod 256 of two rows as integers: the low 7 bits of
    # each byte added (no carry leaves a byte), the top bit by xor
    low = int.from_bytes(b"\x7f" * stride, "big")
    top = int.from_bytes(b"\x80" * stride, "big")
    prev = bytearray(stride)
    out = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 0:
            out.append(bytes(line))
            prev = line
            continue
        if f == 2:
            x, u = int.from_bytes(line, "big"), int.from_bytes(prev, "big")
            line = bytearray((((x & low) + (u & low)) ^ ((x ^ u) & top)).to_bytes(stride, "big"))
            out.append(bytes(line))
            prev = line
            continue
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out.append(bytes(line))
        prev = line
    return out, bpp


def main():
    rows, bpp = pixels(sys.argv[1])
    want = [(c, tuple(int(c[i:i + 2], 16) for i in (0, 2, 4))) for c in sys.argv[2:]]
    counts = {c: 0 for c, _ in want}
    colours = collections.Counter()
    for line in rows:
        colours.update(zip(line[0::bpp], line[1::bpp], line[2::bpp]))
    for (r, g, b), n in colours.items():
        for c, (wr, wg, wb) in want:
            if abs(r - wr) <= 8 and abs(g - wg) <= 8 and abs(b - wb) <= 8:
                counts[c] += n
    for c, _ in want:
        print(c, counts[c])


main()
