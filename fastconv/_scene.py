"""The demo's test image: a synthetic 512x512 grey-level scene made from simple shapes,
so the package ships a picture it may ship. ``make_scene()`` is deterministic;
fastconv/data/scene.npz holds its output (regenerate with ``python -m fastconv._scene``)."""
from __future__ import annotations

import os

import numpy as np

PATH = os.path.join(os.path.dirname(__file__), "data", "scene.npz")


def make_scene(size: int = 512) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = 0.25 + 0.2 * xx + 0.1 * yy                                  # soft gradient
    img[(xx - 0.3) ** 2 + (yy - 0.35) ** 2 < 0.15 ** 2] = 0.9          # bright disc
    img[(xx > 0.55) & (xx < 0.85) & (yy > 0.15) & (yy < 0.4)] = 0.1    # dark rectangle
    ring = np.hypot(xx - 0.7, yy - 0.72)
    img[(ring > 0.1) & (ring < 0.14)] = 0.75                          # ring
    stripes = (xx > 0.1) & (xx < 0.45) & (yy > 0.65) & (yy < 0.9)
    img[stripes] = 0.5 + 0.35 * np.sign(np.sin(2 * np.pi * 12 * xx[stripes]))
    tri = (yy > 0.45) & (yy < 0.6) & (np.abs(xx - 0.5) < (yy - 0.45) * 0.8)
    img[tri] = 0.95                                                   # triangle
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def load_scene(noise: float = 0.03) -> np.ndarray:
    """The shipped scene as float32 in [0, 1], with deterministic sensor noise added."""
    try:
        with np.load(PATH) as data:
            img = data["scene"]
    except OSError:
        img = make_scene()
    img = img.astype(np.float32) / 255
    rng = np.random.default_rng(2026)
    return (img + noise * rng.standard_normal(img.shape)).astype(np.float32)


if __name__ == "__main__":
    np.savez_compressed(PATH, scene=make_scene())
    print(PATH)
