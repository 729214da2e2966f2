"""Shared by the bench scripts: machine facts and writing one section of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

from mrcnn.runs import write_text

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine_facts() -> dict[str, str]:
    """CPU, core count, load and library versions, for the header of a results section."""
    cpu, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16") if f in flags) or "no avx2"
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        isa += f", ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}"
    facts = {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": cpu,
        "isa": isa,  # the CPU's flags that decide oneDNN's kernels (and any cap on them)
        "python": platform.python_version(),
        "load": " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
    }
    # Installed versions from package metadata, not imports: importing torch after TensorFlow segfaults.
    distributions = metadata.packages_distributions()  # import name -> distributions (tensorflow_cpu, ...)
    for module in ("tensorflow", "keras", "numpy", "albumentations", "torch", "torchvision"):
        for dist in distributions.get(module, ()):
            facts[module] = metadata.version(dist)
            break
    return facts


def write_section(title: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``title`` section (a ``## ...`` line); keep the rest of the file."""
    body = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    section = text.rstrip() + "\n"
    pattern = re.compile(rf"^{re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(body):
        body = pattern.sub(lambda _m: section + "\n", body, count=1).rstrip() + "\n"
    else:
        body = body.rstrip() + "\n\n" + section
    write_text(path, body)


def publish(title: str, text: str, write: bool = True) -> None:
    """Print a bench's section and, unless ``write`` is False (``--no-write``), put it in RESULTS.md."""
    print("\n" + text)
    if write:
        write_section(title, text)
        print(f"wrote the section to {RESULTS}")
