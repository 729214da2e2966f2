"""ROI sampling for the heads in training (below both heads): the proposals and GT of an image ->
the sampled ROIs and each one's class, box-delta and mask targets (Matterport's DetectionTargetLayer,
torchvision's ``RoIHeads.select_training_samples``)."""

from __future__ import annotations

import tensorflow as tf

from mrcnn.ops.boxes import box_refinement_tf, compute_overlaps_tf

from .precision import Float32Layer


def trim_zeros(boxes: tf.Tensor):
    """Drop all-zero (padding) rows of boxes [N, 4]; returns (boxes [M, 4], keep mask [N])."""
    keep = tf.reduce_any(tf.not_equal(boxes, 0.0), axis=1)
    return tf.boolean_mask(boxes, keep), keep


def detection_targets(
    proposals,
    gt_class_ids,
    gt_boxes,
    gt_masks,
    *,
    rois_per_image,
    positive_ratio,
    bbox_std_dev,
    mask_shape,
    use_mini_mask,
    append_gt=True,
):
    """Sample ROIs for the heads and build their targets, for one image.

    proposals [P, 4], gt_class_ids [G] (negative = crowd), gt_boxes [G, 4], gt_masks [h, w, G]
    -> rois [R, 4], class_ids [R], deltas [R, 4], masks [R * positive_ratio, mh, mw]:
    positives first, then negatives, then zero padding. Only the first
    int(R * positive_ratio) ROIs can be positive, so mask targets cover just those (and the
    mask head in training runs on the positive ones among them, see ``mask_head(keep=...)``).

    An ROI is positive when its IoU with a GT box is >= 0.5 and negative when < 0.5 (and it does
    not touch a crowd box). At most ``rois_per_image * positive_ratio`` positives are kept and
    negatives fill the rest (so images without objects still train the classifier). Unlike
    Matterport, the GT boxes are appended to the proposals (``append_gt``, as Detectron2 and
    torchvision do), so the heads get positives from step one.
    """
    proposals, _ = trim_zeros(proposals)
    gt_boxes, keep = trim_zeros(gt_boxes)
    gt_class_ids = tf.boolean_mask(gt_class_ids, keep)
    gt_masks = tf.boolean_mask(gt_masks, keep, axis=2)

    crowd = gt_class_ids < 0
    crowd_boxes = tf.boolean_mask(gt_boxes, crowd)
    gt_class_ids = tf.boolean_mask(gt_class_ids, ~crowd)
    gt_boxes = tf.boolean_mask(gt_boxes, ~crowd)
    gt_masks = tf.boolean_mask(gt_masks, ~crowd, axis=2)
    if append_gt:
        proposals = tf.concat([proposals, gt_boxes], axis=0)

    overlaps = compute_overlaps_tf(proposals, gt_boxes)  # [P, G]
    best_iou = tf.reduce_max(tf.concat([overlaps, tf.zeros_like(proposals[:, :1])], axis=1), axis=1)
    crowd_iou = tf.reduce_max(
        tf.concat([compute_overlaps_tf(proposals, crowd_boxes), tf.zeros_like(proposals[:, :1])], axis=1), axis=1
    )
    positive_idx = tf.where(best_iou >= 0.5)[:, 0]
    negative_idx = tf.where((best_iou < 0.5) & (crowd_iou < 0.001))[:, 0]

    positive_count = int(rois_per_image * positive_ratio)
    positive_idx = tf.random.shuffle(positive_idx)[:positive_count]
    n_pos = tf.shape(positive_idx)[0]
    n_neg = rois_per_image - n_pos  # Detectron2's rule: negatives fill the rest (also on images without GT)
    negative_idx = tf.random.shuffle(negative_idx)[:n_neg]

    positive_rois = tf.gather(proposals, positive_idx)
    negative_rois = tf.gather(proposals, negative_idx)
    assignment = tf.argmax(tf.gather(overlaps, positive_idx), axis=1, output_type=tf.int32)
    assigned_boxes = tf.gather(gt_boxes, assignment)
    class_ids = tf.gather(gt_class_ids, assignment)
    deltas = box_refinement_tf(positive_rois, assigned_boxes) / tf.constant(bbox_std_dev, tf.float32)
    masks = mask_targets(
        gt_masks, assignment, positive_rois, assigned_boxes, mask_shape=mask_shape, use_mini_mask=use_mini_mask
    )

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    n = tf.shape(rois)[0]
    pad = tf.maximum(rois_per_image - n, 0)
    rois = tf.pad(rois, [(0, pad), (0, 0)])[:rois_per_image]
    pad_pos = rois_per_image - n_pos
    class_ids = tf.pad(class_ids, [(0, pad_pos)])
    deltas = tf.pad(deltas, [(0, pad_pos), (0, 0)])
    masks = tf.pad(masks, [(0, positive_count - n_pos), (0, 0), (0, 0)])
    return rois, class_ids, deltas, masks


class DetectionTargetLayer(Float32Layer):
    """Batched :func:`detection_targets`. Inputs: proposals [B, P, 4], gt_class_ids [B, G],
    gt_boxes [B, G, 4] (normalised), gt_masks [B, h, w, G]."""

    def __init__(self, rois_per_image, positive_ratio, bbox_std_dev, mask_shape, use_mini_mask, **kwargs):
        super().__init__(**kwargs)
        self.rois_per_image = int(rois_per_image)
        self.positive_ratio = float(positive_ratio)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        r, (mh, mw) = self.rois_per_image, self.mask_shape
        p = self.max_positives

        def one(args):
            return detection_targets(
                *args,
                rois_per_image=r,
                positive_ratio=self.positive_ratio,
                bbox_std_dev=self.bbox_std_dev,
                mask_shape=self.mask_shape,
                use_mini_mask=self.use_mini_mask,
            )

        out = tf.map_fn(
            one,
            (tf.cast(proposals, tf.float32), tf.cast(gt_class_ids, tf.int32), tf.cast(gt_boxes, tf.float32), gt_masks),
            fn_output_signature=(
                tf.TensorSpec((r, 4), tf.float32),
                tf.TensorSpec((r,), tf.int32),
                tf.TensorSpec((r, 4), tf.float32),
                tf.TensorSpec((p, mh, mw), tf.float32),
            ),
        )
        return [tf.stop_gradient(t) for t in out]

    def compute_output_shape(self, input_shape):
        b, r = input_shape[0][0], self.rois_per_image
        return [(b, r, 4), (b, r), (b, r, 4), (b, self.max_positives) + self.mask_shape]

    @property
    def max_positives(self) -> int:
        return int(self.rois_per_image * self.positive_ratio)

    def get_config(self):
        return {
            **super().get_config(),
            "rois_per_image": self.rois_per_image,
            "positive_ratio": self.positive_ratio,
            "bbox_std_dev": self.bbox_std_dev,
            "mask_shape": list(self.mask_shape),
            "use_mini_mask": self.use_mini_mask,
        }


def mask_targets(gt_masks, assignment, positive_rois, assigned_boxes, *, mask_shape, use_mini_mask):
    """One image: crop each positive ROI out of its GT mask and resize to ``mask_shape``.

    gt_masks [h, w, G] (full-image masks, or mini-masks in their GT box's frame when
    ``use_mini_mask``), assignment [P] (GT index of each positive), positive_rois [P, 4],
    assigned_boxes [P, 4] -> 0/1 float masks [P, mh, mw].
    """
    masks = tf.expand_dims(tf.transpose(tf.cast(gt_masks, tf.float32), [2, 0, 1]), -1)
    masks = tf.gather(masks, assignment)
    crop_boxes = positive_rois
    if use_mini_mask:
        y1, x1, y2, x2 = tf.split(positive_rois, 4, axis=1)
        gy1, gx1, gy2, gx2 = tf.split(assigned_boxes, 4, axis=1)
        gh, gw = gy2 - gy1, gx2 - gx1
        crop_boxes = tf.concat([(y1 - gy1) / gh, (x1 - gx1) / gw, (y2 - gy1) / gh, (x2 - gx1) / gw], axis=1)
    masks = tf.image.crop_and_resize(masks, crop_boxes, tf.range(tf.shape(crop_boxes)[0]), mask_shape)
    return tf.round(tf.squeeze(masks, -1))
