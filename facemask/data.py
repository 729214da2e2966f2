"""Face-mask classes and the VIA-backed dataset (Matterport's ``DIR/train``, ``DIR/val`` layout).

Class modes (``--classes``):

* ``single``: one class, ``mask`` (every region, whatever its attributes);
* ``subtypes``: ``surgical``, ``n95``, ``cloth``, ``fashion`` from the region attribute ``mask_type``
  (aliases such as ``KN95`` and case/space variants are normalised);
* ``auto``: the class names found under the class attribute of the training json, sorted;
* a list such as ``helmet,vest,goggles``: exactly those classes.

The class attribute is ``--class-key`` (default: ``mask_type`` for subtypes, else the attribute the
VIA reader detects: the only region attribute of the file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mrcnn.data.via_dataset import ViaDataset, normalize_class_name

CLASS_KEY = "mask_type"
SINGLE_CLASS = "mask"
SUBTYPES = ("surgical", "n95", "cloth", "fashion")
CLASS_MODES = ("single", "subtypes", "auto")
#: Spellings seen in real face-mask annotations, mapped onto our subtypes.
ALIASES = {
    "kn95": "n95",
    "ffp2": "n95",
    "respirator": "n95",
    "medical": "surgical",
    "procedure": "surgical",
    "fabric": "cloth",
    "homemade": "cloth",
    "designer": "fashion",
}
ANNOTATION_FILE = "via_region_data.json"


@dataclass(frozen=True)
class ClassSpec:
    """Which classes a run has and where they come from.

    ``mode``: single | subtypes | auto | list; ``names``: the class names without BG (empty for
    ``auto`` until the training json is read); ``key``: the region attribute (None = detected).
    """

    mode: str
    names: tuple[str, ...]
    key: str | None = None

    @classmethod
    def parse(cls, classes: str | None, class_key: str | None = None) -> ClassSpec:
        """``--classes`` text (``single``, ``subtypes``, ``auto`` or ``a,b,c``) and ``--class-key``."""
        text = (classes or "single").strip()
        if text == "single":
            return cls("single", (SINGLE_CLASS,), None)
        if text == "subtypes":
            return cls("subtypes", SUBTYPES, class_key or CLASS_KEY)
        if text == "auto":
            return cls("auto", (), class_key)
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        if not names:
            raise ValueError(
                f"--classes {classes!r}: give single, subtypes, auto or a comma-separated "
                "list of class names (e.g. helmet,vest,goggles)"
            )
        normalised = [normalize_class_name(n) for n in names]
        if len(set(normalised)) != len(normalised):
            raise ValueError(f"--classes {classes!r} names a class twice (case and spaces are ignored)")
        if "bg" in normalised:
            raise ValueError("--classes: 'BG' is the background class and cannot be a class name")
        return cls("list", names, class_key)

    @classmethod
    def from_saved(cls, values: dict) -> ClassSpec | None:
        """The spec a run recorded in its ``config.json`` (CLASSES, CLASS_NAMES, CLASS_KEY), if any."""
        mode, names = values.get("CLASSES"), values.get("CLASS_NAMES")
        if not mode:
            return None
        if not names:  # runs from before CLASS_NAMES was recorded
            return cls.parse(mode if mode in CLASS_MODES else "single", values.get("CLASS_KEY"))
        return cls(mode, tuple(names), values.get("CLASS_KEY"))

    @property
    def num_classes(self) -> int:
        """Classes including BG (needs ``names``: resolve ``auto`` with :meth:`with_names` first)."""
        return 1 + len(self.names)

    def with_names(self, names) -> ClassSpec:
        return ClassSpec(self.mode, tuple(names), self.key)

    def to_config(self) -> dict:
        """The config values that record it (saved in the run's config.json)."""
        return {
            "CLASSES": self.mode,
            "CLASS_NAMES": list(self.names),
            "CLASS_KEY": self.key,
            "NUM_CLASSES": self.num_classes,
        }

    def same_classes(self, other: ClassSpec) -> bool:
        return [normalize_class_name(n) for n in self.names] == [normalize_class_name(n) for n in other.names]


class FaceMaskDataset(ViaDataset):
    """VIA-annotated photos in Matterport's layout: ``DIR/train``, ``DIR/val``, each with a
    ``via_region_data.json``."""

    def load_facemask(
        self,
        dataset_dir: str,
        subset: str,
        classes: str | ClassSpec = "single",
        *,
        class_key: str | None = None,
        annotation_file: str = ANNOTATION_FILE,
        unknown: str = "error",
        verbose: bool = True,
    ) -> dict:
        spec = classes if isinstance(classes, ClassSpec) else ClassSpec.parse(classes, class_key)
        folder = os.path.join(dataset_dir, subset)
        json_path = os.path.join(folder, annotation_file)
        if not os.path.isfile(json_path):
            raise FileNotFoundError(
                f"no annotations at {json_path}: expected {dataset_dir}/{subset}/{annotation_file} "
                "(VIA json + images, Matterport's layout). Generate demo data with "
                "`python -m facemask.synthetic --out datasets/facemask`."
            )
        if spec.mode == "single":
            return self.load_via(json_path, source="facemask", single_class=SINGLE_CLASS, verbose=verbose)
        return self.load_via(
            json_path,
            source="facemask",
            class_key=spec.key,
            class_names=list(spec.names) or None,
            aliases=ALIASES if spec.mode == "subtypes" else None,
            unknown=unknown,
            verbose=verbose,
        )

    def class_spec(self, spec: ClassSpec) -> ClassSpec:
        """``spec`` with the names this dataset loaded (how ``auto`` learns its classes)."""
        return spec.with_names(info["name"] for info in self.class_info[1:])


def load_dataset(
    dataset_dir: str,
    subset: str,
    classes: str | ClassSpec = "single",
    verbose: bool = True,
    *,
    class_key: str | None = None,
    unknown: str = "error",
) -> FaceMaskDataset:
    """A prepared :class:`FaceMaskDataset` for ``subset``."""
    dataset = FaceMaskDataset()
    dataset.load_facemask(dataset_dir, subset, classes, class_key=class_key, unknown=unknown, verbose=verbose)
    dataset.prepare()
    return dataset
