#!/usr/bin/env python3
"""Reference Q8_0 and F16 encodings for burn-rlora-gguf's writer tests.

Quantizes the blocks that `burn-rlora-gguf/tests/it/writer.rs` builds
(`reference_inputs()`, the same formulas in f32) with llama.cpp's `gguf`
package (`gguf.quants.quantize`, bit for bit ggml's `quantize_row_q8_0_ref`)
and numpy's float16 conversion, and prints the expected bytes as the hex
strings the test holds.

    /work/refvenv/bin/python scripts/llamacpp-q8-fixture.py
"""

import hashlib

import gguf
import numpy as np


def reference_inputs() -> np.ndarray:
    f = np.float32
    blocks = []
    # 1: halves, scale exactly 1 (amax 127): ties round away from zero.
    b = [f(0.5), f(-0.5), f(1.5), f(-2.5), f(126.5), f(-126.5), f(127.0), f(0.0)]
    blocks.append(b + [f(i) - f(16) for i in range(24)])
    # 2: all zeros (d = 0, id = 0).
    blocks.append([f(0.0)] * 32)
    # 3: a tiny block whose f32 scale is below f16's smallest subnormal.
    blocks.append([f(1e-6) * f(i - 16) / f(16) for i in range(32)])
    # 4: the largest magnitude negative.
    blocks.append([f(-3.0)] + [f(i) / f(13) for i in range(31)])
    # 5-12: pseudo-random values, the same formula in Rust.
    for k in range(8):
        blocks.append([f(((k * 32 + i) * 7919) % 1000 - 500) / f(37) for i in range(32)])
    return np.array(blocks, dtype=np.float32).reshape(-1)


def main() -> None:
    x = reference_inputs()
    q8 = gguf.quants.quantize(x.reshape(-1, 32), gguf.GGMLQuantizationType.Q8_0).tobytes()
    f16 = x.astype(np.float16).tobytes()
    print(f"gguf {gguf.__file__}")
    print(f"values: {x.size}")
    print(f"Q8_0 sha256 {hashlib.sha256(q8).hexdigest()}")
    print(f"const Q8_0_REFERENCE: &str = \"{q8.hex()}\";")
    print(f"const F16_REFERENCE: &str = \"{f16.hex()}\";")


if __name__ == "__main__":
    main()
