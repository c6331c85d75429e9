#!/usr/bin/env python3
"""Writes the image fixtures that tests/test_image.c decodes and preprocesses in C.

Versions used to generate the committed files (Debian 12):
  python 3.11, numpy 1.24.2, Pillow 9.4.0 (Debian python3-pil, libjpeg-turbo 2.1.5,
  libpng 1.6.39), transformers 4.44.2, safetensors (pip)
Run:  /usr/bin/python3 -m venv --system-site-packages /tmp/venv_image
      /tmp/venv_image/bin/pip install transformers==4.44.2 safetensors
      /tmp/venv_image/bin/python tests/parity/make_image_fixtures.py tests/fixtures/image

Images (odd sizes, deterministic content): rgb.png 37x23, grey.png 29x41 (L),
rgba.png 33x19, palette.png 27x31 (P), rgb16.png 21x17 (16-bit RGB, written by hand since
Pillow cannot), grey16.png 13x11 (16-bit grey), wide.png 120x9 (ratio 13:1), photo.jpg 45x35
(4:2:0), big.jpg 71x59, grey.jpg 25x19, cmyk.jpg 23x29 (Adobe CMYK).
Bad inputs: empty.png, zero_width.png (IHDR width 0, valid CRC), huge.png (IHDR
100000x100000, valid CRC, one short IDAT), truncated.png, corrupt.png (an IDAT byte flipped),
truncated.jpg, corrupt.jpg (SOF height field zeroed), text.png / text.jpg (ASCII text).

outputs.safetensors, for each image NAME:
  NAME.pixels  (H,W,3) U8   Image.open(...).convert("RGB") (what CLIPImageProcessor sees)
  NAME.clip24  (3,24,24) F32  CLIPImageProcessor(shortest_edge 24, crop 24, CLIP mean/std)
  NAME.pad24   (3,24,24) F32  LLaVA: expand2square with the mean colour, then as clip24
                              (only for PAD_NAMES, to keep the fixtures under 200 KB)
  (grey16 has only .pixels: see the test for why)
and photo.clip336_sample: every 193rd value of the (3,336,336) output at the OpenAI CLIP
ViT-L/336 settings (the full array is 1.3 MB, too large to commit).
"""
import io, os, struct, sys, zlib

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessor

MEAN = [0.48145466, 0.4578275, 0.40821073]
PAD_NAMES = ("rgb.png", "wide.png", "photo.jpg", "grey.png")
STD = [0.26862954, 0.26130258, 0.27577711]


def pattern(w, h, seed):
    """Smooth gradients plus noise, so both resampling and JPEG have something to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / 5.0 + seed)
    g = 127 + 120 * np.cos(y / 4.0 + x / 9.0)
    b = 255 * ((x + 2 * y) % 17) / 16
    img = np.stack([r, g, b], -1) + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(w, h, depth, color, rows):
    """A PNG written by hand (filter 0 on every row)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def main(out):
    os.makedirs(out, exist_ok=True)
    files = {}
    files["rgb.png"] = Image.fromarray(pattern(37, 23, 1))
    files["grey.png"] = Image.fromarray(pattern(29, 41, 2)[:, :, 1])
    rgba = np.concatenate([pattern(33, 19, 3), pattern(33, 19, 4)[:, :, :1]], -1)
    files["rgba.png"] = Image.fromarray(rgba, "RGBA")
    files["palette.png"] = Image.fromarray(pattern(27, 31, 5)).quantize(40)
    files["wide.png"] = Image.fromarray(pattern(120, 9, 6))
    files["photo.jpg"] = Image.fromarray(pattern(45, 35, 7))
    files["big.jpg"] = Image.fromarray(pattern(71, 59, 8))
    files["grey.jpg"] = Image.fromarray(pattern(25, 19, 9)[:, :, 0])
    cmyk = np.concatenate([pattern(23, 29, 10), pattern(23, 29, 11)[:, :, :1] // 2], -1)
    files["cmyk.jpg"] = Image.fromarray(cmyk, "CMYK")
    for name, im in files.items():
        path = os.path.join(out, name)
        if name.endswith(".jpg"):
            im.save(path, quality=90)
        else:
            im.save(path)
    rgb16 = pattern(21, 17, 12).astype(np.uint16) * 257 + np.uint16(77)  # low byte varies
    with open(os.path.join(out, "rgb16.png"), "wb") as f:
        f.write(png_raw(21, 17, 16, 2, [r.astype(">u2").tobytes() for r in rgb16]))
    grey16 = (pattern(13, 11, 13)[:, :, 0].astype(np.uint16) * 256 + 200)
    with open(os.path.join(out, "grey16.png"), "wb") as f:
        f.write(png_raw(13, 11, 16, 0, [r.astype(">u2").tobytes() for r in grey16]))

    # Bad inputs.
    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    good_png = open(os.path.join(out, "rgb.png"), "rb").read()
    good_jpg = open(os.path.join(out, "photo.jpg"), "rb").read()
    write("empty.png", b"")
    write("zero_width.png", b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 0, 7, 8, 2, 0, 0, 0)) + png_chunk(b"IEND", b""))
    write("huge.png", b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 300001)) + png_chunk(b"IEND", b""))
    write("truncated.png", good_png[: len(good_png) // 2])
    idat = good_png.index(b"IDAT") + 8
    write("corrupt.png", good_png[:idat] + bytes([good_png[idat] ^ 0x55]) + good_png[idat + 1:])
    write("truncated.jpg", good_jpg[: len(good_jpg) // 2])
    sof = good_jpg.index(b"\xff\xc0")
    write("corrupt.jpg", good_jpg[: sof + 5] + b"\0\0" + good_jpg[sof + 7:])
    write("text.png", b"this is not an image, only text with a .png name\n")
    write("text.jpg", b"GIF? no. plain text in a .jpg file\n")

    proc = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24},
                              image_mean=MEAN, image_std=STD)
    mean_u8 = tuple(int(x * 255) for x in MEAN)
    tensors = {}
    for name in sorted(list(files) + ["rgb16.png", "grey16.png"]):
        key = name.replace(".", "_")
        im = Image.open(os.path.join(out, name))
        rgb = im.convert("RGB")
        if name == "grey16.png":
            # Pillow opens 16-bit grey as mode "I" and convert("RGB") clips to 255: aspo
            # keeps the high byte instead, so only the decoded pixels are compared.
            tensors[key + ".pixels"] = (grey16 >> 8).astype(np.uint8)[:, :, None].repeat(3, -1)
            continue
        tensors[key + ".pixels"] = np.asarray(rgb, dtype=np.uint8).copy()
        tensors[key + ".clip24"] = proc(images=im, return_tensors="np")["pixel_values"][0]
        if name not in PAD_NAMES:
            continue
        w, h = rgb.size
        sq = Image.new("RGB", (max(w, h), max(w, h)), mean_u8)
        sq.paste(rgb, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
        tensors[key + ".pad24"] = proc(images=sq, return_tensors="np")["pixel_values"][0]
    proc336 = CLIPImageProcessor(size={"shortest_edge": 336},
                                 crop_size={"height": 336, "width": 336},
                                 image_mean=MEAN, image_std=STD)
    full = proc336(images=Image.open(os.path.join(out, "photo.jpg")),
                   return_tensors="np")["pixel_values"][0]
    tensors["photo_jpg.clip336_sample"] = full.reshape(-1)[::193].copy()
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              os.path.join(out, "outputs.safetensors"))
    os.chmod(os.path.join(out, "outputs.safetensors"), 0o644)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/image")
