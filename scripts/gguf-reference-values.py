#!/usr/bin/env python3
"""Reference values for burn-rlora-gguf's test against the real SmolLM2 file.

Reads data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf with the `gguf` package
(llama.cpp's own Python reader and dequantizers) and prints, for a few
tensors, the values at chosen flat indices (as f32 bit patterns, so that the
Rust test can compare them exactly) and the f64 sum of all values. The
output is pasted into burn-rlora-gguf/tests/it/real_file.rs.

    python3 -m venv /tmp/ggufenv
    /tmp/ggufenv/bin/pip install gguf==0.19.0 numpy
    /tmp/ggufenv/bin/python scripts/gguf-reference-values.py [path/to/file.gguf]

The values recorded in the test were produced with gguf 0.19.0 and numpy 2.4.
"""

import importlib.metadata
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

DEFAULT = os.path.join(
    os.environ.get("BURN_RLORA_DATA", os.path.join(os.path.dirname(__file__), "..", "data")),
    "smollm2",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
)

# Tensor name -> flat indices (in file order, i.e. row-major for the reversed dims).
PICKS = {
    "token_embd.weight": [0, 1, 31, 32, 575, 576, 1_000_003, 12_345_678, 576 * 49152 - 1],
    "blk.0.attn_q.weight": [0, 1, 15, 16, 17, 31, 32, 100_000, 576 * 576 - 1],
    "blk.29.ffn_down.weight": [0, 16, 1535, 1536, 400_000, 1536 * 576 - 1],
    "output_norm.weight": [0, 1, 575],
}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    reader = GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    versions = f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}"
    print(f"// Produced by scripts/gguf-reference-values.py ({versions})")
    print("// (name, type, dims in GGUF order, [(flat index, f32 bits)], f64 sum of all values)")
    print("#[rustfmt::skip]")
    print("const REFERENCE: &[Reference] = &[")
    for name, picks in PICKS.items():
        t = by_name[name]
        values = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
        dims = [int(d) for d in t.shape]
        assert values.size == int(np.prod(dims)), name
        pairs = ", ".join(f"({i}, 0x{values[i].view(np.uint32):08x})" for i in picks)
        total = float(np.sum(values, dtype=np.float64))
        print(f'    ("{name}", "{t.tensor_type.name}", &{dims}, &[{pairs}], {total!r}),')
    print("];")


if __name__ == "__main__":
    main()
