#!/usr/bin/env python3
"""tests/fixtures/llava/no_vision: tests/fixtures/llava/tiny_hf without its vision tower
(every vision_tower.* tensor left out of model.safetensors; config and tokenizer copied), for
the "checkpoint without vision weights" error of tests/cli/llava.sh.

Generated with: Python 3.11.2, safetensors 0.4.4 (numpy):
  /tmp/venv_llama/bin/python tests/parity/make_llava_no_vision.py tests/fixtures/llava
"""
import os
import shutil
import sys

from safetensors.numpy import load_file, save_file


def main(root):
    src, dst = os.path.join(root, "tiny_hf"), os.path.join(root, "no_vision")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith(".json"):
            shutil.copy(os.path.join(src, name), dst)
    weights = load_file(os.path.join(src, "model.safetensors"))
    kept = {k: v for k, v in weights.items() if not k.startswith("vision_tower.")}
    assert len(kept) < len(weights)
    save_file(kept, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    print(f"{dst}: {len(kept)} of {len(weights)} tensors")


if __name__ == "__main__":
    main(sys.argv[1])
