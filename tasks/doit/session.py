"""A doit run's session, opened by dodo.py in one call: the manifest, the workspace lock,
SIGTERM as Ctrl-C, a killed run's builds stopped, and the state backend checked."""

import atexit
import contextlib
import fnmatch
import gc
import importlib.metadata
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from doit import get_var, loader

from ..inputs.ahead import WalksAhead, check_order
from ..model.errors import ManifestError
from ..model.manifest import Image, Manifest, load_manifest
from . import cmdline, lock, names, state
from .generate import Run

DEFAULT_MANIFEST = "multiarch.yaml"
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
    manifest = load_or_exit(manifest_path(get_var("manifest"), invoked_in, dodo_dir), invoked_in)
    records = _records(line, manifest)
    lock.hold_for_command(manifest.state_dir, line.command)
    if line.command == "run":
        interrupt_on_sigterm()
        stop_leftover_builds(manifest.state_dir)
        settle()
    verify = get_var("verify", "1") not in ("0", "false", "no")
    run = Run.of(manifest, verify=verify, records=records)
    if line.command == "run":
        run.inputs.ahead = walks_ahead(manifest, list(line.args), run.probe)
    return run


def walks_ahead(manifest: Manifest, task_names: list[str], probe) -> WalksAhead | None:
    """The contexts the tasks asked for will check, walked in a worker while doit loads, and
    their outside bases asked of ``probe`` there (tasks.inputs.ahead); None when they need
    none or there is no second CPU to walk on."""
    images = images_to_check(manifest, task_names)
    if not images or (os.cpu_count() or 1) < 2:
        return None
    return WalksAhead(check_order(images), manifest.state_dir, (manifest.state_dir,), probe)


def images_to_check(manifest: Manifest, task_names: list[str]) -> list[Image]:
    """The images whose inputs the tasks named (none: the default, every image) will check,
    with the images they are built FROM. A name this cannot place (a wildcard across the
    ':') leaves its images to be walked when checked."""
    wanted: set[str] = set()
    for task_name in task_names or [names.BUILD]:
        group, _, rest = task_name.partition(":")
        if group in names.NO_INPUTS:
            continue
        pattern = rest.partition(":")[0]
        wanted.update(image.name for image in manifest.images
                      if not pattern or fnmatch.fnmatchcase(image.name, pattern))
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name not in found:
            found.add(name)
            wanted.update(manifest.image(name).depends_on)
    return [image for image in manifest.images if image.name in found]


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
    Path(manifest.state_dir).mkdir(exist_ok=True)
    return manifest


def _exit(message: str) -> NoReturn:
    print(f"multiarch: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, so doit stops as on Ctrl-C and keeps what finished.

    Only the main thread may set a handler; elsewhere (doit driven from a thread) nothing changes.
    A worker forked by `doit -P process` gets SIGTERM's default back: doit terminates its
    workers with SIGTERM and means them to stop, not to unwind like the run itself.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def leftover_builds(state_dir: Path) -> list[int]:
    """Docker CLI processes whose command line names a file in ``state_dir`` (`--iidfile`,
    `--metadata-file`): with the workspace lock held, only a killed run can have left them."""
    prefix = (str(state_dir) + os.sep).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]).startswith(b"docker") and any(
                arg.startswith(prefix) for arg in argv[1:]):
            found.append(int(entry.name))
    return found


def stop_leftover_builds(state_dir: Path, timeout: float = 10.0) -> list[int]:
    """Stop the `docker build`s a killed run left behind, before this run builds again.

    They would race this run's identical builds in BuildKit (which can fail one with
    "snapshot ... does not exist") and could tag an older image after this run's. SIGTERM
    makes the CLI cancel its build; what still runs after ``timeout`` s gets SIGKILL. Only
    on Linux (/proc). Returns the pids stopped.
    """
    if not os.path.isdir("/proc"):
        return []
    stopped = pids = leftover_builds(state_dir)
    if stopped:
        sys.stderr.write(f"multiarch: stopping {len(stopped)} docker processes a killed run "
                         f"left (pids {', '.join(map(str, stopped))})\n")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            break
    return stopped


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
