"""Face-local drawing frame and polygon helpers: fill/line/ellipse in face coordinates, clipping and
simplifying the annotation polygons (between MIN_POLY_POINTS and MAX_POLY_POINTS vertices)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.measure import approximate_polygon

from .palette import _col

MIN_POLY_POINTS = 12


MAX_POLY_POINTS = 40


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
    cv2.polylines(
        img, [_pts(xs, ys)], closed, _col(color), max(1, int(round(thickness))), lineType=cv2.LINE_AA, shift=4
    )


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
    region = img[y0 : y0 + h, x0 : x0 + w]
    a = alpha[..., None].astype(np.float32)
    out = region.astype(np.float32) * (1.0 - a) + np.clip(color, 0, 255) * a
    region[...] = (out + 0.5).astype(np.uint8)


def _clip_polygon(xs, ys, xmax, ymax):
    """Sutherland-Hodgman clip of a closed polygon to [0, xmax] x [0, ymax]."""
    pts = list(zip(np.asarray(xs, float).tolist(), np.asarray(ys, float).tolist()))
    for axis, bound, keep_le in ((0, 0.0, False), (0, xmax, True), (1, 0.0, False), (1, ymax, True)):
        if not pts:
            break
        inside = (lambda p, a=axis, b=bound: p[a] <= b) if keep_le else (lambda p, a=axis, b=bound: p[a] >= b)
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
