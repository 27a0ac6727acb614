#!/usr/bin/env python3
"""Copies a wasm module, dropping the named exports.

rustc before 1.97 makes every wasm32-unknown-unknown module export the
linker globals `__data_end` and `__heap_base`; prodguard.wasm's exports are
exactly those in bindings/wasm/ABI.md, so the build drops them here.

usage: wasm-strip-exports.py IN OUT NAME...
"""
import sys


def leb(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def to_leb(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def strip(module, drop):
    if module[:8] != b"\0asm\x01\0\0\0":
        sys.exit("not a wasm core module (version 1)")
    out, pos, found = bytearray(module[:8]), 8, set()
    while pos < len(module):
        section_id = module[pos]
        size, start = leb(module, pos + 1)
        end = start + size
        if section_id == 7:  # exports
            count, p = leb(module, start)
            kept = []
            for _ in range(count):
                name_len, q = leb(module, p)
                name = module[q : q + name_len].decode()
                _, after = leb(module, q + name_len + 1)  # kind byte, then index
                if name in drop:
                    found.add(name)
                else:
                    kept.append(module[p:after])
                p = after
            body = to_leb(len(kept)) + b"".join(kept)
            out += bytes([7]) + to_leb(len(body)) + body
        else:
            out += module[pos:end]
        pos = end
    return bytes(out), found


def main():
    source, target, *drop = sys.argv[1:]
    with open(source, "rb") as f:
        module = f.read()
    stripped, found = strip(module, set(drop))
    with open(target, "wb") as f:
        f.write(stripped)
    for name in sorted(set(drop) - found):
        print(f"wasm-strip-exports: {name} was not exported (a newer rustc?)", file=sys.stderr)


main()
