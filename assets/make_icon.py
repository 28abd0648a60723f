#!/usr/bin/env python3
"""Writes icon.png (128x128 RGBA): a blue rounded square with four white panes and a green
check mark. Standard library only, so anyone can regenerate it: `python3 assets/make_icon.py`."""
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


raw = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(N)) for y in range(N))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.png"), "wb") as f:
    f.write(png)
