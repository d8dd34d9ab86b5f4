"""multiarch: doit tasks generated from multiarch.yaml (`doit list`, `doit build:<image>`)."""

import os
import sys

from doit import get_var, loader
from doit.globals import Globals
from multiarch.tasks.doit import cmdline, exports, generate, lock, state
from multiarch.tasks.doit.session import load_or_exit, manifest_path, settle
from multiarch.tasks.inputs import prefetch
from multiarch.tasks.report.reporter import for_manifest

INVOKED_IN = loader.initial_workdir or os.getcwd()
MANIFEST_PATH = manifest_path(get_var("manifest"), INVOKED_IN,
                              os.path.dirname(os.path.abspath(__file__)))
# A run that checks tasks forks a child first: it reads the manifest too, walks the contexts
# and asks about the outside bases on another core while this process reads the manifest
# and doit builds its tasks (tasks/prefetch.py).
COMMAND, TASK_NAMES = cmdline.read(sys.argv[1:])
EARLY = prefetch.Prefetch.start_early(MANIFEST_PATH, TASK_NAMES) if COMMAND == "run" else None
MANIFEST = load_or_exit(MANIFEST_PATH, INVOKED_IN)
# Before doit reads its state or checks a task: a second run on this workspace waits here.
WAITED = lock.hold_for_command(MANIFEST.state_dir)
PREFETCHED = prefetch.for_run(EARLY, MANIFEST, TASK_NAMES, WAITED) if COMMAND == "run" else None

RUN = generate.Run.of(MANIFEST, verify=get_var("verify", "1") not in ("0", "false", "no"),
                      prefetched=PREFETCHED)
settle()

DOIT_CONFIG = {
    "default_tasks": ["build"],
    "backend": "sqlite3",
    "dep_file": str(MANIFEST.state_dir / "doit.db"),
    "par_type": "thread",
    "reporter": for_manifest(MANIFEST),
}


def task_state():
    """No task: state committed per task, SIGTERM as Ctrl-C, a killed run's builds stopped."""
    state.commit_each_task(Globals.dep_manager)
    state.interrupt_on_sigterm()
    state.stop_leftover_builds(MANIFEST.state_dir)


def task_build():
    yield from generate.build_tasks(RUN)


def task_push():
    yield from generate.push_tasks(RUN)


def task_manifest():
    yield from generate.manifest_tasks(RUN)


def task_inspect():
    yield from generate.inspect_tasks(RUN)


def task_export():
    yield from exports.export_tasks(RUN)


def task_doctor():
    return generate.doctor_task(RUN)


def task_registries():
    return generate.registries_task(RUN)


def task_buildkitd():
    return generate.buildkitd_task(RUN)


def task_status():
    return generate.status_task(RUN)
