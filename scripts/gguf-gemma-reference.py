#!/usr/bin/env python3
"""Reference digests of every tensor of the real Gemma 3 270M Q4_K_M file,
as llama.cpp's Python `gguf` package dequantizes it.

Reads data/gemma3/gemma-3-270m-q4_k_m.gguf (fetched by
scripts/fetch-data.sh) with `gguf.GGUFReader` and dequantizes each of its
236 tensors (Q4_K, Q6_K, Q5_0, Q8_0, F32) with `gguf.quants.dequantize`.
For each it records a digest that burn-rlora-gguf's test
`real_file::gemma3_every_tensor_dequantizes_as_the_python_gguf_package_does`
(tests/it/real_file.rs) checks bit for bit:

- a 64-bit FNV-1a hash of the f32 bit patterns in file order, one step per
  value (not per byte): h = 0xcbf29ce484222325, then for each value
  h = (h ^ bits) * 0x100000001b3 mod 2^64;
- the f64 sum of the values (numpy's pairwise sum; the test allows for
  another summation order);
- the f32 bits of the values at a few flat indices (first, second, the
  middle, last, and three spread by a multiplicative hash).

    python3 -m venv /work/ggufenv
    /work/ggufenv/bin/pip install gguf==0.19.0 numpy==2.4.6
    bash scripts/fetch-data.sh
    /work/ggufenv/bin/python scripts/gguf-gemma-reference.py [path/to/gemma-3-270m-q4_k_m.gguf]

writes burn-rlora-gguf/tests/fixtures/gemma3-270m-q4_k_m-reference.txt
(about 40 KB) in about a minute and a half (the hash is a Python loop over the 268
million values). The committed file was written with gguf 0.19.0 and
numpy 2.4.6 (Python 3.11, x86_64).

The file's format, one tensor a line after the `#` comments, in file order:

    NAME TYPE DIMS N FNV1A SUM PICKS

DIMS in GGUF order (row length first), comma-separated; N the number of
values; FNV1A 16 hex digits; SUM a Python float repr; PICKS
`index:bits,...` with the bits as 8 hex digits.
"""

import importlib.metadata
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(
    os.environ.get("BURN_RLORA_DATA", os.path.join(HERE, "..", "data")),
    "gemma3",
    "gemma-3-270m-q4_k_m.gguf",
)
OUT = os.path.join(
    HERE, "..", "burn-rlora-gguf", "tests", "fixtures", "gemma3-270m-q4_k_m-reference.txt"
)

FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv1a_words(bits):
    """FNV-1a over the u32 words of `bits`, one step per word."""
    h = FNV_OFFSET
    for start in range(0, bits.size, 1 << 20):
        for w in bits[start : start + (1 << 20)].tolist():
            h = ((h ^ w) * FNV_PRIME) & MASK
    return h


def picks(n):
    spread = [(k * 2654435761) % n for k in (1, 2, 3)]
    return sorted({0, min(1, n - 1), n // 2, n - 1, *spread})


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    reader = GGUFReader(path)
    versions = (
        f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}, "
        f"Python {sys.version.split()[0]}"
    )
    lines = [
        "# Digests of every tensor of gemma-3-270m-q4_k_m.gguf (sha256 a5fd3b62...6818) as",
        "# gguf.quants.dequantize gives them: FNV-1a 64 over the f32 bits, one step per value.",
        f"# Written by scripts/gguf-gemma-reference.py with {versions}.",
        "# NAME TYPE DIMS N FNV1A SUM PICKS(index:bits)",
    ]
    for t in reader.tensors:
        with np.errstate(all="ignore"):
            values = dequantize(t.data, t.tensor_type)
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        dims = [int(d) for d in t.shape]
        n = int(np.prod(dims))
        assert values.size == n, t.name
        bits = values.view(np.uint32)
        total = float(np.sum(values, dtype=np.float64))
        chosen = ",".join(f"{i}:{int(bits[i]):08x}" for i in picks(n))
        lines.append(
            f"{t.name} {t.tensor_type.name} {','.join(map(str, dims))} {n} "
            f"{fnv1a_words(bits):016x} {total!r} {chosen}"
        )
        print(lines[-1][:100], file=sys.stderr)
    with open(OUT + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(OUT + ".tmp", OUT)
    print(f"{OUT}: {len(reader.tensors)} tensors, {os.path.getsize(OUT)} bytes ({versions})")


if __name__ == "__main__":
    main()
