"""facemask.inference.detect_images (the detection stream inference.py writes from) with a real tiny
model: files in order, an unreadable file skipped with its reason, a batch whose detect() fails
retried image by image so only the image that fails is lost; and PredictionWriter's files."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image


class FailsOnWide:
    """The real model, except that detect() raises for any batch holding an image wider than tall."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def detect(self, images):
        if any(im.shape[1] > im.shape[0] for im in images):
            raise RuntimeError("wide image")
        return self.model.detect(images)


def test_stream_skips_only_what_fails_and_the_writer_records_it(tmp_path):
    import facemask
    from facemask.inference import detect_images, find_images, output_names
    from facemask.predictions import PredictionWriter
    from mrcnn.model import MaskRCNN

    config = facemask.FaceMaskTinyConfig(IMAGES_PER_GPU=2, DETECTION_MIN_CONFIDENCE=0.0)
    model = FailsOnWide(MaskRCNN("inference", config, str(tmp_path / "logs")))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (96, 64), "b.png": (80, 120), "c.png": (64, 64)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(photos / name)
    (photos / "d.jpg").write_bytes(b"not a jpeg")
    root, files = find_images(str(photos))
    items = list(detect_images(model, root, files, output_names(root, files, "png"), batch_size=2))

    assert [i.file_name for i in items] == ["a.png", "b.png", "c.png", "d.jpg"]
    a, b, c, d = items
    assert a.error is None and a.result["masks"].shape[:2] == (96, 64) and a.detect_s > 0  # retried alone
    assert b.error == "detection failed: RuntimeError: wide image" and b.result is None
    assert c.error is None and c.result is not None
    assert d.error and "d.jpg" in d.error and d.image is None

    writer = PredictionWriter(str(tmp_path / "out"), ["BG", *config.CLASS_NAMES])
    for item in items:
        writer.add(item)
    paths = writer.close({"weights": "random"}, root=root, name="photos")
    predictions = json.loads(open(paths["predictions"]).read())
    assert [im["file_name"] for im in predictions["images"]] == ["a.png", "c.png"]
    assert writer.processed == 2 and [p.name for p, _ in writer.skipped] == ["b.png", "d.jpg"]
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()
    assert open(paths["skipped_txt"]).read().count("\n") == 2
