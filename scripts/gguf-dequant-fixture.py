#!/usr/bin/env python3
"""Reference values for burn-rlora-gguf's dequantizers, from llama.cpp's
Python `gguf` package.

For every type that burn-rlora-gguf dequantizes, it builds blocks (random
bytes whose f16 scale fields are set to chosen values, and blocks with
extreme scales: f16 max 65504 of either sign, the smallest and largest
subnormals, +0 and -0, +-inf, quiet and signaling NaNs, all-zero and
all-ones quants) and records what `gguf.quants.dequantize(data, type)`
gives for them, as f32 bit patterns. The test `dequant::python_reference`
of burn-rlora-gguf (tests/it/dequant.rs) compares its own results with
them bit for bit.

    python3 -m venv /work/ggufenv
    /work/ggufenv/bin/pip install gguf==0.19.0 numpy==2.4.6
    /work/ggufenv/bin/python scripts/gguf-dequant-fixture.py

writes burn-rlora-gguf/tests/fixtures/dequant-reference.txt (about 340 KB;
deterministic: a fixed seed). The committed file was written with gguf
0.19.0 and numpy 2.4.6 (Python 3.11, x86_64).

The file's format, one case a line after the `#` comments:

    TYPE CASE INPUT_HEX EXPECTED_HEX

INPUT_HEX is the tensor data (one or more whole blocks), EXPECTED_HEX the
dequantized values as little-endian f32 bytes.
"""

import importlib.metadata
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "burn-rlora-gguf",
    "tests",
    "fixtures",
    "dequant-reference.txt",
)

# The byte offsets of each type's f16 scale fields in a block: d, then
# m / dmin where the type has one (ggml-common.h's block_* structs).
SCALE_FIELDS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

# Notable f16 bit patterns.
F16_MAX, F16_MIN_SUB, F16_MAX_SUB, F16_MIN_NORMAL = 0x7BFF, 0x0001, 0x03FF, 0x0400
F16_INF, F16_QNAN, F16_SNAN = 0x7C00, 0x7E00, 0x7D00
NEG = 0x8000

# Cases with every scale field set to one value (the quants random).
SAME_SCALE_CASES = {
    "max": F16_MAX,
    "max-negative": F16_MAX | NEG,
    "smallest-subnormal": F16_MIN_SUB,
    "largest-subnormal": F16_MAX_SUB,
    "smallest-normal-negative": F16_MIN_NORMAL | NEG,
    "zero": 0x0000,
    "negative-zero": NEG,
    "inf": F16_INF,
    "negative-inf": F16_INF | NEG,
    "quiet-nan": F16_QNAN,
    "signaling-nan": F16_SNAN,
    "negative-nan-with-payload": 0xFE01,
}

# Cases for the types with a second field (m or dmin): (d, m).
TWO_SCALE_CASES = {
    "d-max-m-subnormal": (F16_MAX, F16_MIN_SUB),
    "d-subnormal-m-max-negative": (F16_MAX_SUB, F16_MAX | NEG),
    "d-inf-m-zero": (F16_INF, 0x0000),
    "d-zero-m-nan": (0x0000, F16_QNAN),
    "d-one-m-negative-zero": (0x3C00, NEG),
    "d-negative-zero-m-zero": (NEG, 0x0000),
}


def f16_bits(values):
    return np.asarray(values, dtype=np.float16).view(np.uint16)


def set_fields(block, offsets, bits):
    for off, b in zip(offsets, bits):
        block[off : off + 2] = np.array([b], dtype="<u2").view(np.uint8)


def reference(qtype, data):
    with np.errstate(all="ignore"):
        values = dequantize(np.ascontiguousarray(data, dtype=np.uint8), qtype)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    assert values.size == data.size // type_size * block_size, qtype.name
    return values


def quantized_cases(rng, qtype):
    _, type_size = GGML_QUANT_SIZES[qtype]
    fields = SCALE_FIELDS[qtype]
    random_block = lambda: rng.integers(0, 256, type_size, dtype=np.uint8)
    cases = []
    # Random quants with typical scales: |d| log-uniform in [2^-14, 2^-2],
    # positive (as quantizers write d and dmin) or of random sign; two blocks.
    for name, signed in [("random", False), ("random-signed", True)]:
        blocks = [random_block() for _ in range(2)]
        for b in blocks:
            mags = 2.0 ** rng.uniform(-14, -2, len(fields))
            signs = rng.choice([-1.0, 1.0], len(fields)) if signed else np.ones(len(fields))
            set_fields(b, fields, f16_bits(mags * signs))
        cases.append((name, np.concatenate(blocks)))
    # Every byte random, the scale fields too (any f16, NaN and inf included).
    cases.append(("random-bits", np.concatenate([random_block() for _ in range(2)])))
    for name, bits in SAME_SCALE_CASES.items():
        b = random_block()
        set_fields(b, fields, [bits] * len(fields))
        cases.append((name, b))
    if len(fields) == 2:
        for name, bits in TWO_SCALE_CASES.items():
            b = random_block()
            set_fields(b, fields, bits)
            cases.append((name, b))
    # Extreme quants (and sub-block scales): every other byte 0x00 or 0xff.
    for name, fill in [("quants-all-zero", 0x00), ("quants-all-ones", 0xFF)]:
        b = np.full(type_size, fill, dtype=np.uint8)
        set_fields(b, fields, [0x3C00] + [0xB800] * (len(fields) - 1))  # d = 1, m = -0.5
        cases.append((name, b))
        b = np.full(type_size, fill, dtype=np.uint8)
        set_fields(b, fields, [F16_MAX] * len(fields))
        cases.append((name + "-max-scales", b))
    return cases


def plain_cases(rng, qtype):
    specials = [0x0000, NEG, F16_MIN_SUB, F16_MAX_SUB, F16_MIN_NORMAL, F16_MAX, F16_MAX | NEG,
                F16_INF, F16_INF | NEG, F16_QNAN, F16_SNAN, 0x7C01, 0xFE01, 0x3C00, 0x3555]
    if qtype == T.F32:
        bits = np.array([0, 0x80000000, 1, 0x007FFFFF, 0x7F7FFFFF, 0x7F800000, 0xFF800000,
                         0x7FC00000, 0x7FA00000, 0x3F800000], dtype="<u4")
        rand = rng.integers(0, 2**32, 54, dtype=np.uint64).astype("<u4")
        return [("specials", bits.view(np.uint8)), ("random-bits", rand.view(np.uint8))]
    bits = np.array(specials, dtype="<u2")
    rand = rng.integers(0, 2**16, 64, dtype=np.uint32).astype("<u2")
    return [("specials", bits.view(np.uint8)), ("random-bits", rand.view(np.uint8))]


def check_scale_fields(qtype):
    """The offsets in SCALE_FIELDS are those of the scales: zeroing them
    zeroes the output of a block of random quants and sub-block scales."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    b = np.random.default_rng(1).integers(1, 256, type_size, dtype=np.uint8)
    assert np.any(reference(qtype, b) != 0), qtype.name
    set_fields(b, SCALE_FIELDS[qtype], [0] * len(SCALE_FIELDS[qtype]))
    assert np.all(reference(qtype, b) == 0), qtype.name


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    rng = np.random.default_rng(20251207)
    versions = (
        f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}, "
        f"Python {sys.version.split()[0]}"
    )
    lines = [
        "# Reference dequantizations by the Python gguf package (gguf.quants.dequantize).",
        f"# Written by scripts/gguf-dequant-fixture.py with {versions}.",
        "# TYPE CASE INPUT_HEX EXPECTED_HEX (the values as little-endian f32 bytes)",
    ]
    for qtype in [T.F32, T.F16, T.BF16]:
        for name, data in plain_cases(rng, qtype):
            values = reference(qtype, data)
            lines.append(f"{qtype.name} {name} {data.tobytes().hex()} {values.astype('<f4').tobytes().hex()}")
    for qtype in SCALE_FIELDS:
        check_scale_fields(qtype)
        for name, data in quantized_cases(rng, qtype):
            values = reference(qtype, data)
            lines.append(f"{qtype.name} {name} {data.tobytes().hex()} {values.astype('<f4').tobytes().hex()}")
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)
    print(f"{out}: {len(lines) - 3} cases, {os.path.getsize(out)} bytes ({versions})")


if __name__ == "__main__":
    main()
