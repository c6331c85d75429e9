#!/usr/bin/env python3
"""Parity fixtures for InstructBLIP's image preprocessing (models/image_preprocess.c,
blip_preprocess): transformers' BlipImageProcessor on the images of tests/fixtures/image.

Environment this was run with (tests/parity/requirements.txt pins the packages):
    Python 3.11 (Debian 12), Pillow 9.4.0 (Debian's python3-pil), numpy 2.4.6 (pip, with
    transformers), transformers 4.44.2

    /usr/bin/python3 -m venv --system-site-packages /tmp/venv_hf
    /tmp/venv_hf/bin/pip install transformers==4.44.2 tokenizers==0.19.1
    /tmp/venv_hf/bin/python tests/parity/make_blip_preprocess_fixtures.py tests/fixtures

Writes instructblip/preprocess.safetensors: for each image NAME below, NAME.blip24
(3,24,24) f32 = BlipImageProcessor(size 24x24) (bicubic resize to the square, whatever the
aspect ratio, rescale 1/255, OpenAI CLIP mean/std), and photo.jpg.blip224_sample: every
97th value of the (3,224,224) output at the released models' settings (the whole array is
600 KB). versions are in instructblip/preprocess_versions.json.
"""
import json
import os
import sys

import numpy as np
import PIL
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import BlipImageProcessor

NAMES = ("rgb.png", "wide.png", "photo.jpg", "grey.png", "palette.png", "rgba.png", "big.jpg")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def main():
    fixtures = sys.argv[1]
    out = {}
    small = BlipImageProcessor(size={"height": 24, "width": 24}, image_mean=MEAN, image_std=STD)
    released = BlipImageProcessor(size={"height": 224, "width": 224}, image_mean=MEAN,
                                  image_std=STD)
    for name in NAMES:
        img = Image.open(os.path.join(fixtures, "image", name))
        out[name + ".blip24"] = small(img, return_tensors="np")["pixel_values"][0]
    full = released(Image.open(os.path.join(fixtures, "image", "photo.jpg")),
                    return_tensors="np")["pixel_values"][0]
    out["photo.jpg.blip224_sample"] = np.ascontiguousarray(full.reshape(-1)[::97])
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()},
              os.path.join(fixtures, "instructblip", "preprocess.safetensors"))
    with open(os.path.join(fixtures, "instructblip", "preprocess_versions.json"), "w") as f:
        json.dump({"python": sys.version.split()[0], "pillow": PIL.__version__,
                   "numpy": np.__version__, "transformers": transformers.__version__}, f,
                  indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
