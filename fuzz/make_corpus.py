#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/: a few small valid inputs and a few broken ones
per target, so libFuzzer starts from the formats' structure rather than from nothing. The files
are committed; rerun this only to change them:  python3 fuzz/make_corpus.py"""
import gzip
import json
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    path = os.path.join(HERE, "corpus", target, name)
    with open(path, "wb") as f:
        f.write(data)


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gz(data):
    return gzip.compress(data, mtime=0)


def idx_corpus():
    t = "fuzz_idx"
    write(t, "ubyte-2x3", idx(0x08, [2, 3], bytes(range(6))))
    write(t, "sbyte-4", idx(0x09, [4], struct.pack(">4b", -128, -1, 0, 127)))
    write(t, "short-2x2", idx(0x0B, [2, 2], struct.pack(">4h", -32768, -1, 1, 32767)))
    write(t, "int-3", idx(0x0C, [3], struct.pack(">3i", -(2**31), 16777217, 2**31 - 1)))
    write(t, "float-1x1x2", idx(0x0D, [1, 1, 2], struct.pack(">2f", 1.5, float("nan"))))
    write(t, "double-2", idx(0x0E, [2], struct.pack(">2d", 1e300, float("-inf"))))
    write(t, "empty-0x5", idx(0x08, [0, 5], b""))
    write(t, "images-2x4x4.gz", gz(idx(0x08, [2, 4, 4], bytes(range(32)))))
    write(t, "two-members.gz", gz(idx(0x08, [4], b"")) + gz(bytes([1, 2, 3, 4])))
    # broken
    write(t, "bad-magic", bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 7]))
    write(t, "bad-type", idx(0x0A, [1], b"\0"))
    write(t, "cut-header", idx(0x08, [60000, 28, 28], b"")[:9])
    write(t, "cut-body", idx(0x0D, [3], struct.pack(">2f", 1, 2)))
    write(t, "extra-bytes", idx(0x08, [2], b"\1\2\3"))
    write(t, "huge-dims", idx(0x0D, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""))
    write(t, "cut.gz", gz(idx(0x08, [8], bytes(8)))[:-6])


def safetensors(header, data, pad=True):
    text = json.dumps(header, separators=(",", ":")) if not isinstance(header, str) else header
    if pad:
        text += " " * (-len(text) % 8)
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw + data


def safetensors_corpus():
    t = "fuzz_safetensors"
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    f64 = lambda *v: struct.pack("<%dd" % len(v), *v)
    write(t, "one-f32", safetensors(
        {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32(1, 2, 3, 4)))
    write(t, "f64-f32-metadata", safetensors(
        {"__metadata__": {"format": "pt"},
         "b": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
         "a": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]}},
        f64(0.5) + f32(1, float("inf"), -0.0)))
    write(t, "scalar-and-empty", safetensors(
        {"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
         "e": {"dtype": "F64", "shape": [0, 3], "data_offsets": [4, 4]}}, f32(7)))
    write(t, "no-tensors", safetensors({}, b""))
    # broken
    write(t, "f16", safetensors({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}},
                                bytes(4)))
    write(t, "overlap", safetensors(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)))
    write(t, "gap", safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                                bytes(8)))
    write(t, "truncated", safetensors(
        {"a": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}, bytes(20)))
    write(t, "bad-json", safetensors('{"a":{"dtype":"F32",', b""))
    write(t, "duplicate-key", safetensors(
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)))
    write(t, "huge-length", struct.pack("<Q", 2**64 - 1) + b"{}")
    write(t, "short", b"\x10\0\0")


def graph_corpus():
    # fuzz_graph reads any bytes as a program; a few random ones of different lengths to start.
    rng = random.Random(6)
    for n in (8, 32, 64, 128, 256, 512):
        write("fuzz_graph", "random-%d" % n, bytes(rng.randrange(256) for _ in range(n)))


def main():
    for target in ("fuzz_idx", "fuzz_safetensors", "fuzz_graph"):
        shutil.rmtree(os.path.join(HERE, "corpus", target), ignore_errors=True)
        os.makedirs(os.path.join(HERE, "corpus", target))
    idx_corpus()
    safetensors_corpus()
    graph_corpus()


if __name__ == "__main__":
    main()
