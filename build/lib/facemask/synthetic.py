"""Deterministic synthetic face-mask dataset generator.

Real face-mask photographs cannot be shipped with the project, so this module
draws its own: procedurally rendered people (skin tones from light to dark,
hair styles, eyes, brows, nose, ears, neck and shoulders, head roll and some
yaw) on cluttered backgrounds, some of them wearing a face mask of one of four
kinds (``surgical``, ``n95``, ``cloth``, ``fashion``).

The output uses the Matterport "balloon" layout::

    out_dir/train/*.jpg
    out_dir/train/via_region_data.json      # VIA 2.x export
    out_dir/val/*.jpg
    out_dir/val/via_region_data.json

Only the visible face coverings are annotated (one polygon region each, with
``region_attributes.mask_type``).  Unmasked faces are left unannotated on
purpose: they are the negatives the model has to learn to ignore.

Every annotation polygon is the exact outline the mask was filled with
(``skimage.draw.polygon`` of the annotated vertices gives back the drawn mask
pixels), and heads never overlap (placement rejection), so annotations always
describe the visible mask.

Everything is deterministic: image ``index`` of split ``split`` is drawn from
``numpy.random.default_rng([seed, split_id, index])`` alone, so the same seed
gives byte-identical JPEGs and JSON, and images do not depend on each other
(generating 12 images yields the first 12 of a 200-image run).

Usage::

    python -m facemask.synthetic --out datasets/facemask --train 200 --val 50
    python facemask/synthetic.py --out datasets/facemask --size 384x512 --overwrite
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time

import cv2

from mrcnn.runs import write_text
import numpy as np
from PIL import Image
from skimage.draw import polygon as _sk_polygon
from skimage.measure import approximate_polygon

__all__ = [
    "MASK_TYPES",
    "JPEG_QUALITY",
    "ANNOTATION_FILE",
    "draw_sample",
    "render_item",
    "image_sizes",
    "is_negative_index",
    "make_dataset",
    "summarize_dataset",
    "main",
]

MASK_TYPES = ("surgical", "n95", "cloth", "fashion")
JPEG_QUALITY = 92
ANNOTATION_FILE = "via_region_data.json"
SPLITS = ("train", "val")
_SPLIT_IDS = {"train": 0, "val": 1}

MIN_POLY_POINTS = 12
MAX_POLY_POINTS = 40

# --------------------------------------------------------------------------
# Palettes (RGB)
# --------------------------------------------------------------------------
_SKIN = np.array(
    [
        (255, 226, 200), (243, 204, 170), (230, 180, 140), (205, 150, 105),
        (172, 115, 75), (135, 88, 58), (100, 66, 44), (72, 48, 34),
    ],
    np.float32,
)
_HAIR = [
    (22, 18, 18), (30, 24, 22), (58, 38, 26), (96, 62, 38), (128, 70, 36),
    (200, 168, 110), (222, 196, 140), (150, 150, 150), (215, 215, 210),
    (90, 40, 110), (40, 70, 140),
]
_HAIR_P = np.array([14, 12, 12, 10, 5, 6, 4, 4, 2, 1, 1], np.float64)
_HAIR_P /= _HAIR_P.sum()
_IRIS = [(60, 38, 24), (90, 60, 35), (40, 30, 25), (70, 110, 150), (80, 120, 80), (110, 90, 60)]
_SURGICAL = [
    (165, 205, 235), (185, 220, 242), (140, 190, 228), (236, 239, 242),
    (246, 246, 246), (176, 222, 200), (150, 205, 190), (236, 200, 214),
]
_N95 = [(242, 242, 238), (232, 232, 228), (212, 212, 210), (240, 234, 214), (196, 198, 202), (225, 228, 235)]
_FASHION = [
    (22, 22, 26), (34, 34, 40), (18, 18, 20), (232, 40, 140), (205, 30, 45),
    (248, 208, 40), (125, 50, 175), (0, 150, 150), (210, 168, 60), (250, 120, 30),
    (40, 90, 220), (245, 245, 245),
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


# --------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------
class _Frame:
    """Face-local coordinates -> image coordinates.

    Local ``u`` runs across the face (-1 left edge, +1 right edge of the oval)
    and ``v`` down the face (-1 top of forehead, +1 chin).  ``yaw`` shifts the
    centre line of the face sideways (features, nose peak of the mask) while
    keeping the oval outline fixed, which reads as a head turned slightly.
    """

    def __init__(self, cx, cy, a, b, theta, yaw=0.0):
        self.cx, self.cy, self.a, self.b = float(cx), float(cy), float(a), float(b)
        self.theta, self.yaw = float(theta), float(yaw)
        self.c, self.s = math.cos(self.theta), math.sin(self.theta)

    def warp(self, u):
        u = np.asarray(u, np.float64)
        return u + self.yaw * 0.35 * (1.0 - np.minimum(u * u, 1.0))

    def to_img(self, u, v, warp=True):
        u = np.asarray(u, np.float64)
        v = np.asarray(v, np.float64)
        if warp:
            u = self.warp(u)
        px, py = u * self.a, v * self.b
        return self.cx + px * self.c - py * self.s, self.cy + px * self.s + py * self.c

    def to_local(self, x, y, unwarp=True):
        dx, dy = x - self.cx, y - self.cy
        u = (dx * self.c + dy * self.s) / self.a
        v = (-dx * self.s + dy * self.c) / self.b
        if unwarp:
            u = u - self.yaw * 0.35 * (1.0 - np.minimum(u * u, 1.0))
        return u, v

    def bbox(self, u0, u1, v0, v1):
        xs, ys = self.to_img([u0, u1, u1, u0], [v0, v0, v1, v1], warp=False)
        return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _pts(xs, ys, ox=0.0, oy=0.0):
    return np.round(np.stack([np.asarray(xs) - ox, np.asarray(ys) - oy], -1) * 16.0).astype(np.int32)


def _fill(img, xs, ys, color):
    cv2.fillPoly(img, [_pts(xs, ys)], _col(color), lineType=cv2.LINE_AA, shift=4)


def _line(img, xs, ys, color, thickness, closed=False):
    cv2.polylines(img, [_pts(xs, ys)], closed, _col(color), max(1, int(round(thickness))),
                  lineType=cv2.LINE_AA, shift=4)


def _ell(fr, u0, v0, ru, rv, n=36, warp=True, t0=0.0, t1=2 * math.pi):
    t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * math.pi - 1e-9)
    return fr.to_img(u0 + ru * np.cos(t), v0 + rv * np.sin(t), warp=warp)


def _face_outline(n=80):
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    s = np.sin(t)
    u = np.cos(t) * (1.0 - 0.18 * np.maximum(s, 0.0) ** 2)
    return u, s


def _patch_box(xs, ys, h, w, pad=2):
    x0 = max(0, int(math.floor(np.min(xs))) - pad)
    y0 = max(0, int(math.floor(np.min(ys))) - pad)
    x1 = min(w, int(math.ceil(np.max(xs))) + pad + 1)
    y1 = min(h, int(math.ceil(np.max(ys))) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _grid(fr, x0, y0, x1, y1):
    X, Y = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    return fr.to_local(X, Y)


def _composite(img, x0, y0, alpha, color):
    h, w = alpha.shape
    region = img[y0:y0 + h, x0:x0 + w]
    a = alpha[..., None].astype(np.float32)
    out = region.astype(np.float32) * (1.0 - a) + np.clip(color, 0, 255) * a
    region[...] = (out + 0.5).astype(np.uint8)


def _clip_polygon(xs, ys, xmax, ymax):
    """Sutherland-Hodgman clip of a closed polygon to [0, xmax] x [0, ymax]."""
    pts = list(zip(np.asarray(xs, float).tolist(), np.asarray(ys, float).tolist()))
    for axis, bound, keep_le in ((0, 0.0, False), (0, xmax, True), (1, 0.0, False), (1, ymax, True)):
        if not pts:
            break
        inside = (lambda p: p[axis] <= bound) if keep_le else (lambda p: p[axis] >= bound)
        out = []
        prev = pts[-1]
        for cur in pts:
            cin, pin = inside(cur), inside(prev)
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                q = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                q[axis] = bound
                out.append(tuple(q))
            if cin:
                out.append(cur)
            prev = cur
        pts = out
    if not pts:
        return np.zeros(0), np.zeros(0)
    arr = np.array(pts, np.float64)
    return arr[:, 0], arr[:, 1]


def _area(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(xs) < 3:
        return 0.0
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def _simplify(xs, ys):
    """Dense closed outline -> 12..40 integer vertices (Douglas-Peucker)."""
    coords = np.stack([xs, ys], -1)
    closed = np.vstack([coords, coords[:1]])
    tol = 0.3
    while True:
        approx = approximate_polygon(closed, tolerance=tol)[:-1]
        if len(approx) <= MAX_POLY_POINTS:
            break
        tol *= 1.35
    pts = np.round(approx).astype(np.int64)
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)  # drop repeated vertices
    pts = [tuple(p) for p in pts[keep]] if keep.any() else [tuple(pts[0])]
    while len(pts) < MIN_POLY_POINTS and len(pts) >= 2:  # densify the longest edge
        n = len(pts)
        lens = [abs(pts[i][0] - pts[(i + 1) % n][0]) + abs(pts[i][1] - pts[(i + 1) % n][1]) for i in range(n)]
        i = int(np.argmax(lens))
        if lens[i] < 2:
            break
        p, q = pts[i], pts[(i + 1) % n]
        pts.insert(i + 1, (int(round((p[0] + q[0]) / 2.0)), int(round((p[1] + q[1]) / 2.0))))
    arr = np.array(pts, np.int64)
    return arr[:, 0], arr[:, 1]


# --------------------------------------------------------------------------
# Mask shapes (face-local outlines)
# --------------------------------------------------------------------------
def _mask_params(rng, mtype):
    p = {"type": mtype}
    if mtype == "surgical":
        p.update(vt=rng.uniform(0.06, 0.14), vb=rng.uniform(0.98, 1.06), s=rng.uniform(1.0, 1.06),
                 pw=rng.uniform(0.5, 0.65), k=rng.uniform(0.1, 0.2), bump=rng.uniform(0.03, 0.08),
                 color=np.array(_pick(rng, _SURGICAL), np.float32), pleats=int(rng.integers(3, 5)))
    elif mtype == "cloth":
        p.update(vt=rng.uniform(0.05, 0.12), vb=rng.uniform(1.04, 1.14), s=rng.uniform(1.05, 1.12),
                 pw=rng.uniform(0.75, 0.9), k=rng.uniform(0.2, 0.3), bump=rng.uniform(0.06, 0.12))
    elif mtype == "fashion":
        p.update(vt=rng.uniform(0.08, 0.16), vb=rng.uniform(0.95, 1.02), s=rng.uniform(0.98, 1.04),
                 pw=rng.uniform(1.0, 1.1), k=rng.uniform(0.3, 0.4), bump=rng.uniform(0.1, 0.17),
                 color=np.array(_pick(rng, _FASHION), np.float32))
    else:  # n95
        p.update(vt=rng.uniform(0.0, 0.08), vb=rng.uniform(1.0, 1.08), hw=rng.uniform(0.84, 0.96),
                 color=np.array(_pick(rng, _N95), np.float32))
    return p


def _mask_outline(p, n=96):
    """Dense closed outline (u, v) of a mask in unwarped face-local coordinates."""
    if p["type"] == "n95":
        vc, hv = 0.5 * (p["vt"] + p["vb"]), 0.5 * (p["vb"] - p["vt"])
        t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        c, s = np.cos(t), np.sin(t)
        q = 1.0 + 0.9 * np.maximum(-s, 0.0) ** 2 + 0.25 * np.maximum(s, 0.0) ** 2
        u = p["hw"] * np.sign(c) * np.abs(c) ** q
        return u, vc + hv * s
    vt, vb, s, pw, k, bump = p["vt"], p["vb"], p["s"], p["pw"], p["k"], p["bump"]
    m = n * 2 // 3
    t = np.linspace(0.0, math.pi, m)  # right-top corner, down round the chin, left-top corner
    c, sn = np.cos(t), np.sin(t)
    depth = np.abs(sn) ** pw
    u_low = s * np.sign(c) * np.abs(c) ** pw * (1.0 - k * depth ** 2)
    v_low = vt + (vb - vt) * depth
    # top edge, left to right: runs just below the eyes (v ~ 0), peaked over the nose bridge
    ut = np.linspace(-s, s, n - m + 2)[1:-1]
    v_top = vt + 0.05 * ((ut / s) ** 2 - 1.0) - bump * np.exp(-(ut / 0.22) ** 2)
    return np.concatenate([u_low, ut]), np.concatenate([v_low, v_top])


def _mask_texture(rng, p, fr, U, V, inside):
    """Colour (HxWx3 float) of a mask over a patch with local coords U, V."""
    a, b = fr.a, fr.b
    h, w = U.shape
    mtype = p["type"]
    px = 1.0 / max(a, 1.0)  # one pixel in u units
    dist = cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    grain = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    if mtype == "surgical":
        base = p["color"]
        vt, vb = p["vt"], p["vb"]
        period = (vb - vt) * 0.62 / p["pleats"]
        f = ((V - vt - 0.2 * (vb - vt)) / period) % 1.0
        band = (V > vt + 0.16 * (vb - vt)) & (V < vb - 0.12)
        pleat = 0.95 + 0.09 * f - 0.16 * np.exp(-(f / 0.06) ** 2) - 0.08 * np.exp(-((1.0 - f) / 0.04) ** 2)
        shade = (1.05 - 0.2 * U ** 2) * np.where(band, pleat, 1.0)
        hem = max(1.0, 0.05 * a)
        shade = shade * np.where(dist <= hem, 0.91, 1.0)
        wire = (V < vt + 0.07) & (np.abs(U) < 0.32) & (dist > hem)
        shade = shade * np.where(wire, 1.05, 1.0)
        col = base[None, None] * shade[..., None] + 3.0 * grain[..., None]
    elif mtype == "n95":
        base = p["color"]
        vm = 0.5 * (p["vt"] + p["vb"])
        r2 = (U / 0.85) ** 2 + ((V - vm) / 0.55) ** 2
        shade = 1.08 - 0.3 * r2
        seam = np.abs(U) < max(1.2 * px, 0.015)
        shade = shade * np.where(seam & (V > p["vt"] + 0.02), 0.72, 1.0)
        shade = shade * np.where(dist <= max(1.0, 0.045 * a), 0.86, 1.0)
        col = base[None, None] * shade[..., None] + 5.0 * cv2.GaussianBlur(grain, (3, 3), 0)[..., None]
        if p.get("valve"):
            side, vcol = p["valve"]
            dx = (U - side * 0.45) * a
            dy = (V - vm - 0.12) * b
            rr = np.sqrt(dx * dx + dy * dy)
            R = 0.17 * a
            vcol = np.asarray(vcol, np.float32)
            ring = (rr < R) & (rr > 0.7 * R)
            inner = rr <= 0.7 * R
            col = np.where(ring[..., None], vcol * 0.8, col)
            col = np.where(inner[..., None], vcol * (1.1 - 0.3 * (rr / R))[..., None], col)
    elif mtype == "cloth":
        c1, c2 = p["c1"], p["c2"]
        Px, Py = U * a, V * b
        per = p["period"] * a
        pat = p["pattern"]
        if pat == "stripes":
            ph = Px * math.cos(p["angle"]) + Py * math.sin(p["angle"])
            mix = np.clip(np.sin(2 * math.pi * ph / per) * 3.0 + 0.5, 0.0, 1.0)
        elif pat == "dots":
            gx = (Px % per) - per / 2
            gy = ((Py + (np.floor(Px / per) % 2) * per / 2) % per) - per / 2
            mix = np.clip((0.28 * per - np.sqrt(gx * gx + gy * gy)) + 0.5, 0.0, 1.0)
        elif pat == "plaid":
            s1 = np.clip(np.sin(2 * math.pi * Px / per) * 2.0, 0.0, 1.0)
            s2 = np.clip(np.sin(2 * math.pi * Py / per) * 2.0, 0.0, 1.0)
            mix = 0.45 * s1 + 0.45 * s2
        else:  # heather solid
            mix = np.clip(0.15 + 0.1 * grain, 0.0, 1.0)
        col = c1[None, None] * (1.0 - mix[..., None]) + c2[None, None] * mix[..., None]
        shade = 1.06 - 0.25 * U ** 2
        if p["seam"]:
            shade = shade * np.where(np.abs(U) < max(1.0 * px, 0.012), 0.7, 1.0)
        shade = shade * np.where(dist <= max(1.0, 0.04 * a), 0.85, 1.0)
        col = col * shade[..., None] + 4.0 * grain[..., None]
    else:  # fashion
        base = p["color"]
        shade = 1.08 - 0.32 * U ** 2
        gloss = np.exp(-((U - p["gloss_u"]) / 0.13) ** 2) * np.exp(-((V - 0.45) / 0.45) ** 2)
        col = base[None, None] * shade[..., None] + (255.0 * 0.28 * gloss)[..., None] + 2.0 * grain[..., None]
    return col


def _finish_mask_params(rng, p):
    mtype = p["type"]
    if mtype == "n95":
        if rng.random() < 0.4:
            p["valve"] = (1.0 if rng.random() < 0.5 else -1.0, _pick(rng, _VALVE))
        p["strap"] = np.array(_pick(rng, [(240, 240, 240), (60, 110, 190), (230, 200, 60), (200, 60, 60)]), np.float32)
    elif mtype == "cloth":
        c1 = _rand_color(rng, 0.25, 0.9, 0.2, 0.9)
        c2 = _rand_color(rng, 0.0, 0.8, 0.3, 1.0)
        if np.abs(c1 - c2).sum() < 150:
            c2 = 255.0 - c1
        p.update(c1=c1, c2=c2, pattern=_pick(rng, ("stripes", "dots", "plaid", "plaid", "solid")),
                 period=rng.uniform(0.14, 0.32), angle=rng.uniform(0.0, math.pi), seam=rng.random() < 0.5)
    elif mtype == "fashion":
        p["gloss_u"] = rng.uniform(-0.5, 0.5)
    return p


# --------------------------------------------------------------------------
# Scene drawing
# --------------------------------------------------------------------------
def _background(rng, h, w):
    c0 = _rand_color(rng, 0.0, 0.6, 0.25, 0.95)
    c1 = _rand_color(rng, 0.0, 0.6, 0.15, 0.95)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx * math.cos(ang) + yy * math.sin(ang))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = (c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None])
    # low-frequency mottling
    lo = rng.normal(1.0, 0.08, (4, 5)).astype(np.float32)
    img *= cv2.resize(lo, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    n = int(rng.integers(6, 22))
    s = min(h, w)
    for _ in range(n):
        kind = rng.random()
        if rng.random() < 0.2:  # mask-like colours so colour alone is not enough
            col = np.array(_pick(rng, _SURGICAL + _N95 + _FASHION), np.float32)
        else:
            col = _rand_color(rng, 0.0, 0.9, 0.1, 1.0)
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        sz = s * math.exp(rng.uniform(math.log(0.04), math.log(0.6)))
        if kind < 0.35:
            x0, y0 = int(cx - sz / 2), int(cy - sz * rng.uniform(0.2, 1.0))
            x1, y1 = int(cx + sz / 2), int(cy + sz * rng.uniform(0.2, 1.0))
            thick = -1 if rng.random() < 0.75 else int(rng.integers(1, 5))
            cv2.rectangle(img, (x0, y0), (x1, y1), _col(col), thick, cv2.LINE_AA)
        elif kind < 0.6:
            cv2.ellipse(img, (int(cx), int(cy)), (max(1, int(sz / 2)), max(1, int(sz * rng.uniform(0.2, 0.6)))),
                        float(rng.uniform(0, 180)), 0, 360, _col(col), -1, cv2.LINE_AA)
        elif kind < 0.8:
            p0 = (int(cx), int(cy))
            p1 = (int(cx + rng.normal(0, sz)), int(cy + rng.normal(0, sz)))
            cv2.line(img, p0, p1, _col(col), int(rng.integers(1, max(2, s // 40))), cv2.LINE_AA)
        elif kind < 0.92:
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            r = sz * rng.uniform(0.3, 0.6, k)
            _fill(img, cx + r * np.cos(ang), cy + r * np.sin(ang), col)
        else:  # striped panel (curtain / poster)
            x0, y0 = int(cx - sz / 2), int(cy - sz / 2)
            col2 = _rand_color(rng)
            step = max(3, int(sz / rng.uniform(4, 12)))
            cv2.rectangle(img, (x0, y0), (x0 + int(sz), y0 + int(sz)), _col(col), -1)
            for xs in range(x0, x0 + int(sz), step * 2):
                cv2.rectangle(img, (xs, y0), (xs + step - 1, y0 + int(sz)), _col(col2), -1)
    if rng.random() < 0.6:  # depth of field
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 3.0))
    return img


def _draw_body(img, fr, skin, rng, look):
    """Back hair, shoulders, neck (phase 1: may be covered by any head)."""
    if look["hair_style"] == "long":
        hair = look["hair"]
        t = np.linspace(math.pi, 2 * math.pi, 24)
        end = look["hair_len"]
        uu = np.concatenate([1.25 * np.cos(t), [1.3, 1.15, 0.6, 0.0, -0.6, -1.15, -1.3]])
        vv = np.concatenate([-0.05 + 1.15 * np.sin(t), [end * 0.6, end, end + 0.08, end - 0.05, end + 0.08, end, end * 0.6]])
        _fill(img, *fr.to_img(uu, vv, warp=False), hair * 0.85)
    bf = _Frame(*fr.to_img(0.0, 1.55, warp=False), fr.a, fr.b, fr.theta * 0.3)
    shirt = look["shirt"]
    t = np.linspace(math.pi, 2 * math.pi, 30)
    uu = np.concatenate([2.3 * np.cos(t), [2.45, 2.9, -2.9, -2.45]])
    vv = np.concatenate([1.2 + 1.05 * np.sin(t), [2.6, 9.0, 9.0, 2.6]])
    _fill(img, *bf.to_img(uu, vv, warp=False), shirt)
    # neck
    neck = skin * 0.86
    uu = np.array([-0.4, 0.4, 0.44, 0.5, -0.5, -0.44])
    vv = np.array([0.5, 0.5, 1.35, 1.9, 1.9, 1.35])
    _fill(img, *fr.to_img(uu, vv, warp=False), neck)
    # neckline
    if look["neckline"] == "v":
        _fill(img, *bf.to_img([-0.5, 0.5, 0.0], [0.12, 0.12, 0.95], warp=False), neck)
    else:
        _fill(img, *_ell(bf, 0.0, 0.15, 0.55, 0.3, warp=False, t0=0.0, t1=math.pi, n=16), neck)
    if look["hair_style"] == "scarf":
        sc = look["scarf"]
        t = np.linspace(math.pi, 2 * math.pi, 24)
        uu = np.concatenate([1.28 * np.cos(t), [1.35, 1.6, 0.0, -1.6, -1.35]])
        vv = np.concatenate([-0.02 + 1.3 * np.sin(t), [0.7, 2.0, 2.3, 2.0, 0.7]])
        _fill(img, *fr.to_img(uu, vv, warp=False), sc)


def _draw_face(img, fr, skin, rng, look):
    h, w = img.shape[:2]
    a = fr.a
    hair = look["hair"]
    style = look["hair_style"]
    # hair cap behind the head (and ears)
    ears_first = style in ("long", "curly")
    if style != "scarf" and ears_first:
        _draw_ears(img, fr, skin)
    if style in ("short", "long", "bun", "curly"):
        _fill(img, *_ell(fr, 0.0, -0.18, 1.09, 1.0, warp=False, n=48), hair)
        if style == "bun":
            _fill(img, *_ell(fr, 0.0, -1.12, 0.36, 0.3, warp=False, n=24), hair)
        if style == "curly":
            for ang in np.linspace(math.pi * 0.95, math.pi * 2.05, 11):
                r = rng.uniform(0.24, 0.34)
                _fill(img, *_ell(fr, 1.05 * math.cos(ang), -0.2 + 1.0 * math.sin(ang), r, r, warp=False, n=16), hair)
    if style != "scarf" and not ears_first:
        _draw_ears(img, fr, skin)

    # face oval with shading
    uo, vo = _face_outline(80)
    xs, ys = fr.to_img(uo, vo, warp=False)
    box = _patch_box(xs, ys, h, w)
    if box is not None:
        x0, y0, x1, y1 = box
        alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(alpha, [_pts(xs, ys, x0, y0)], 255, lineType=cv2.LINE_AA, shift=4)
        U, V = _grid(fr, x0, y0, x1, y1)
        shade = 1.06 - 0.2 * (U ** 2 + 0.5 * (V + 0.1) ** 2) + look["light"] * U
        col = skin[None, None] * shade[..., None]
        _composite(img, x0, y0, alpha.astype(np.float32) / 255.0, col)

    # eyes and brows
    small = a < 11
    yaw = fr.yaw
    for side in (-1.0, 1.0):
        ue = side * 0.37
        squash = 1.0 - 0.35 * yaw * side
        if small:
            _fill(img, *_ell(fr, ue, -0.1, 0.11 * squash, 0.06, n=12), (35, 28, 25))
        else:
            _fill(img, *_ell(fr, ue, -0.1, 0.16 * squash, 0.07, n=24), (238, 234, 228))
            ix, iy = fr.to_img(ue + 0.02 * yaw, -0.1)
            r = 0.065 * a
            cv2.circle(img, (int(round(ix * 16)), int(round(iy * 16))), max(16, int(r * 16)),
                       _col(look["iris"]), -1, cv2.LINE_AA, 4)
            cv2.circle(img, (int(round(ix * 16)), int(round(iy * 16))), max(8, int(r * 7)),
                       (12.0, 10.0, 10.0), -1, cv2.LINE_AA, 4)
            _line(img, *_ell(fr, ue, -0.1, 0.16 * squash, 0.075, n=12, t0=math.pi, t1=2 * math.pi),
                  skin * 0.45, max(1.0, 0.025 * a))
        bu = np.linspace(-0.2, 0.2, 7) * squash
        bv = -0.33 - 0.05 * (1.0 - (bu / 0.2) ** 2) + look["brow_lift"]
        _line(img, *fr.to_img(ue + bu, bv), np.asarray(hair) * 0.8 + skin * 0.15, max(1.0, 0.055 * a))
    # nose
    _line(img, *fr.to_img([0.03, 0.07, 0.0, -0.07], [-0.05, 0.2, 0.26, 0.22]), skin * 0.72, max(1.0, 0.03 * a))
    for side in (-1.0, 1.0):
        _fill(img, *_ell(fr, side * 0.08, 0.25, 0.045, 0.025, n=10), skin * 0.5)
    # mouth (visible on unmasked faces)
    lip = skin * np.array([0.82, 0.55, 0.55], np.float32) + np.array([25, 0, 5], np.float32)
    mw = look["mouth_w"]
    if look["smile"]:
        t = np.linspace(0.15 * math.pi, 0.85 * math.pi, 12)
        _fill(img, *fr.to_img(mw * np.cos(t) * 1.05, 0.46 + 0.12 * np.sin(t)), (70, 25, 30))
        _line(img, *fr.to_img(mw * np.cos(t) * 1.05, 0.46 + 0.12 * np.sin(t)), lip, max(1.0, 0.035 * a))
    else:
        _fill(img, *_ell(fr, 0.0, 0.53, mw, 0.075, n=24), lip)
        _line(img, *fr.to_img(np.linspace(-mw, mw, 7), 0.53 + 0.015 * np.cos(np.linspace(-1.5, 1.5, 7))),
              lip * 0.55, max(1.0, 0.02 * a))
    if look["glasses"]:
        gc = look["glasses_col"]
        th = max(1.0, 0.035 * a)
        for side in (-1.0, 1.0):
            _line(img, *_ell(fr, side * 0.37, -0.1, 0.24, 0.16, n=24), gc, th, closed=True)
        _line(img, *fr.to_img([-0.13, 0.13], [-0.12, -0.12]), gc, th)
        for side in (-1.0, 1.0):
            _line(img, *fr.to_img([side * 0.61, side * 0.97], [-0.14, -0.1]), gc, th)


def _draw_ears(img, fr, skin):
    for side in (-1.0, 1.0):
        _fill(img, *_ell(fr, side * 0.97, 0.04, 0.16, 0.26, warp=False, n=20), skin * 0.93)
        _fill(img, *_ell(fr, side * 0.98, 0.05, 0.07, 0.15, warp=False, n=14), skin * 0.75)


def _draw_fringe(img, fr, rng, look):
    style = look["hair_style"]
    if style not in ("short", "long", "bun", "curly"):
        return
    hl = look["hairline"]
    t = np.linspace(math.pi * 1.06, math.pi * 1.94, 30)
    uu_top = 1.06 * np.cos(t)
    vv_top = -0.16 + 1.0 * np.sin(t)
    ub = np.linspace(uu_top[-1], uu_top[0], 30)
    vb = hl + 0.35 * np.abs(ub) ** 4 + look["part"] * ub + 0.03 * np.sin(ub * 14.0 + look["wave"])
    vb = np.minimum(vb, -0.3)
    _fill(img, *fr.to_img(np.concatenate([uu_top, ub]), np.concatenate([vv_top, vb]), warp=False), look["hair"])


def _draw_loops(img, fr, p, mask_color):
    a = fr.a
    th = max(1.0, 0.03 * a)
    if p["type"] == "n95":
        for side in (-1.0, 1.0):
            for v0, v1 in ((p["vt"] + 0.15, -0.45), (p["vb"] - 0.25, 0.95)):
                u0 = side * p["hw"] * 0.9
                _line(img, *fr.to_img([u0, side * 1.02], [v0, v1], warp=False), p["strap"], th * 1.2)
        return
    s, vt, vb, k = p["s"], p["vt"], p["vb"], p["k"]
    col = mask_color
    for side in (-1.0, 1.0):
        t = np.linspace(0, 1, 10)
        # quadratic curve from the top corner round the ear to the lower corner
        pu = np.array([side * s * 0.98, side * 1.12, side * s * (1 - k) * 0.95])
        pv = np.array([vt + 0.03, 0.1, vb - 0.25])
        uu = (1 - t) ** 2 * pu[0] + 2 * (1 - t) * t * pu[1] + t ** 2 * pu[2]
        vv = (1 - t) ** 2 * pv[0] + 2 * (1 - t) * t * pv[1] + t ** 2 * pv[2]
        _line(img, *fr.to_img(uu, vv, warp=False), col, th)


def _overlap(p, q, margin):
    return p[0] < q[2] + margin and q[0] < p[2] + margin and p[1] < q[3] + margin and q[1] < p[3] + margin


def _body_box(fr):
    """Rough image-space box of the torso (below the chin, to the image bottom)."""
    x, y = fr.to_img(0.0, 0.95, warp=False)
    return float(x) - 2.7 * fr.a, float(y), float(x) + 2.7 * fr.a, 1e9


def _random_look(rng):
    tone = rng.uniform(0, len(_SKIN) - 1)
    i = int(tone)
    f = tone - i
    skin = _SKIN[i] * (1 - f) + _SKIN[min(i + 1, len(_SKIN) - 1)] * f
    skin = np.clip(skin * rng.uniform(0.94, 1.04, 3), 0, 255).astype(np.float32)
    styles = ("short", "short", "long", "long", "bun", "curly", "bald", "scarf")
    style = _pick(rng, styles)
    hair = np.array(_HAIR[int(rng.choice(len(_HAIR), p=_HAIR_P))], np.float32) * rng.uniform(0.85, 1.1)
    if rng.random() < 0.25:
        shirt = np.array(_pick(rng, _SURGICAL + _N95 + _FASHION), np.float32)
    else:
        shirt = _rand_color(rng, 0.0, 0.9, 0.15, 0.95)
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "hair_style": style,
        "hair_len": rng.uniform(1.2, 2.2),
        "hairline": rng.uniform(-0.66, -0.45),
        "part": rng.uniform(-0.08, 0.08),
        "wave": rng.uniform(0, 6.28),
        "scarf": _rand_color(rng, 0.1, 0.8, 0.2, 0.9),
        "shirt": shirt,
        "neckline": "v" if rng.random() < 0.4 else "round",
        "light": rng.uniform(-0.09, 0.09),
        "iris": np.array(_pick(rng, _IRIS), np.float32),
        "brow_lift": rng.uniform(-0.03, 0.03),
        "mouth_w": rng.uniform(0.2, 0.3),
        "smile": rng.random() < 0.35,
        "glasses": rng.random() < 0.12,
        "glasses_col": _pick(rng, [(20, 20, 20), (90, 60, 30), (160, 160, 170), (150, 30, 40)]),
    }


# --------------------------------------------------------------------------
# Public core
# --------------------------------------------------------------------------
def draw_sample(rng, height, width, *, max_faces=4, negative=None, info=None):
    """Draw one synthetic image.

    Args:
        rng: ``numpy.random.Generator``; the only source of randomness.
        height, width: image size in pixels.
        max_faces: at most this many people (>= 1).
        negative: True -> nobody wears a mask; False -> at least one mask;
            None -> decided by ``rng`` (15 % negatives).
        info: optional dict, filled with ``faces`` / ``unmasked_faces`` /
            ``scene`` counts for statistics.

    Returns:
        ``(image, masks)``: ``image`` is HxWx3 uint8 RGB; ``masks`` a list of
        ``(mask_type, mask, xs, ys)`` with ``mask`` the HxW bool pixels the
        mask was painted on and ``xs``/``ys`` Python int lists (12..40
        vertices, inside the image) whose ``skimage.draw.polygon`` raster is
        exactly ``mask``.
    """
    h, w = int(height), int(width)
    max_faces = max(1, int(max_faces))
    if negative is None:
        negative = bool(rng.random() < 0.15)
    img = _background(rng, h, w)

    # ---- scene layout ----------------------------------------------------
    r = rng.random()
    if r < 0.22:
        scene, n_faces = "closeup", 1
    elif r < 0.6 or max_faces == 1:
        scene, n_faces = "medium", int(rng.integers(1, min(3, max_faces) + 1))
    else:
        scene, n_faces = "crowd", int(rng.integers(min(2, max_faces), max_faces + 1))
    if negative:
        masked = [False] * n_faces
    else:
        masked = [bool(rng.random() < 0.78) for _ in range(n_faces)]
        if not any(masked):
            masked[int(rng.integers(n_faces))] = True

    faces = []  # (frame, look, mask params | None)
    boxes = []
    for fi in range(n_faces):
        mtype = _pick(rng, MASK_TYPES) if masked[fi] else None
        mp = _mask_params(rng, mtype) if mtype else None
        look = _random_look(rng)
        if mtype:
            _finish_mask_params(rng, mp)
        placed = None
        for _attempt in range(25):
            if scene == "closeup":
                fh = rng.uniform(0.6, 0.9) * h
            elif scene == "medium":
                fh = rng.uniform(0.2, 0.42) * min(h, 1.3 * w)
            else:
                lo = max(30.0, 0.09 * min(h, w))  # crowd faces: ~30-40 px tall
                hi = max(lo + 12.0, 0.22 * min(h, w))
                fh = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            b = fh / 2.0
            yaw = rng.uniform(-0.35, 0.35)
            a = b * rng.uniform(0.7, 0.8) * (1.0 - 0.12 * abs(yaw))
            theta = math.radians(float(np.clip(rng.normal(0, 12), -30, 30)))
            if scene == "closeup":
                cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.38, 0.62) * h
            else:
                if w - 2.4 * a <= 0 or h - 2.4 * b <= 0:
                    continue
                cx = rng.uniform(1.2 * a, w - 1.2 * a)
                cy = rng.uniform(1.35 * b, max(1.35 * b + 1, h - 1.05 * b))
            fr = _Frame(cx, cy, a, b, theta, yaw)
            box = fr.bbox(-1.45, 1.45, -1.6, 1.22)
            if any(_overlap(box, q, 2) for q, _ in boxes):
                continue
            # A nearer (bigger) person's torso must not run behind a farther person's head.
            body = _body_box(fr)
            if any((qb > b and _overlap(box, qbody, 0)) or (qb < b and _overlap(q, body, 0))
                   for q, (qb, qbody) in boxes):
                continue
            if mp is not None:
                uu, vv = _mask_outline(mp)
                xs, ys = fr.to_img(uu, vv)
                full = _area(xs, ys)
                cx_, cy_ = _clip_polygon(xs, ys, w - 1, h - 1)
                need = 0.6 if scene == "closeup" else 0.75
                if full <= 0 or _area(cx_, cy_) < need * full:
                    continue
            placed = fr
            break
        if placed is None:
            continue
        boxes.append((placed.bbox(-1.45, 1.45, -1.6, 1.22), (placed.b, _body_box(placed))))
        faces.append((placed, look, mp))

    # far (small) people first, so bodies of near people overlap them
    order = sorted(range(len(faces)), key=lambda i: faces[i][0].b)
    for i in order:
        fr, look, _ = faces[i]
        _draw_body(img, fr, look["skin"], rng, look)

    results = []
    n_unmasked = 0
    for i in order:
        fr, look, mp = faces[i]
        _draw_face(img, fr, look["skin"], rng, look)
        if mp is None:
            n_unmasked += 1
            _draw_fringe(img, fr, rng, look)
            continue
        uu, vv = _mask_outline(mp)
        xs, ys = fr.to_img(uu, vv)
        xs, ys = _clip_polygon(xs, ys, w - 1, h - 1)
        if len(xs) < 3:
            n_unmasked += 1
            _draw_fringe(img, fr, rng, look)
            continue
        pxs, pys = _simplify(xs, ys)
        mask = np.zeros((h, w), bool)
        rr, cc = _sk_polygon(pys, pxs, shape=(h, w))
        mask[rr, cc] = True
        if len(pxs) < 3 or mask.sum() < 20:
            n_unmasked += 1
            _draw_fringe(img, fr, rng, look)
            continue
        # loops / straps first (under the mask), then the mask itself
        if mp["type"] == "surgical":
            loop_col = np.minimum(mp["color"] * 1.05 + 10, 255)
        elif mp["type"] == "cloth":
            loop_col = mp["c1"] * 0.9
        elif mp["type"] == "fashion":
            loop_col = mp["color"] * 0.85
        else:
            loop_col = None
        _draw_loops(img, fr, mp, loop_col)
        x0, x1 = max(0, int(pxs.min()) - 2), min(w, int(pxs.max()) + 3)
        y0, y1 = max(0, int(pys.min()) - 2), min(h, int(pys.max()) + 3)
        inside = mask[y0:y1, x0:x1]
        U, V = _grid(fr, x0, y0, x1, y1)
        col = _mask_texture(rng, mp, fr, U, V, inside)
        alpha = inside.astype(np.float32)
        alpha = np.maximum(alpha, 0.85 * cv2.GaussianBlur(alpha, (0, 0), 0.7))
        _composite(img, x0, y0, alpha, col)
        _draw_fringe(img, fr, rng, look)
        results.append((mp["type"], mask, [int(v) for v in pxs], [int(v) for v in pys]))

    # ---- global photometric effects --------------------------------------
    f = img.astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    light = 1.0 + rng.uniform(0.0, 0.25) * (xx * math.cos(ang) + yy * math.sin(ang))
    f *= (light * rng.uniform(0.88, 1.08))[..., None]
    f *= rng.uniform(0.93, 1.07, 3).astype(np.float32)[None, None]
    if rng.random() < 0.3:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.4, 0.8))
    f += rng.normal(0.0, rng.uniform(1.5, 5.0), f.shape).astype(np.float32)
    img = np.clip(f + 0.5, 0, 255).astype(np.uint8)

    if info is not None:
        info.update(faces=len(faces), unmasked_faces=n_unmasked, scene=scene)
    return img, results


def image_sizes(image_size):
    """The (h, w) sizes images are drawn from around ``image_size``.

    Three scales (0.85, 1, 1.15) of the given size in both orientations,
    rounded to multiples of 8.
    """
    h, w = int(image_size[0]), int(image_size[1])
    out = []
    for s in (0.85, 1.0, 1.15):
        hh, ww = max(64, int(round(h * s / 8.0)) * 8), max(64, int(round(w * s / 8.0)) * 8)
        for size in ((hh, ww), (ww, hh)):
            if size not in out:
                out.append(size)
    return out


def is_negative_index(seed, split, index, negative_fraction):
    """Whether image ``index`` of ``split`` is a no-mask image.

    Low-discrepancy selection: every prefix of a split holds
    ``negative_fraction`` negatives (+-1) and the choice for an image does not
    depend on how many images are generated.
    """
    f = float(negative_fraction)
    if f <= 0:
        return False
    if f >= 1:
        return True
    phase = np.random.default_rng([int(seed), _SPLIT_IDS[split], 104729]).random()
    return math.floor((index + 1) * f + phase) > math.floor(index * f + phase)


def render_item(seed, split, index, *, image_size=(384, 512), max_faces=4, negative_fraction=0.15, info=None):
    """Render image ``index`` of ``split`` exactly as :func:`make_dataset` does.

    Returns ``(filename, image, masks)`` with ``masks`` as in :func:`draw_sample`.
    """
    rng = np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])
    sizes = image_sizes(image_size)
    weights = np.array([2.0 if s[1] >= s[0] else 1.0 for s in sizes])  # landscape is more common
    h, w = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))]
    neg = is_negative_index(seed, split, index, negative_fraction)
    img, masks = draw_sample(rng, h, w, max_faces=max_faces, negative=neg, info=info)
    return f"synth_{split}_{index:05d}.jpg", img, masks


def _encode_jpeg(img):
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def summarize_dataset(out_dir):
    """Counts per split and per mask type, read back from the VIA JSON files."""
    out = {"out_dir": str(out_dir), "splits": {}, "mask_types": {t: 0 for t in MASK_TYPES},
           "images": 0, "masks": 0, "negative_images": 0}
    for split in SPLITS:
        path = os.path.join(out_dir, split, ANNOTATION_FILE)
        if not os.path.exists(path):
            continue
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
        s = {"images": 0, "masks": 0, "negative_images": 0, "mask_types": {t: 0 for t in MASK_TYPES}}
        for item in data.values():
            regions = item.get("regions") or []
            if isinstance(regions, dict):
                regions = list(regions.values())
            s["images"] += 1
            s["masks"] += len(regions)
            s["negative_images"] += int(len(regions) == 0)
            for reg in regions:
                t = reg.get("region_attributes", {}).get("mask_type")
                s["mask_types"][t] = s["mask_types"].get(t, 0) + 1
        out["splits"][split] = s
        for k in ("images", "masks", "negative_images"):
            out[k] += s[k]
        for t, c in s["mask_types"].items():
            out["mask_types"][t] = out["mask_types"].get(t, 0) + c
    return out


def make_dataset(out_dir, *, n_train=200, n_val=50, image_size=(384, 512), seed=0, max_faces=4,
                 negative_fraction=0.15, overwrite=False):
    """Write a synthetic face-mask dataset in the Matterport balloon layout.

    ``out_dir/{train,val}/*.jpg`` plus ``via_region_data.json`` (VIA 2.x export
    keyed by ``filename + str(filesize)``; one polygon region per visible mask
    with ``region_attributes.mask_type`` in :data:`MASK_TYPES`).

    If ``out_dir/train/via_region_data.json`` already exists and ``overwrite``
    is false, nothing is drawn and the summary of the existing data is
    returned (``cached=True``).  Otherwise the JPEGs are written first and
    each JSON last via an atomic rename, so a present JSON means a complete
    split.

    Returns a summary dict: ``images``, ``masks``, ``negative_images``,
    ``mask_types`` (totals), ``splits`` (the same per split), ``seconds``,
    ``cached`` and, when freshly generated, ``faces`` / ``unmasked_faces``.
    """
    out_dir = os.fspath(out_dir)
    marker = os.path.join(out_dir, "train", ANNOTATION_FILE)
    t0 = time.perf_counter()
    if os.path.exists(marker) and not overwrite:
        try:
            summary = summarize_dataset(out_dir)
            summary.update(cached=True, seconds=round(time.perf_counter() - t0, 3))
            return summary
        except (ValueError, OSError, AttributeError):
            pass  # unreadable -> regenerate

    faces = unmasked = 0
    for split, n in (("train", int(n_train)), ("val", int(n_val))):
        d = os.path.join(out_dir, split)
        os.makedirs(d, exist_ok=True)
        ann_path = os.path.join(d, ANNOTATION_FILE)
        if os.path.exists(ann_path):
            os.remove(ann_path)
        for name in os.listdir(d):  # stale images of an earlier run
            if name.startswith(f"synth_{split}_") and name.endswith(".jpg"):
                os.remove(os.path.join(d, name))
        via = {}
        for i in range(n):
            info = {}
            fname, img, masks = render_item(seed, split, i, image_size=image_size, max_faces=max_faces,
                                            negative_fraction=negative_fraction, info=info)
            faces += info["faces"]
            unmasked += info["unmasked_faces"]
            data = _encode_jpeg(img)
            with open(os.path.join(d, fname), "wb") as fh:
                fh.write(data)
            regions = [
                {
                    "shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                    "region_attributes": {"mask_type": mtype},
                }
                for mtype, _m, xs, ys in masks
            ]
            via[fname + str(len(data))] = {
                "filename": fname,
                "size": len(data),
                "regions": regions,
                "file_attributes": {},
            }
        write_text(ann_path, json.dumps(via))

    summary = summarize_dataset(out_dir)
    summary.update(cached=False, faces=faces, unmasked_faces=unmasked, seed=int(seed),
                   seconds=round(time.perf_counter() - t0, 3))
    return summary


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _parse_size(text):
    try:
        h, w = text.lower().split("x")
        h, w = int(h), int(w)
        if h < 64 or w < 64:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW with both >= 64, e.g. 384x512, got {text!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="facemask-synthetic",
        description="Draw a deterministic synthetic face-mask segmentation dataset "
                    "(Matterport balloon layout: <out>/{train,val}/*.jpg + via_region_data.json, "
                    "one VIA polygon per visible mask with region_attributes.mask_type in "
                    f"{{{', '.join(MASK_TYPES)}}}). Unmasked faces are left unannotated as negatives.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--out", default="datasets/facemask", help="output directory")
    ap.add_argument("--train", type=int, default=200, help="number of training images")
    ap.add_argument("--val", type=int, default=50, help="number of validation images")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    ap.add_argument("--size", type=_parse_size, default="384x512",
                    help="nominal image size HxW; images use 0.85/1/1.15 scales of it, landscape and portrait")
    ap.add_argument("--max-faces", type=int, default=4, help="at most this many people per image")
    ap.add_argument("--negative-fraction", type=float, default=0.15,
                    help="fraction of images where nobody wears a mask")
    ap.add_argument("--overwrite", action="store_true",
                    help="regenerate even if <out>/train/via_region_data.json exists")
    args = ap.parse_args(argv)

    s = make_dataset(args.out, n_train=args.train, n_val=args.val, image_size=args.size, seed=args.seed,
                     max_faces=args.max_faces, negative_fraction=args.negative_fraction,
                     overwrite=args.overwrite)
    if s["cached"]:
        print(f"{args.out}: dataset already present (use --overwrite to regenerate)")
    for split, st in s["splits"].items():
        types = ", ".join(f"{t}={st['mask_types'].get(t, 0)}" for t in MASK_TYPES)
        print(f"  {split:5s}: {st['images']:4d} images, {st['masks']:4d} masks ({types}), "
              f"{st['negative_images']} images without masks")
    extra = f", {s['unmasked_faces']} unmasked faces of {s['faces']}" if not s["cached"] else ""
    print(f"total: {s['images']} images, {s['masks']} masks, {s['negative_images']} negative images"
          f"{extra}; {s['seconds']:.2f} s -> {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
