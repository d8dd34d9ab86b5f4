"""doit's console reporter, plus `.multiarch/report.json` and `report.html` after each run.

doit calls a reporter from the main process in both parallel modes (in thread mode also
from worker threads, hence the lock); it sees every task's outcome and, at the end, what
each task's steps returned (``task.values``), which is all the report needs.
"""

import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from doit.exceptions import UnmetDependency
from doit.reporter import ConsoleReporter

from ..model.files import write_atomic
from ..model.manifest import Manifest
from . import html as report_html
from . import model as report


class BuildReporter(ConsoleReporter):
    """ConsoleReporter that also times each task and writes the build report."""

    desc = "console output, and .multiarch/report.json and report.html"
    manifest: Manifest | None = None  # set by for_manifest

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        self._lock = threading.Lock()
        self._clock = time.monotonic()
        self._started = datetime.now(UTC)
        self._runs: dict = {}  # name -> report.TaskRun
        self._tasks: dict = {}

    def _now(self) -> float:
        return time.monotonic() - self._clock

    def _record(self, task, **changes) -> None:
        """Note what happened to ``task``; group tasks (`build`, `push`, ...: no actions of
        their own) and private ones are left out. ``has_subtask``, not ``task.actions``: doit
        makes a task's action objects on first access, ~5 µs each, and a no-op runs none."""
        if task.has_subtask or task.name.startswith("_"):
            return
        with self._lock:
            self._tasks[task.name] = task
            run = self._runs.get(task.name)
            if run is None:
                run = self._runs[task.name] = report.TaskRun(task.name)
            for name, value in changes.items():
                setattr(run, name, value)

    def get_status(self, task):
        super().get_status(task)
        self._record(task)

    def execute_task(self, task):
        super().execute_task(task)
        self._record(task, start=self._now())

    def add_success(self, task):
        super().add_success(task)
        self._record(task, outcome="ran", end=self._now())

    def add_failure(self, task, fail):
        super().add_failure(task, fail)
        with self._lock:
            started = task.name in self._runs and self._runs[task.name].start is not None
        blocked = isinstance(fail, UnmetDependency) and not started
        self._record(task, outcome="not run" if blocked else "failed",
                     **({"end": self._now()} if started else {}))

    def skip_uptodate(self, task):
        super().skip_uptodate(task)
        self._record(task, outcome="up to date")

    def skip_ignore(self, task):
        super().skip_ignore(task)
        self._record(task, outcome="ignored")

    def complete_run(self):
        super().complete_run()
        if self.manifest is None or not report.runs_anything(self._runs):
            return
        for name, run in self._runs.items():
            values = getattr(self._tasks[name], "values", None) or {}
            run.values = {k: v for k, v in values.items() if not k.startswith("_")}
        data = report.build_report(self.manifest, self._runs, self._started.isoformat(
            timespec="seconds"), self._now(), ["doit", *sys.argv[1:]])
        try:
            paths = write_report(data, self.manifest.state_dir)
        except OSError as err:
            self.write(f"multiarch: report not written: {err}\n")
            return
        facts = data["summary"]
        counts = ", ".join(f"{n} {state}" for state, n in facts["platforms"].items())
        self.write(f"report: {paths[1]} ({counts or 'nothing'}; QEMU "
                   f"{report_html.seconds(facts['qemu_seconds'])})\n")
        for outcome, label in (("failed", "failed"),
                               ("not run", "not run (what they need failed or was not reached)")):
            names = sorted(name for name, run in self._runs.items() if run.outcome == outcome)
            if names:
                self.write(f"{label}: {', '.join(names)}\n")


def for_manifest(manifest: Manifest) -> type[BuildReporter]:
    """The reporter class for DOIT_CONFIG (doit instantiates it), bound to ``manifest``.

    The module's own class, not one made here: `doit -P process` hands the class to its
    workers, and spawn/forkserver workers (macOS, Python 3.14) unpickle it by name.
    """
    BuildReporter.manifest = manifest
    return BuildReporter


def write_report(data: dict, state_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.html, each atomically: a reader never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = state_dir / "report.json", state_dir / "report.html"
    write_atomic(json_path, json.dumps(data) + "\n")  # indent would triple its cost
    write_atomic(html_path, report_html.render(data))
    return json_path, html_path
