"""Face coverings: per-kind shape parameters (surgical, N95, cloth, fashion), the face-local outline that is
both filled and annotated, the fabric texture and the ear loops."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .geometry import _line
from .palette import _FASHION, _N95, _SURGICAL, _VALVE, _pick, _rand_color

MASK_TYPES = ("surgical", "n95", "cloth", "fashion")


def _mask_params(rng, mtype):
    p = {"type": mtype}
    if mtype == "surgical":
        p.update(
            vt=rng.uniform(0.06, 0.14),
            vb=rng.uniform(0.98, 1.06),
            s=rng.uniform(1.0, 1.06),
            pw=rng.uniform(0.5, 0.65),
            k=rng.uniform(0.1, 0.2),
            bump=rng.uniform(0.03, 0.08),
            color=np.array(_pick(rng, _SURGICAL), np.float32),
            pleats=int(rng.integers(3, 5)),
        )
    elif mtype == "cloth":
        p.update(
            vt=rng.uniform(0.05, 0.12),
            vb=rng.uniform(1.04, 1.14),
            s=rng.uniform(1.05, 1.12),
            pw=rng.uniform(0.75, 0.9),
            k=rng.uniform(0.2, 0.3),
            bump=rng.uniform(0.06, 0.12),
        )
    elif mtype == "fashion":
        p.update(
            vt=rng.uniform(0.08, 0.16),
            vb=rng.uniform(0.95, 1.02),
            s=rng.uniform(0.98, 1.04),
            pw=rng.uniform(1.0, 1.1),
            k=rng.uniform(0.3, 0.4),
            bump=rng.uniform(0.1, 0.17),
            color=np.array(_pick(rng, _FASHION), np.float32),
        )
    else:  # n95
        p.update(
            vt=rng.uniform(0.0, 0.08),
            vb=rng.uniform(1.0, 1.08),
            hw=rng.uniform(0.84, 0.96),
            color=np.array(_pick(rng, _N95), np.float32),
        )
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
    u_low = s * np.sign(c) * np.abs(c) ** pw * (1.0 - k * depth**2)
    v_low = vt + (vb - vt) * depth
    # top edge, left to right: runs just below the eyes (v ~ 0), peaked over the nose bridge
    ut = np.linspace(-s, s, n - m + 2)[1:-1]
    v_top = vt + 0.05 * ((ut / s) ** 2 - 1.0) - bump * np.exp(-((ut / 0.22) ** 2))
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
        pleat = 0.95 + 0.09 * f - 0.16 * np.exp(-((f / 0.06) ** 2)) - 0.08 * np.exp(-(((1.0 - f) / 0.04) ** 2))
        shade = (1.05 - 0.2 * U**2) * np.where(band, pleat, 1.0)
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
        shade = 1.06 - 0.25 * U**2
        if p["seam"]:
            shade = shade * np.where(np.abs(U) < max(1.0 * px, 0.012), 0.7, 1.0)
        shade = shade * np.where(dist <= max(1.0, 0.04 * a), 0.85, 1.0)
        col = col * shade[..., None] + 4.0 * grain[..., None]
    else:  # fashion
        base = p["color"]
        shade = 1.08 - 0.32 * U**2
        gloss = np.exp(-(((U - p["gloss_u"]) / 0.13) ** 2)) * np.exp(-(((V - 0.45) / 0.45) ** 2))
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
        p.update(
            c1=c1,
            c2=c2,
            pattern=_pick(rng, ("stripes", "dots", "plaid", "plaid", "solid")),
            period=rng.uniform(0.14, 0.32),
            angle=rng.uniform(0.0, math.pi),
            seam=rng.random() < 0.5,
        )
    elif mtype == "fashion":
        p["gloss_u"] = rng.uniform(-0.5, 0.5)
    return p


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
        uu = (1 - t) ** 2 * pu[0] + 2 * (1 - t) * t * pu[1] + t**2 * pu[2]
        vv = (1 - t) ** 2 * pv[0] + 2 * (1 - t) * t * pv[1] + t**2 * pv[2]
        _line(img, *fr.to_img(uu, vv, warp=False), col, th)
