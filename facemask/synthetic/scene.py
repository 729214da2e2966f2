"""One scene: a cluttered background with up to ``max_faces`` non-overlapping people, some masked
(:func:`draw_sample`, the image and the exact mask of every visible covering)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.draw import polygon as _sk_polygon

from .faces import _draw_body, _draw_face, _draw_fringe, _random_look
from .geometry import _area, _clip_polygon, _composite, _fill, _Frame, _grid, _simplify
from .masks import MASK_TYPES, _draw_loops, _finish_mask_params, _mask_outline, _mask_params, _mask_texture
from .palette import _FASHION, _N95, _SURGICAL, _col, _pick, _rand_color


def _background(rng, h, w):
    c0 = _rand_color(rng, 0.0, 0.6, 0.25, 0.95)
    c1 = _rand_color(rng, 0.0, 0.6, 0.15, 0.95)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * math.cos(ang) + yy * math.sin(ang)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
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
            cv2.ellipse(
                img,
                (int(cx), int(cy)),
                (max(1, int(sz / 2)), max(1, int(sz * rng.uniform(0.2, 0.6)))),
                float(rng.uniform(0, 180)),
                0,
                360,
                _col(col),
                -1,
                cv2.LINE_AA,
            )
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


def _overlap(p, q, margin):
    return p[0] < q[2] + margin and q[0] < p[2] + margin and p[1] < q[3] + margin and q[1] < p[3] + margin


def _body_box(fr):
    """Rough image-space box of the torso (below the chin, to the image bottom)."""
    x, y = fr.to_img(0.0, 0.95, warp=False)
    return float(x) - 2.7 * fr.a, float(y), float(x) + 2.7 * fr.a, 1e9


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
            if any(
                (qb > b and _overlap(box, qbody, 0)) or (qb < b and _overlap(q, body, 0)) for q, (qb, qbody) in boxes
            ):
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
