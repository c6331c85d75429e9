#!/usr/bin/env python3
"""Writes tests/fixtures/llava_data/: a small image preference set in both formats aspo
reads, for tests/test_data.c (loading) and the trainer's image tests.

Versions used to generate the committed files (Debian 12):
  python 3.11, Pillow 9.4.0 (Debian python3-pil, libjpeg-turbo 2.1.5, libpng 1.6.39)
Run:  /usr/bin/python3 tests/parity/make_llava_data.py tests/fixtures/llava_data

  images/          six images of odd sizes, PNG and JPEG, each a different flat shape and
                   colour on its own background (so a CLIP can tell them apart)
  pairs.jsonl      8 rows {"prompt", "chosen", "rejected", "image"}; some prompts start with
                   "<image>\\n", some do not; chosen answers have 2-3 sentences, rejected 1-2;
                   written as UTF-8 (ensure_ascii=False)
  seva.json        the same 8 pairs as SeVa's data/step3 scripts write them: one JSON list of
                   {"chosen", "reject", "question", "image_id"}, json.dump's defaults (one
                   line, non-ASCII as \\u escapes)
  bad/missing_image.jsonl     line 2 names an image file that does not exist (loads; the
                              trainer reports it)
  bad/image_not_string.jsonl  line 2 has "image": 7
  bad/seva_bad_entry.json     entry 2 of 3 lacks "reject" (pretty-printed)
  bad/seva_not_list.json      one JSON object {"pairs": [...]} over several lines

Image paths are file names relative to images/ (the trainer's --image-root), as SeVa's
image_id is.
"""
import json
import os
import sys

from PIL import Image, ImageDraw

# name, (width, height), background, shape, shape colour
IMAGES = [
    ("red_circle.png", (37, 23), (240, 240, 240), "circle", (220, 30, 30)),
    ("blue_square.jpg", (50, 50), (250, 250, 200), "square", (30, 60, 210)),
    ("green_triangle.png", (61, 40), (20, 20, 20), "triangle", (40, 200, 60)),
    ("yellow_stripes.jpg", (45, 31), (90, 30, 120), "stripes", (250, 220, 40)),
    ("purple_cross.png", (29, 53), (200, 230, 255), "cross", (130, 40, 160)),
    ("orange_ring.jpg", (64, 27), (10, 70, 90), "ring", (255, 140, 20)),
]

# prompt, chosen, rejected, image
PAIRS = [
    ("<image>\nWhat shape is in the picture?",
     "The picture shows a red circle. It sits in the middle of a light grey background.",
     "It is a blue square.",
     "red_circle.png"),
    ("What colour is the square?",
     "The square is blue. It fills most of a pale yellow background. Nothing else is drawn.",
     "The square is green. It is very small.",
     "blue_square.jpg"),
    ("<image>\nDescribe the image in a few words.",
     "A green triangle points upward. The background is almost black.",
     "A white triangle on a white background.",
     "green_triangle.png"),
    ("How many stripes can you see?",
     "There are three yellow stripes. They run across a dark purple background.",
     "There is one stripe.",
     "yellow_stripes.jpg"),
    ("<image>\nIs there a cross in this image?",
     "Yes, there is a purple cross. Its arms reach almost to the edges of the light blue "
     "background.",
     "No, the image is empty.",
     "purple_cross.png"),
    ("<image>\nWhat is drawn on the dark background?",
     "An orange ring is drawn on a dark teal background. The ring is hollow. Its centre "
     "shows the background colour.",
     "A solid orange disc. It is drawn on white.",
     "orange_ring.jpg"),
    ("Is the circle filled or hollow?",
     "The circle is filled with solid red. Its edge is smooth \u2014 the outline has no gaps.",
     "It is hollow.",
     "red_circle.png"),
    ("<image>\nWhich corner is the triangle's tip closest to?",
     "The tip points to the top edge, halfway across. It is not near any corner. The base "
     "lies along the bottom.",
     "The bottom left corner. It is clearly there.",
     "green_triangle.png"),
]


def draw(size, background, shape, colour):
    w, h = size
    im = Image.new("RGB", size, background)
    d = ImageDraw.Draw(im)
    m = min(w, h)
    cx, cy = w // 2, h // 2
    if shape == "circle":
        r = m * 2 // 5
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        r = m * 3 // 8
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, 2), (3, h - 3), (w - 4, h - 3)], fill=colour)
    elif shape == "stripes":
        for i in range(3):
            y = h * (2 * i + 1) // 7
            d.rectangle([0, y, w - 1, y + h // 7 - 1], fill=colour)
    elif shape == "cross":
        t = max(2, w // 6)
        d.rectangle([cx - t, 2, cx + t, h - 3], fill=colour)
        d.rectangle([2, cy - t, w - 3, cy + t], fill=colour)
    elif shape == "ring":
        r = m * 2 // 5
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=3)
    return im


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(out):
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "bad"), exist_ok=True)
    names = set()
    for name, size, background, shape, colour in IMAGES:
        im = draw(size, background, shape, colour)
        path = os.path.join(out, "images", name)
        if name.endswith(".jpg"):
            im.save(path, quality=90)
        else:
            im.save(path, optimize=False)
        names.add(name)
    for _, _, _, image in PAIRS:
        assert image in names, image

    write_jsonl(os.path.join(out, "pairs.jsonl"),
                [{"prompt": p, "chosen": c, "rejected": r, "image": i} for p, c, r, i in PAIRS])
    # SeVa's make_pair_*.py: item['chosen'], ['reject'], ['question'], ['image_id'];
    # json.dump(message, open(..., "w")).
    seva = [{"chosen": c, "reject": r, "question": p, "image_id": i} for p, c, r, i in PAIRS]
    with open(os.path.join(out, "seva.json"), "w") as f:
        json.dump(seva, f)

    bad = os.path.join(out, "bad")
    p, c, r, i = PAIRS[0]
    write_jsonl(os.path.join(bad, "missing_image.jsonl"),
                [{"prompt": p, "chosen": c, "rejected": r, "image": i},
                 {"prompt": p, "chosen": c, "rejected": r, "image": "no_such_image.png"}])
    write_jsonl(os.path.join(bad, "image_not_string.jsonl"),
                [{"prompt": p, "chosen": c, "rejected": r, "image": i},
                 {"prompt": p, "chosen": c, "rejected": r, "image": 7}])
    entries = [dict(e) for e in seva[:3]]
    del entries[1]["reject"]
    with open(os.path.join(bad, "seva_bad_entry.json"), "w") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")
    with open(os.path.join(bad, "seva_not_list.json"), "w") as f:
        json.dump({"pairs": seva[:2]}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_llava_data.py <out dir>")
    main(sys.argv[1])
