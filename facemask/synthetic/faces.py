"""People: a random look (skin, hair, eyes, head roll and yaw), body, face, ears and fringe."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import _composite, _ell, _face_outline, _fill, _Frame, _grid, _line, _patch_box, _pts
from .palette import _FASHION, _HAIR, _HAIR_P, _IRIS, _N95, _SKIN, _SURGICAL, _col, _pick, _rand_color


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


def _draw_body(img, fr, skin, rng, look):
    """Back hair, shoulders, neck (phase 1: may be covered by any head)."""
    if look["hair_style"] == "long":
        hair = look["hair"]
        t = np.linspace(math.pi, 2 * math.pi, 24)
        end = look["hair_len"]
        uu = np.concatenate([1.25 * np.cos(t), [1.3, 1.15, 0.6, 0.0, -0.6, -1.15, -1.3]])
        vv = np.concatenate(
            [-0.05 + 1.15 * np.sin(t), [end * 0.6, end, end + 0.08, end - 0.05, end + 0.08, end, end * 0.6]]
        )
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
        shade = 1.06 - 0.2 * (U**2 + 0.5 * (V + 0.1) ** 2) + look["light"] * U
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
            cv2.circle(
                img,
                (int(round(ix * 16)), int(round(iy * 16))),
                max(16, int(r * 16)),
                _col(look["iris"]),
                -1,
                cv2.LINE_AA,
                4,
            )
            cv2.circle(
                img,
                (int(round(ix * 16)), int(round(iy * 16))),
                max(8, int(r * 7)),
                (12.0, 10.0, 10.0),
                -1,
                cv2.LINE_AA,
                4,
            )
            _line(
                img,
                *_ell(fr, ue, -0.1, 0.16 * squash, 0.075, n=12, t0=math.pi, t1=2 * math.pi),
                skin * 0.45,
                max(1.0, 0.025 * a),
            )
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
        _line(
            img,
            *fr.to_img(np.linspace(-mw, mw, 7), 0.53 + 0.015 * np.cos(np.linspace(-1.5, 1.5, 7))),
            lip * 0.55,
            max(1.0, 0.02 * a),
        )
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
