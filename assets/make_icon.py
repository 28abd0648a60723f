#!/usr/bin/env python3
"""Writes icon.png (128x128 RGBA): a blue rounded square with four white panes and a green
check mark, and icon.ico (16 to 256 px, PNG-compressed entries) for the Windows exe and the MSI
shortcut. Standard library only, so anyone can regenerate them: `python3 assets/make_icon.py`."""
import os, struct, zlib

N = 128
BLUE, WHITE, GREEN = (0, 103, 184), (255, 255, 255), (16, 160, 72)


def inside_rounded(x, y, r=22):
    cx = min(max(x, r), N - 1 - r)
    cy = min(max(y, r), N - 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def pixel(x, y):
    if not inside_rounded(x, y):
        return (0, 0, 0, 0)
    # check mark: two thick strokes, drawn over the panes
    def near(ax, ay, bx, by, w):
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        px, py = ax + t * dx, ay + t * dy
        return (x - px) ** 2 + (y - py) ** 2 <= w * w
    if near(58, 86, 74, 102, 8) or near(74, 102, 108, 62, 8):
        return GREEN + (255,)
    for x0, y0 in ((26, 26), (66, 26), (26, 66), (66, 66)):
        if x0 <= x < x0 + 36 and y0 <= y < y0 + 36:
            return WHITE + (255,)
    return BLUE + (255,)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(size, rows):
    raw = b"".join(b"\0" + b"".join(bytes(p) for p in row) for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def scaled(size, k=4):
    """The drawing at another size: each pixel averages k*k samples of the 128 px design, so
    small sizes stay smooth (colours premultiplied by alpha so edges do not darken)."""
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            acc = [0, 0, 0, 0]
            for j in range(k):
                for i in range(k):
                    sx = int((x + (i + 0.5) / k) * N / size)
                    sy = int((y + (j + 0.5) / k) * N / size)
                    r, g, b, a = pixel(sx, sy)
                    acc[0] += r * a; acc[1] += g * a; acc[2] += b * a; acc[3] += a
            a = acc[3]
            row.append((0, 0, 0, 0) if a == 0 else
                       (round(acc[0] / a), round(acc[1] / a), round(acc[2] / a), round(a / (k * k))))
        rows.append(row)
    return rows


here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "icon.png"), "wb") as f:
    f.write(png(N, [[pixel(x, y) for x in range(N)] for y in range(N)]))

# ICO: a directory of PNG images (Windows Vista and later, Wine, windres all read them).
sizes = [16, 24, 32, 48, 64, 128, 256]
images = [png(s, scaled(s)) for s in sizes]
ico = struct.pack("<HHH", 0, 1, len(sizes))
offset = 6 + 16 * len(sizes)
for s, data in zip(sizes, images):
    ico += struct.pack("<BBBBHHII", s % 256, s % 256, 0, 0, 1, 32, len(data), offset)
    offset += len(data)
with open(os.path.join(here, "icon.ico"), "wb") as f:
    f.write(ico + b"".join(images))
