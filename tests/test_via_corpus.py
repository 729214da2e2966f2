"""read_via / ViaDataset over every real VIA file in ../shared/via_corpus (or $FACEMASK_VIA_CORPUS);
skipped with the reason when absent, failed under FACEMASK_REQUIRE_ALL=1 (see conftest.py)."""

import json
import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from mrcnn.data import ViaDataset, read_via
from mrcnn.data.via import ViaFormatError

CORPUS = Path(
    os.environ.get("FACEMASK_VIA_CORPUS") or Path(__file__).resolve().parents[1].parent / "shared" / "via_corpus"
)
pytestmark = pytest.mark.needs("via_corpus")
VIA3_FILE = "16_vital-ultrasound_echo_via3_project.json"
# Known-degenerate annotation: a 3-point polygon on one line (zero area).
DEGENERATE = {"31_Jotanator_115CellCount_val_tiny.json"}


def test_corpus_folder_present() -> None:
    assert CORPUS.is_dir(), f"VIA corpus folder missing: {CORPUS}"
    assert len(list(CORPUS.glob("*.json"))) == 36


def _corpus_files() -> list[str]:
    if not CORPUS.is_dir():  # fail loudly via a parameter that cannot load
        return ["<missing corpus folder>"]
    return sorted(p.name for p in CORPUS.glob("*.json"))


def _raw_counts(path: Path) -> tuple[int, int, str]:
    """(images, regions, version) computed straight from the json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data["_via_img_metadata"] if "_via_img_metadata" in data else data
    regions = sum(len(entry.get("regions") or []) for entry in entries.values())
    dict_regions = any(isinstance(e.get("regions"), dict) for e in entries.values())
    version = "1.x" if dict_regions and "_via_img_metadata" not in data else "2.x"
    return len(entries), regions, version


@pytest.mark.parametrize("name", [n for n in _corpus_files() if n != VIA3_FILE])
def test_corpus_file_loads(name: str) -> None:
    path = CORPUS / name
    assert path.is_file(), f"missing corpus file {path}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the corpus has no malformed regions
        via = read_via(path)
    images, regions, version = _raw_counts(path)
    assert len(via.images) == images > 0
    assert via.num_regions == regions
    assert via.version == version
    assert via.path == path


def test_via3_file_rejected() -> None:
    path = CORPUS / VIA3_FILE
    assert path.is_file(), f"missing corpus file {path}"
    with pytest.raises(ViaFormatError) as info:
        read_via(path)
    message = str(info.value)
    assert VIA3_FILE in message and "VIA 3" in message and "VIA 2" in message


def _fake_images(path: Path, image_dir: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data.get("_via_img_metadata", data)
    for entry in entries.values():
        name = entry["filename"]
        if name.startswith(("http://", "https://")):
            name = Path(urlparse(name).path).name
        target = image_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(target, format="PNG")


@pytest.mark.parametrize("name", [n for n in _corpus_files() if n != VIA3_FILE and n not in DEGENERATE])
def test_corpus_file_builds_dataset(name: str, tmp_path: Path) -> None:
    path = CORPUS / name
    _fake_images(path, tmp_path)
    images, regions, _ = _raw_counts(path)
    dataset = ViaDataset()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        report = dataset.load_via(path, tmp_path, single_class="object", verbose=False)
    dataset.prepare()
    kept = sum(len(info["regions"]) for info in dataset.image_info)
    assert kept + sum(report["skipped"].values()) == regions
    assert len(dataset) + len(report["dropped_images"]) == images
    assert dataset.class_names == ["BG", "object"]


def test_degenerate_polygon_is_reported(tmp_path: Path) -> None:
    name = next(iter(DEGENERATE))
    _fake_images(CORPUS / name, tmp_path)
    with pytest.raises(ValueError, match=r"image 'image.jpg', region 0.*zero area"):
        ViaDataset().load_via(CORPUS / name, tmp_path, single_class="cell", verbose=False)
