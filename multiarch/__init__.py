"""multiarch: a declarative build matrix for multi-architecture container images, on doit.

The code lives in two packages, ``multiarch.tasks`` (the manifest model, input digests, doit
tasks, reports) and ``multiarch.builders`` (what talks to engines and registries). An installed
distribution has them inside this package; in the repository they are the top-level folders
``tasks/`` and ``builders/``, beside this one, so the repository's root is searched too.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "tasks").is_dir():
    __path__.append(str(_HERE.parent))
