"""A doit run's session, opened by dodo.py in one call: the manifest, the workspace lock,
SIGTERM as Ctrl-C, a killed run's builds stopped, and the state backend checked."""

import atexit
import gc
import importlib.metadata
import os
import sys
from typing import NoReturn

from doit import get_var, loader

from ..model.errors import ManifestError
from ..model.manifest import Image, Manifest, load_manifest
from ..model.scaffold import make_state_dir
from . import cmdline, lock, names, processes, state
from .batch import Batches, planned
from .generate import Run

DEFAULT_MANIFEST = "multiarch.yaml"
# The groups whose tasks check builds, and so read contexts (`doit build`, `push:demo:…`).
GROUPS = frozenset({names.BUILD, names.PUSH, names.MANIFEST, names.EXPORT})
DISTRIBUTION = "multiarch"  # the installed project, whose entry points name the backend


def open(dodo_dir: str, argv: list[str] | None = None) -> Run:
    """What dodo.py needs for this doit run, and the run's side effects, in order.

    The command line (``argv``, by default sys.argv's) is read once: every command but the
    read-only ones (`list`, `info`, ...) waits for the workspace lock; a command that runs
    tasks turns SIGTERM into Ctrl-C, first stops the docker builds a killed run left, and
    leaves what is loaded by then out of the cyclic GC's walks (``settle``).
    Exits with one line when the manifest is wrong or the state backend is not installed.
    """
    line = cmdline.read(sys.argv[1:] if argv is None else argv)
    invoked_in = loader.initial_workdir or os.getcwd()
    # doit's file loader sets initial_workdir; the `multiarch` command imports this module
    # instead, and then the dodo's own folder (the installed package) is no place to look.
    fallback = dodo_dir if loader.initial_workdir is not None else None
    manifest = load_or_exit(manifest_path(get_var("manifest"), invoked_in, fallback), invoked_in)
    records = _records(line, manifest)
    lock.hold_for_command(manifest.state_dir, line.command)
    if line.command == "run":
        processes.interrupt_on_sigterm()
        processes.stop_leftover_builds(manifest.state_dir)
        settle()
    verify = get_var("verify", "1") not in ("0", "false", "no")
    run = Run.of(manifest, verify=verify, records=records)
    if line.command == "run":
        run.inputs.look_ahead(checked_images(manifest, line.args))
        atexit.register(run.inputs.close)
        run.batches = Batches(manifest, run.inputs, planned(manifest, line.args, line.single),
                              records, line.always)
    return run


def checked_images(manifest: Manifest, args: tuple[str, ...]) -> list[Image]:
    """The images whose builds a `doit run` of ``args`` checks, bases first: those its
    tasks name and what they build FROM; every image for a whole group or the defaults;
    none for tasks that read no context (`doctor`, `registries`, ...)."""
    known = {image.name for image in manifest.images}
    named = []
    for arg in args or (names.BUILD,):
        kind, image, _ = names.kind(arg)
        if kind in GROUPS and image is None:
            named = [image.name for image in manifest.images]
            break
        if kind in GROUPS | {names.IMAGE} and image in known:
            named.append(image)
    order: dict[str, None] = {}

    def visit(name: str) -> None:
        if name not in order:
            for base in manifest.image(name).depends_on:
                visit(base)
            order[name] = None

    for name in named:
        visit(name)
    return [manifest.image(name) for name in order]


def settle() -> None:
    """Move what is loaded (modules, the manifest) out of the cyclic GC's sight, now and at
    exit.

    It all lives as long as the run, yet each full collection of a no-op's checks walks it
    again, and the interpreter's last one at exit walks every task and checker only to free
    what exiting frees anyway: ~80 ms of a 100-image no-op here (bench/run.py). Nothing of
    ours needs a finalizer then: files are written under ``with``, doit closes its database.
    """
    gc.freeze()
    atexit.register(gc.freeze)


def _records(line: cmdline.CommandLine, manifest: Manifest) -> str | None:
    """The state DB whose records the tasks void before they run (state.void_record): the
    file our backend keeps, or None under a backend the user chose (`--backend json`)."""
    if (line.backend or state.BACKEND) != state.BACKEND:
        return None
    if not _backend_installed():
        _exit(f"doit's state backend {state.BACKEND!r} is not installed (an entry point of "
              f"the {DISTRIBUTION} project): run `pip install -e .` in the project, or pass "
              "--backend sqlite3")
    return os.path.abspath(line.dep_file or state.db_path(manifest.state_dir))


def _backend_installed() -> bool:
    """Whether doit will find state.BACKEND: without it doit would fail with a traceback."""
    try:
        points = importlib.metadata.distribution(DISTRIBUTION).entry_points
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(point.group == "doit.BACKEND" and point.name == state.BACKEND
               for point in points)


def manifest_path(given: str | None, invoked_in: str, dodo_dir: str | None) -> str:
    """The absolute path of the manifest a user means.

    doit changes into the dodo's folder before loading it, so a relative `manifest=`
    is taken from where doit was invoked. Without one, the invocation folder's
    multiarch.yaml wins (a monorepo using a shared dodo.py), then the dodo's own.
    """
    if given:
        return os.path.normpath(os.path.join(invoked_in, given))
    for folder in (invoked_in, dodo_dir) if dodo_dir else (invoked_in,):
        candidate = os.path.join(folder, DEFAULT_MANIFEST)
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return os.path.join(invoked_in, DEFAULT_MANIFEST)


def shown_path(path: str, invoked_in: str) -> str:
    """``path`` as the user would write it from where they invoked doit."""
    relative = os.path.relpath(path, invoked_in)
    return path if relative.startswith("..") else relative


def load_or_exit(path: str, invoked_in: str) -> Manifest:
    """Load the manifest; on a problem print `file: key: message` and exit 2, no traceback.

    Read with libyaml where PyYAML has it (``quick``); a manifest that fails is read again
    by the pure-Python parser, whose words for invalid YAML are the ones we show.
    """
    shown = shown_path(path, invoked_in)
    try:
        try:
            manifest = load_manifest(path, shown, quick=True)
        except ManifestError:
            manifest = load_manifest(path, shown)
    except ManifestError as err:
        _exit(str(err))
    make_state_dir(manifest.state_dir)
    return manifest


def _exit(message: str) -> NoReturn:
    print(f"multiarch: {message}", file=sys.stderr)
    raise SystemExit(2) from None
