"""Find the multiarch.yaml a doit run means, and load it or stop with one line."""

import atexit
import gc
import os
import sys
from pathlib import Path

from ..model.errors import ManifestError
from ..model.manifest import Manifest, load_manifest

DEFAULT_MANIFEST = "multiarch.yaml"


def manifest_path(given: str | None, invoked_in: str, dodo_dir: str) -> str:
    """The absolute path of the manifest a user means.

    doit changes into the dodo's folder before loading it, so a relative `manifest=`
    is taken from where doit was invoked. Without one, the invocation folder's
    multiarch.yaml wins (a monorepo using a shared dodo.py), then the dodo's own.
    """
    if given:
        return os.path.normpath(os.path.join(invoked_in, given))
    for folder in (invoked_in, dodo_dir):
        candidate = os.path.join(folder, DEFAULT_MANIFEST)
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return os.path.join(invoked_in, DEFAULT_MANIFEST)


def shown_path(path: str, invoked_in: str) -> str:
    """``path`` as the user would write it from where they invoked doit."""
    relative = os.path.relpath(path, invoked_in)
    return path if relative.startswith("..") else relative


def load_or_exit(path: str, invoked_in: str) -> Manifest:
    """Load the manifest; on a problem print `file: key: message` and exit 2, no traceback."""
    try:
        manifest = load_manifest(path, shown_path(path, invoked_in))
    except ManifestError as err:
        print(f"multiarch: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    Path(manifest.state_dir).mkdir(exist_ok=True)
    return manifest


def settle() -> None:
    """Move what is loaded so far (modules, the manifest) out of the cyclic GC's sight.

    It lives as long as the run; without this a no-op build's one full collection walks it
    all again (~15-25 ms of a ~300 ms run). At exit the rest is frozen too: the interpreter's
    last collection would walk the run's doit tasks and checkers (~30,000 objects on a
    100-image no-op, ~8 ms) only to free memory that exiting frees anyway. Nothing of ours
    needs a finalizer then: files are written under ``with``, doit closes its database.
    """
    gc.freeze()
    atexit.register(gc.freeze)
