"""multiarch: doit tasks generated from multiarch.yaml (`doit list`, `doit build:<image>`)."""

import os

from multiarch.tasks.doit import exports, generate, session, state
from multiarch.tasks.report.reporter import for_manifest

# The manifest, and before doit reads its state: the workspace lock, SIGTERM as Ctrl-C, a
# killed run's builds stopped (tasks/doit/session.py).
RUN = session.open(os.path.dirname(os.path.abspath(__file__)))

DOIT_CONFIG = {
    "default_tasks": ["build"],
    "backend": state.BACKEND,  # each task's record committed when saved (tasks/doit/state.py)
    "dep_file": str(state.db_path(RUN.manifest.state_dir)),
    "par_type": "thread",
    # A failed platform does not stop its siblings or other images; what depends on it (its
    # list) is withheld, and the run exits non-zero. `--no-continue` stops at the first.
    "continue": True,
    "reporter": for_manifest(RUN.manifest),
}


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
