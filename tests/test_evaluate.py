"""Hand-computed checks of mrcnn.metrics (Matterport AP convention) and pycocotools agreement."""

import contextlib
import io
import math

import numpy as np
import pytest

from mrcnn import metrics as ev

H = W = 64


def square_mask(y1, x1, y2, x2, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y1:y2, x1:x2] = True
    return m


def instances(boxes, h=H, w=W):
    """Boxes and matching rectangular masks [H, W, N]."""
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    masks = np.zeros((h, w, len(boxes)), bool)
    for i, b in enumerate(boxes):
        masks[..., i] = square_mask(*b, h=h, w=w)
    return boxes, masks


A = (2, 2, 12, 12)
B = (20, 20, 30, 30)
C = (40, 40, 52, 52)
FAR = (50, 2, 60, 12)  # overlaps nothing above


def ap(gt, gt_ids, pred, pred_ids, scores, **kw):
    gb, gm = instances(gt)
    pb, pm = instances(pred)
    return ev.compute_ap(gb, np.array(gt_ids), gm, pb, np.array(pred_ids), np.array(scores), pm, **kw)


# ----------------------------------------------------------------------------- IoU
def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [0, 5, 10, 15], [20, 20, 30, 30], [0, 0, 0, 0]])
    np.testing.assert_allclose(ev.box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])
    assert ev.box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_mask_iou_values_and_empty():
    m1 = np.stack([square_mask(0, 0, 10, 10), np.zeros((H, W), bool)], -1)
    m2 = np.stack([square_mask(0, 5, 10, 15), np.zeros((H, W), bool)], -1)
    iou = ev.mask_iou(m1, m2)
    assert not np.isnan(iou).any()
    np.testing.assert_allclose(iou, [[50 / 150, 0.0], [0.0, 0.0]])
    assert ev.mask_iou(m1, np.zeros((H, W, 0), bool)).shape == (2, 0)


# ----------------------------------------------------------------------------- AP by hand
def test_perfect_detections_ap_one():
    mAP, p, r, _ = ap([A, B], [1, 2], [B, A], [2, 1], [0.6, 0.9])
    assert mAP == 1.0
    np.testing.assert_allclose(r, [0, 0.5, 1, 1])
    np.testing.assert_allclose(p, [1, 1, 1, 0])


def test_no_detections_ap_zero():
    gb, gm = instances([A, B])
    mAP, p, r, o = ev.compute_ap(
        gb, np.array([1, 1]), gm, np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), np.zeros((H, W, 0), bool)
    )
    assert mAP == 0.0
    assert o.shape == (0, 2)


def test_partial_with_higher_scored_false_positive():
    # 2 GT; sorted preds: FP (0.9) then TP on A (0.8).
    # precision [0, 1/2], recall [0, 1/2] -> padded p [0,0,.5,0], r [0,0,.5,1]
    # envelope p [.5,.5,.5,0]; AP = (.5 - 0) * .5 + (1 - .5) * 0 = 0.25
    mAP, p, r, _ = ap([A, B], [1, 1], [A, FAR], [1, 1], [0.8, 0.9])
    assert mAP == pytest.approx(0.25, abs=1e-12)
    np.testing.assert_allclose(p, [0.5, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(r, [0.0, 0.0, 0.5, 1.0])


def test_duplicate_detection_is_false_positive():
    # Sorted: A (TP), A duplicate (FP), B (TP): p [1, 1/2, 2/3], r [1/2, 1/2, 1]
    # AP = 0.5 * 1 + 0.5 * 2/3
    gb, gm = instances([A, B])
    pb, pm = instances([A, A, B])
    args = (gb, np.array([1, 1]), gm, pb, np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]), pm)
    gt_match, pred_match, overlaps = ev.match_detections(*args)
    assert pred_match.tolist() == [0, -1, 1]
    assert gt_match.tolist() == [0, 2]
    assert overlaps.shape == (3, 2)
    assert ev.compute_ap(*args)[0] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)


def test_matching_is_in_score_order_and_input_indexed():
    # The lower-scored duplicate comes first in the input; the higher-scored one takes the GT.
    gb, gm = instances([A])
    pb, pm = instances([A, A])
    _, pred_match, _ = ev.match_detections(gb, np.array([1]), gm, pb, np.array([1, 1]), np.array([0.3, 0.9]), pm)
    assert pred_match.tolist() == [-1, 0]


def test_equal_scores_are_ranked_in_matterports_order():
    """np.argsort(scores)[::-1]: of two equal scores the later row comes first. Here the later row
    is the FP, so the ranking is FP, TP -> precision [0, 0.5] at recall 1 -> AP 0.5 (stable
    order would give TP, FP -> 1.0)."""
    mAP, *_ = ap([A], [1], [A, FAR], [1, 1], [0.8, 0.8])
    assert mAP == pytest.approx(0.5)
    mAP, *_ = ap([A], [1], [FAR, A], [1, 1], [0.8, 0.8])
    assert mAP == pytest.approx(1.0)


def test_equal_ious_go_to_the_later_ground_truth():
    """Matterport tries GTs in np.argsort(ious)[::-1] order: with two identical GTs the later one is
    matched first."""
    gb, gm = instances([A, A])
    pb, pm = instances([A])
    gt_match, pred_match, _ = ev.match_detections(gb, np.array([1, 1]), gm, pb, np.array([1]), np.array([0.9]), pm)
    assert gt_match.tolist() == [-1, 0] and pred_match.tolist() == [1]


def test_float_masks_are_cut_above_one_half():
    """Matterport binarises masks with > 0.5: a mask of exactly 0.5 is empty."""
    gb, gm = instances([A])
    half = gm.astype(np.float32) * 0.5
    assert ev.mask_iou(half, gm)[0, 0] == 0.0
    assert ev.mask_iou(gm.astype(np.float32) * 0.51, gm)[0, 0] == 1.0


def test_recall_is_float32_as_matterport():
    """3 GT, 1 TP: Matterport's recall is float32(1/3), so AP is float32(1/3) * 1.0 exactly."""
    mAP, precisions, recalls, _ = ap([A, B, C], [1, 1, 1], [A], [1], [0.9])
    assert mAP == float(np.float32(1) / 3)
    assert recalls.tolist() == [0.0, float(np.float32(1) / 3), 1.0]


def test_headline_ranks_low_scores_and_reports_the_min_confidence_figure():
    """Headline: every detection ranked (the model runs at 0.05); beside it, the figure with only
    the detections >= DETECTION_MIN_CONFIDENCE. Images without GT are reported, not averaged."""
    e = ev.Evaluator(["BG", "a"], reference_confidence=0.7, reference_max=20)
    gb, gm = instances([A, B])
    pb, pm = instances([A, B])
    # image 1: A found at 0.9, B only at 0.3 -> ranked: AP 1.0; at 0.7: recall 0.5 -> AP 0.5
    r = e.add(1, gb, np.array([1, 1]), gm, pb, np.array([1, 1]), np.array([0.9, 0.3]), pm)
    assert r["mask_AP50"] == 1.0 and r["mask_AP50_at_min_confidence"] == 0.5
    nb, nm = np.zeros((0, 4)), np.zeros((H, W, 0), bool)
    fb, fm = instances([C])
    e.add(2, nb, np.zeros(0, int), nm, fb, np.array([1]), np.array([0.2]), fm)  # no GT, one FP
    e.add(3, nb, np.zeros(0, int), nm, nb, np.zeros(0, int), np.zeros(0), nm)  # no GT, nothing
    s = e.summary()
    assert s["mask_mAP50"] == 1.0 and s["mask_mAP50_at_min_confidence"] == 0.5
    assert (s["images_with_gt"], s["images_without_gt"], s["images_without_gt_with_predictions"]) == (1, 2, 1)
    table = ev.format_table(s)
    assert "mean over the 1 images with GT" in table and "only detections >= 0.7" in table
    assert "images without GT: 2 (1 with false positives)" in table


def test_class_mismatch_is_false_positive():
    mAP, *_ = ap([A], [1], [A], [2], [0.9])
    assert mAP == 0.0


def test_match_prefers_same_class_over_higher_iou():
    # Two GT: class 2 exactly at A, class 1 shifted (IoU ~0.67 with A). Prediction of class 1
    # at A must match the class-1 GT although the class-2 GT overlaps more.
    shifted = (2, 4, 12, 14)
    gb, gm = instances([A, shifted])
    pb, pm = instances([A])
    gt_match, pred_match, ov = ev.match_detections(gb, np.array([2, 1]), gm, pb, np.array([1]), np.array([0.9]), pm)
    assert ov[0, 0] == 1.0 and ov[0, 1] == pytest.approx(80 / 120)
    assert pred_match.tolist() == [1]
    assert gt_match.tolist() == [-1, 0]


def test_iou_threshold_is_inclusive():
    # IoU exactly 0.5: box [0,0,10,10] vs [0,0,10,20]-> 100/200
    gb, gm = instances([(0, 0, 10, 10)])
    pb, pm = instances([(0, 0, 10, 20)])
    args = (gb, np.array([1]), gm, pb, np.array([1]), np.array([0.9]), pm)
    assert ev.compute_ap(*args, iou_threshold=0.5)[0] == 1.0
    assert ev.compute_ap(*args, iou_threshold=0.51)[0] == 0.0


@pytest.mark.parametrize("use_masks", [True, False])
def test_empty_gt_edge_cases(use_masks):
    none_b, none_m = np.zeros((0, 4)), np.zeros((H, W, 0), bool)
    none_ids, none_s = np.zeros(0, int), np.zeros(0)
    pb, pm = instances([A])
    gb, gm = instances([A])
    # no GT, no preds -> 0.0 (Matterport: recall padded [0, 1] with precision 0)
    assert ev.compute_ap(none_b, none_ids, none_m, none_b, none_ids, none_s, none_m, use_masks=use_masks)[0] == 0.0
    # no GT, preds -> 0.0
    assert (
        ev.compute_ap(none_b, none_ids, none_m, pb, np.array([1]), np.array([0.9]), pm, use_masks=use_masks)[0] == 0.0
    )
    # GT, no preds -> 0.0
    assert ev.compute_ap(gb, np.array([1]), gm, none_b, none_ids, none_s, none_m, use_masks=use_masks)[0] == 0.0


def test_padding_rows_are_ignored():
    # GT padded with a zero row (class 0, zero box, empty mask); preds padded likewise.
    gb, gm = instances([A, (0, 0, 0, 0)])
    pb, pm = instances([A, (0, 0, 0, 0)])
    args = (gb, np.array([1, 0]), gm, pb, np.array([1, 0]), np.array([0.9, 0.0]), pm)
    gt_match, pred_match, _ = ev.match_detections(*args)
    assert gt_match.tolist() == [0, -1] and pred_match.tolist() == [0, -1]
    assert ev.compute_ap(*args)[0] == 1.0
    # Only padding on both sides -> "no GT, no preds" -> 0.0, as Matterport.
    gb0, gm0 = instances([(0, 0, 0, 0)])
    assert ev.compute_ap(gb0, np.array([0]), gm0, gb0, np.array([0]), np.array([0.0]), gm0)[0] == 0.0


def test_mask_iou_vs_box_iou():
    # Same bounding box, disjoint checkerboard pixels: box IoU 1, mask IoU 0.
    yy, xx = np.mgrid[:H, :W]
    inside = square_mask(*C)
    gm = (inside & ((yy + xx) % 2 == 0))[..., None]
    pm = (inside & ((yy + xx) % 2 == 1))[..., None]
    box = np.array([C])
    args = (box, np.array([1]), gm, box, np.array([1]), np.array([0.9]), pm)
    assert ev.compute_ap(*args, use_masks=True)[0] == 0.0
    assert ev.compute_ap(*args, use_masks=False)[0] == 1.0


def test_compute_ap_range_and_recall():
    # IoU of pred with GT: A=[2,12)x[2,12) vs [2,12)x[2,14): 100/120 = 0.833
    gb, gm = instances([A])
    pb, pm = instances([(2, 2, 12, 14)])
    args = (gb, np.array([1]), gm, pb, np.array([1]), np.array([0.9]), pm)
    # thresholds 0.5 .. 0.95: passes 0.5, 0.55, ..., 0.8 -> 7 of 10
    assert ev.compute_ap_range(*args) == pytest.approx(0.7)
    assert ev.compute_ap_range(*args, iou_thresholds=[0.5]) == 1.0
    gb2 = np.array([A, B, (0, 0, 0, 0)])
    pbs = np.array([A, (2, 2, 12, 13), C])
    recall, pos = ev.compute_recall(pbs, gb2, 0.5)
    assert recall == 0.5 and pos.tolist() == [0, 1]
    assert ev.compute_recall(pbs, np.zeros((0, 4)), 0.5)[0] == 1.0
    assert ev.compute_recall(np.zeros((0, 4)), gb2, 0.5)[0] == 0.0


def _two_image_case():
    """Image 1: GT class1 A, class2 B; preds class1@A (.9, TP), class2 far (.95, FP).
    Image 2: GT class1 C; preds class1 far (.95, FP), class1@C (.5, TP)."""
    g1b, g1m = instances([A, B])
    p1b, p1m = instances([A, FAR])
    g2b, g2m = instances([C])
    p2b, p2m = instances([FAR, C])
    return dict(
        gt_boxes=[g1b, g2b],
        gt_class_ids=[np.array([1, 2]), np.array([1])],
        gt_masks=[g1m, g2m],
        pred_boxes=[p1b, p2b],
        pred_class_ids=[np.array([1, 2]), np.array([1, 1])],
        pred_scores=[np.array([0.9, 0.95]), np.array([0.95, 0.5])],
        pred_masks=[p1m, p2m],
    )


def test_per_class_ap_dataset_level():
    d = _two_image_case()
    # Class 1 pooled: .95 FP, .9 TP, .5 TP with 2 GT -> p [0, 1/2, 2/3], r [0, 1/2, 1]
    # envelope 2/3 everywhere up to r=1 -> AP = 2/3. Class 2: one FP, 1 GT -> 0.
    # Class 3 absent -> NaN; class 4 (set below) predictions but no GT -> 0.
    res = ev.per_class_ap(**d, class_ids=[1, 2, 3])
    assert res[1] == pytest.approx(2 / 3, abs=1e-12)
    assert res[2] == 0.0
    assert math.isnan(res[3])
    d["pred_class_ids"][1] = np.array([4, 1])
    res = ev.per_class_ap(**d, use_masks=False, return_curves=True)
    assert set(res) == {1, 2, 4}
    assert res[4][0] == 0.0
    assert res[1][0] == pytest.approx(1.0)  # class 1 now: .9 TP, .5 TP


def test_evaluator_summary_hand_values():
    d = _two_image_case()
    e = ev.Evaluator(["BG", "cat", "dog", "unused"])
    for k in range(2):
        e.add(
            f"img{k}",
            *(
                d[key][k]
                for key in (
                    "gt_boxes",
                    "gt_class_ids",
                    "gt_masks",
                    "pred_boxes",
                    "pred_class_ids",
                    "pred_scores",
                    "pred_masks",
                )
            ),
        )
    s = e.summary()
    assert (s["num_images"], s["num_gt"], s["num_pred"]) == (2, 3, 4)
    # Per-image AP (pooled classes): image 1 sorted FP(.95), TP(.9), 2 GT -> 0.25;
    # image 2: FP(.95), TP(.5), 1 GT -> p [0, .5], r [0, 1] -> 0.5. Mean over images: 0.375.
    img1 = ev.compute_ap(
        d["gt_boxes"][0],
        d["gt_class_ids"][0],
        d["gt_masks"][0],
        d["pred_boxes"][0],
        d["pred_class_ids"][0],
        d["pred_scores"][0],
        d["pred_masks"][0],
    )[0]
    assert img1 == pytest.approx(0.25)
    assert s["mask_mAP50"] == pytest.approx(0.375)
    assert s["box_mAP50"] == pytest.approx(0.375)
    assert s["per_class_mask_AP50"]["cat"] == pytest.approx(2 / 3)
    assert s["per_class_mask_AP50"]["dog"] == 0.0
    assert math.isnan(s["per_class_mask_AP50"]["unused"])
    assert set(s["pr_curve"]) == {"cat", "dog"}
    assert len(s["pr_curve"]["cat"]["precision"]) == len(s["pr_curve"]["cat"]["recall"])
    assert set(s["coco_segm"]) == set(ev.COCO_METRIC_NAMES)
    table = ev.format_table(s)
    assert "cat" in table and "AP50" in table and "n/a" in table
    with pytest.raises(ValueError):
        e.add(
            "img0",
            *(
                d[key][0]
                for key in (
                    "gt_boxes",
                    "gt_class_ids",
                    "gt_masks",
                    "pred_boxes",
                    "pred_class_ids",
                    "pred_scores",
                    "pred_masks",
                )
            ),
        )


def test_evaluator_zero_predictions_and_zero_gt():
    gb, gm = instances([A, (0, 0, 40, 40)])  # one small (100 px), one medium (1600 px)
    nb, nm = np.zeros((0, 4)), np.zeros((H, W, 0), bool)
    e = ev.Evaluator(["BG", "a"])
    e.add(1, gb, np.array([1, 1]), gm, nb, np.zeros(0, int), np.zeros(0), nm)
    s = e.summary()
    assert s["mask_mAP50"] == 0.0 and s["num_pred"] == 0
    for key in ("coco_segm", "coco_bbox"):
        c = s[key]
        assert c["AP"] == 0.0 and c["AP50"] == 0.0 and c["AR100"] == 0.0
        assert c["APs"] == 0.0 and c["APm"] == 0.0 and math.isnan(c["APl"])
    ev.format_table(s)

    e = ev.Evaluator(["BG", "a"])
    e.add(1, nb, np.zeros(0, int), nm, nb, np.zeros(0, int), np.zeros(0), nm)
    pb, pm = instances([A])
    e.add(2, nb, np.zeros(0, int), nm, pb, np.array([1]), np.array([0.8]), pm)
    s = e.summary()
    assert math.isnan(s["mask_mAP50"])  # no image has GT: nothing to average
    assert (s["images_with_gt"], s["images_without_gt"], s["images_without_gt_with_predictions"]) == (0, 2, 1)
    assert math.isnan(s["coco_segm"]["AP"]) and math.isnan(s["coco_bbox"]["AP"])
    assert math.isnan(s["per_class_mask_AP50"]["a"]) is False  # preds but no GT -> 0
    assert s["per_class_mask_AP50"]["a"] == 0.0
    ev.format_table(s)

    s = ev.Evaluator(["BG", "a"]).summary()
    assert s["num_images"] == 0 and math.isnan(s["mask_mAP50"])
    ev.format_table(s)


# ----------------------------------------------------------------------------- COCO agreement
def _random_dataset(seed=0, n_images=6, h=160, w=168, n_classes=3):
    """Random rectangles-with-holes; some predictions are degraded/shifted copies of GT so that
    AP is far from 0 and 1, with objects in all three COCO area ranges."""
    rng = np.random.default_rng(seed)
    images = []

    def rand_instances(n):
        masks = np.zeros((h, w, n), bool)
        for i in range(n):
            size = int(rng.choice([8, 24, 110]))  # small / medium / large objects
            y1, x1 = rng.integers(0, h - size), rng.integers(0, w - size)
            y2 = min(h, y1 + size + int(rng.integers(0, 12)))
            x2 = min(w, x1 + size + int(rng.integers(0, 12)))
            masks[y1:y2, x1:x2, i] = rng.random((y2 - y1, x2 - x1)) < 0.92
            masks[y1, x1, i] = masks[y2 - 1, x2 - 1, i] = True
        return masks

    for _ in range(n_images):
        gm = rand_instances(int(rng.integers(1, 6)))
        n_copy = int(rng.integers(0, gm.shape[2] + 1))
        copies = np.zeros((h, w, n_copy), bool)
        for i in range(n_copy):
            dy, dx = rng.integers(-2, 3, 2)
            copies[..., i] = np.roll(gm[..., i], (dy, dx), axis=(0, 1)) & (rng.random((h, w)) < 0.9)
        pm = np.concatenate([copies, rand_instances(int(rng.integers(0, 3)))], axis=2)
        gc = rng.integers(1, n_classes + 1, gm.shape[2])
        pc = rng.integers(1, n_classes + 1, pm.shape[2])
        keep_class = rng.random(n_copy) < 0.8
        pc[:n_copy] = np.where(keep_class, gc[:n_copy], pc[:n_copy])
        images.append(
            dict(
                gt_masks=gm,
                gt_class_ids=gc,
                pred_masks=pm,
                pred_class_ids=pc,
                pred_scores=rng.random(pm.shape[2]),
                gt_boxes=ev.extract_boxes(gm),
                pred_boxes=ev.extract_boxes(pm),
            )
        )
    return images


def _pycocotools_direct(images, n_classes, iou_type):
    """Independent construction of the COCO inputs (RLE via pycocotools, xywh from masks)."""
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": [{"id": c} for c in range(1, n_classes + 1)]}
    results = []
    for k, im in enumerate(images):
        h, w = im["gt_masks"].shape[:2]
        gt["images"].append({"id": 100 + k, "height": h, "width": w})
        for i in range(im["gt_masks"].shape[2]):
            rle = mu.encode(np.asfortranarray(im["gt_masks"][..., i].astype(np.uint8)))
            bbox = mu.toBbox(rle).tolist()
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": 100 + k,
                    "category_id": int(im["gt_class_ids"][i]),
                    "segmentation": rle,
                    "area": float(mu.area(rle)),
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
        for i in range(im["pred_masks"].shape[2]):
            rle = mu.encode(np.asfortranarray(im["pred_masks"][..., i].astype(np.uint8)))
            r = {"image_id": 100 + k, "category_id": int(im["pred_class_ids"][i]), "score": float(im["pred_scores"][i])}
            if iou_type == "segm":
                r["segmentation"] = rle
            else:
                r["bbox"] = mu.toBbox(rle).tolist()
            results.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(results)
        e = COCOeval(cg, cd, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[:9]


def test_coco_numbers_match_pycocotools_directly():
    images = _random_dataset(seed=1)
    e = ev.Evaluator(["BG", "a", "b", "c"])
    for k, im in enumerate(images):
        e.add(
            k,
            im["gt_boxes"],
            im["gt_class_ids"],
            im["gt_masks"],
            im["pred_boxes"],
            im["pred_class_ids"],
            im["pred_scores"],
            im["pred_masks"],
        )
    s = e.summary()
    assert "Average Precision" in e.coco_log
    for key, iou_type in (("coco_segm", "segm"), ("coco_bbox", "bbox")):
        ref = _pycocotools_direct(images, 3, iou_type)
        ours = [s[key][n] for n in ev.COCO_METRIC_NAMES]
        assert 0.1 < ref[0] < 0.9 and (ref >= 0).all()  # non-trivial, all ranges populated
        for name, a, b in zip(ev.COCO_METRIC_NAMES, ours, ref):
            if b < 0:
                assert math.isnan(a), name
            else:
                assert a == pytest.approx(b, abs=1e-9), (key, name)
