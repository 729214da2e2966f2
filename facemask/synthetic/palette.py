"""Colour palettes (RGB) of skin, hair, eyes and masks, and random colour helpers."""

from __future__ import annotations

import numpy as np

_SKIN = np.array(
    [
        (255, 226, 200),
        (243, 204, 170),
        (230, 180, 140),
        (205, 150, 105),
        (172, 115, 75),
        (135, 88, 58),
        (100, 66, 44),
        (72, 48, 34),
    ],
    np.float32,
)


_HAIR = [
    (22, 18, 18),
    (30, 24, 22),
    (58, 38, 26),
    (96, 62, 38),
    (128, 70, 36),
    (200, 168, 110),
    (222, 196, 140),
    (150, 150, 150),
    (215, 215, 210),
    (90, 40, 110),
    (40, 70, 140),
]


_HAIR_P = np.array([14, 12, 12, 10, 5, 6, 4, 4, 2, 1, 1], np.float64)
_HAIR_P /= _HAIR_P.sum()


_IRIS = [(60, 38, 24), (90, 60, 35), (40, 30, 25), (70, 110, 150), (80, 120, 80), (110, 90, 60)]


_SURGICAL = [
    (165, 205, 235),
    (185, 220, 242),
    (140, 190, 228),
    (236, 239, 242),
    (246, 246, 246),
    (176, 222, 200),
    (150, 205, 190),
    (236, 200, 214),
]


_N95 = [(242, 242, 238), (232, 232, 228), (212, 212, 210), (240, 234, 214), (196, 198, 202), (225, 228, 235)]


_FASHION = [
    (22, 22, 26),
    (34, 34, 40),
    (18, 18, 20),
    (232, 40, 140),
    (205, 30, 45),
    (248, 208, 40),
    (125, 50, 175),
    (0, 150, 150),
    (210, 168, 60),
    (250, 120, 30),
    (40, 90, 220),
    (245, 245, 245),
]


_VALVE = [(120, 120, 125), (40, 40, 44), (235, 120, 40), (60, 110, 190), (245, 245, 245)]


def _col(c):
    """cv2 wants a plain tuple of Python numbers."""
    return tuple(float(x) for x in c)


def _hsv_rgb(h, s, v):
    """h, s, v in [0, 1] -> RGB float array 0..255."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([r, g, b], np.float32) * 255.0


def _rand_color(rng, smin=0.2, smax=0.9, vmin=0.25, vmax=0.95):
    return _hsv_rgb(rng.random(), rng.uniform(smin, smax), rng.uniform(vmin, vmax))


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]
