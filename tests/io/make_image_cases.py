#!/usr/bin/env python3
"""Writes io_test's reference data: images made with Pillow and what Pillow/torchvision make of them.

For each image case NAME (a .png or .jpg with gradients, shapes and noise, fixed seed) it writes
  NAME.decoded.npy            uint8 HxWx3, np.asarray(Image.open(f).convert('RGB'))
  NAME.resize.HxW.npy         uint8 HxWx3, that RGB image resized with Image.BICUBIC to HxW
                              (torchvision's Resize(256) size, plus for some cases extra sizes
                              that skip one axis or enlarge)
  NAME.tensor.npy             float32 3x224x224, Resize(256, BICUBIC) + CenterCrop(224) +
                              ToTensor() + Normalize(ImageNet mean, std)
and in npy/ a few arrays written by numpy itself (see write_npy_cases).

Usage: make_image_cases.py OUT_DIR
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw
import torchvision.transforms as T

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def synthetic_rgb(w, h, seed):
    """A test card: diagonal gradients, hard-edged shapes (ringing for bicubic) and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1),
                     127.5 + 127.5 * np.sin((x + 2 * y) / 9.0)], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(4, w // 2 + 5)), y0 + int(rng.integers(4, h // 2 + 5))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            d.rectangle([x0, y0, x1, y1], fill=color)
        else:
            d.ellipse([x0, y0, x1, y1], outline=color, width=3)
    d.line([0, 0, w - 1, h - 1], fill=(255, 255, 255), width=1)
    noisy = np.asarray(img).astype(np.int16) + rng.integers(-20, 21, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def make_cases():
    """(file name, PIL image to save, save options, extra resize sizes as (h, w))."""
    rgba = synthetic_rgb(257, 300, 3).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(257, dtype=np.uint8), (300, 1)), "L"))
    gray16 = (np.asarray(synthetic_rgb(160, 120, 7).convert("L")).astype(np.uint16) * 2 +
              np.arange(160, dtype=np.uint16))  # straddles 255: Pillow clips it when converting
    return [
        ("landscape_rgb.png", synthetic_rgb(500, 375, 1), {}, [(375, 300), (200, 500), (80, 90)]),
        ("portrait_q90.jpg", synthetic_rgb(375, 500, 2), {"quality": 90}, []),
        ("odd_rgba.png", rgba, {}, []),
        ("square_gray.png", synthetic_rgb(224, 224, 4).convert("L"), {}, [(224, 600)]),
        ("small_palette.png", synthetic_rgb(100, 80, 5).convert("P", palette=Image.ADAPTIVE), {},
         []),
        ("gray_q90.jpg", synthetic_rgb(300, 257, 6).convert("L"), {"quality": 90}, []),
        ("gray16.png", Image.fromarray(gray16), {}, []),
        ("cmyk_q90.jpg", synthetic_rgb(320, 240, 8).convert("CMYK"), {"quality": 90}, []),
        ("progressive_444.jpg", synthetic_rgb(333, 250, 9), {"quality": 90, "progressive": True,
                                                             "subsampling": 0}, []),
        ("bilevel.png", synthetic_rgb(90, 70, 10).convert("1"), {}, []),
        ("gray_alpha.png", synthetic_rgb(400, 298, 11).convert("LA"), {}, []),  # crop at 59.5 -> 60
        ("exact_256.png", synthetic_rgb(256, 320, 12), {}, []),
    ]


def write_image_cases(out):
    pipeline = T.Compose([
        T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(224),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
    ])
    for name, img, options, extra_sizes in make_cases():
        path = os.path.join(out, name)
        img.save(path, **options)
        rgb = Image.open(path).convert("RGB")
        np.save(f"{path}.decoded.npy", np.asarray(rgb))
        resized = T.Resize(256, interpolation=T.InterpolationMode.BICUBIC)(rgb)
        for w, h in [resized.size] + [(w, h) for h, w in extra_sizes]:
            np.save(f"{path}.resize.{h}x{w}.npy", np.asarray(rgb.resize((w, h), Image.BICUBIC)))
        np.save(f"{path}.tensor.npy", pipeline(rgb).numpy())


def write_npy_cases(out):
    """Arrays written by numpy itself; io_test knows their values (arange-based)."""
    d = os.path.join(out, "npy")
    os.makedirs(d, exist_ok=True)
    np.save(f"{d}/f32_4d.npy", (np.arange(120, dtype=np.float32) / 8 - 3).reshape(2, 3, 4, 5))
    np.save(f"{d}/i64_1d.npy", np.array([0, -1, 2**40, -(2**62), 7, 123456789, 5], np.int64))
    np.save(f"{d}/f64_2d.npy", (np.arange(12, dtype=np.float64) * 0.1).reshape(3, 4))
    np.save(f"{d}/scalar_0d.npy", np.array(3.5, dtype=np.float32))
    np.save(f"{d}/empty_2d.npy", np.zeros((0, 3), np.float32))
    for code in ["f2", "i1", "i2", "i4", "u1", "u2", "u4", "u8"]:
        np.save(f"{d}/{code}_2x3.npy", np.arange(6).astype(code).reshape(2, 3))
    np.save(f"{d}/b1_2x3.npy", (np.arange(6) % 2 == 1).reshape(2, 3))
    np.save(f"{d}/fortran.npy", np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)))
    np.save(f"{d}/bigendian.npy", np.arange(6, dtype=">f4"))
    np.save(f"{d}/complex.npy", np.arange(4, dtype=np.complex64))
    for major in (2, 3):
        with open(f"{d}/v{major}.npy", "wb") as f:
            np.lib.format.write_array(f, np.arange(6, dtype=np.int32).reshape(3, 2), (major, 0))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_image_cases(out)
    write_npy_cases(out)


if __name__ == "__main__":
    main()
