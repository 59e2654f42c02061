#!/usr/bin/env python3
"""make-image.py — writes squares.png, the example's photo: 640 x 480, a light background with a
soft gradient, a red 128-pixel square at (64, 112), a blue 64-pixel square at (96, 320) and a
green 256-pixel square at (320, 176) (x, y of the top left corner)."""
import struct, zlib, pathlib

W, H = 640, 480
SQUARES = [((64, 112, 128), (220, 30, 30)), ((96, 320, 64), (30, 40, 210)), ((320, 176, 256), (30, 180, 40))]


def pixel(x, y):
    for (sx, sy, size), rgb in SQUARES:
        if sx <= x < sx + size and sy <= y < sy + size:
            return rgb
    g = 235 - y * 40 // H
    return (g, g, g - 10)


rows = b"".join(b"\0" + bytes(c for x in range(W) for c in pixel(x, y)) for y in range(H))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)) + \
    chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
pathlib.Path(__file__).with_name("squares.png").write_bytes(png)
