"""The build report: its model, its HTML, the doit reporter that writes it, build progress."""

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from doit.exceptions import TaskFailed
from multiarch.builders.engine import cli as run_module
from multiarch.builders.stages import build as build_stage
from multiarch.tasks.model.manifest import Image, Manifest
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.report import html as report_html
from multiarch.tasks.report import model as report
from multiarch.tasks.report.reporter import for_manifest, write_report

from tests.support.report_page import ReportPage

AMD64 = parse_platform("linux/amd64")
ARM64 = parse_platform("linux/arm64")
ARMV7 = parse_platform("linux/arm/v7")
D = {n: "sha256:" + str(n) * 64 for n in range(10)}


def image(tmp_path: Path, name: str, platforms=(AMD64, ARM64), **fields) -> Image:
    return Image(name=name, context=tmp_path, dockerfile=tmp_path / "Dockerfile",
                 repository=f"localhost:5000/{name}", tags=("v1",), platforms=platforms,
                 **fields)


def manifest(tmp_path: Path, *images: Image) -> Manifest:
    return Manifest(tmp_path / "multiarch.yaml", "localhost:5000", (AMD64, ARM64), images)


def ran(name, start, end, **values) -> report.TaskRun:
    return report.TaskRun(name, "ran", start, end, values)


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize(("build", "push", "state"), [
    ("built", "pushed", "pushed"),
    ("built", "not run", "built"),
    ("built", "up to date", "built"),
    ("cached", "cached", "cached"),
    ("up to date", "pushed", "pushed"),  # a wiped tag pushed again
    ("pushed", "not run", "pushed"),  # buildx: one task builds and pushes
    ("up to date", "up to date", "up to date"),
    ("built", "failed", "failed"),
    ("failed", "not run", "failed"),
    ("not run", "not run", "not run"),
])
def test_platform_state(build, push, state):
    assert report.platform_state(build, push) == state


def test_a_build_served_by_its_content_tag_and_its_push_are_cached():
    build = ran("build:demo:linux/amd64", 0, 1, source="registry")
    push = ran("push:demo:linux/amd64", 1, 1.1, digests={})
    assert report.task_state(build) == "cached"
    assert report.task_state(push, "manifest", build) == "cached"
    assert report.task_state(push, "manifest", ran("build:demo:linux/amd64", 0, 1,
                                                   source="build")) == "pushed"
    assert report.task_state(report.TaskRun("build:demo", "ran", 0, 1), "buildx") == "pushed"
    assert report.task_state(report.TaskRun("build:demo", "ran", 0, 1)) == "ran"
    assert report.task_state(report.TaskRun("x", "ignored")) == "not run"


@pytest.fixture
def two_images(tmp_path, monkeypatch) -> tuple[Manifest, dict]:
    """demo (manifest strategy, arm64 under QEMU) and web (buildx), with what a run did."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    demo = image(tmp_path, "demo")
    web = image(tmp_path, "web", platforms=(AMD64, ARMV7), method=Method(strategy="buildx"))
    runs = {run.name: run for run in [
        ran("registries", 0.0, 0.1),
        ran("build:demo:linux/amd64", 0.1, 2.1, source="build", image_id=D[1],
            input_digest=D[2], emulated=False),
        ran("build:demo:linux/arm64", 0.1, 5.1, source="build", image_id=D[3],
            input_digest=D[4], emulated=True, builder="arm-node"),
        ran("push:demo:linux/amd64", 2.1, 3.0,
            digests={"localhost:5000/demo:v1-amd64": D[5]}),
        report.TaskRun("push:demo:linux/arm64", "up to date",
                       values={"digests": {"localhost:5000/demo:v1-arm64": D[6]}}),
        ran("manifest:demo", 5.1, 6.0, lists={"localhost:5000/demo:v1": D[7]},
            children={"linux/amd64": f"localhost:5000/demo@{D[8]}"}),
        report.TaskRun("build:web", "failed", 0.2, 4.0),
    ]}
    return manifest(tmp_path, demo, web), runs


def test_report_cells(two_images):
    data = report.build_report(*two_images, "2026-01-01T00:00:00+00:00", 6.5, ["doit"])
    demo, web = data["images"]
    amd64, arm64 = demo["platforms"]
    assert amd64 == {
        "platform": "linux/amd64", "state": "pushed", "input_digest": D[2],
        "image_digest": D[5], "list_entry": D[8],
        "tags": {"localhost:5000/demo:v1-amd64": D[5]}, "builder": "default",
        "emulated": False, "duration": 2.9,
        "steps": {"build": {"task": "build:demo:linux/amd64", "state": "built", "start": 0.1,
                            "duration": 2.0},
                  "push": {"task": "push:demo:linux/amd64", "state": "pushed", "start": 2.1,
                           "duration": 0.9}},
    }
    assert (arm64["state"], arm64["builder"], arm64["emulated"], arm64["image_digest"]) == (
        "built", "arm-node", True, D[6])
    assert (demo["list_state"], demo["lists"]) == ("pushed", {"localhost:5000/demo:v1": D[7]})
    assert [(c["platform"], c["state"]) for c in web["platforms"]] == [
        ("linux/amd64", "failed"), ("linux/arm/v7", "failed")]
    assert web["list_state"] == "failed"


def test_report_tasks_and_summary(two_images):
    data = report.build_report(*two_images, "2026-01-01T00:00:00+00:00", 6.5)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert [t["name"] for t in data["tasks"]][:3] == [
        "registries", "build:demo:linux/amd64", "build:demo:linux/arm64"]
    assert tasks["push:demo:linux/arm64"]["builder"] == "arm-node"  # where it was built
    assert tasks["push:demo:linux/arm64"]["start"] is None
    assert data["summary"] == {
        "platforms": {"pushed": 1, "built": 1, "failed": 2}, "tasks_run": 6,
        "tasks_failed": ["build:web"], "qemu_seconds": 5.0, "qemu_builds": 1,
        "native_seconds": 2.0,
    }


def test_a_buildx_image_takes_its_one_task_for_every_platform(two_images):
    manifest_, runs = two_images
    runs["build:web"] = ran("build:web", 0.2, 4.0, lists={"localhost:5000/web:v1": D[9]},
                            strategy="buildx")
    web = report.build_report(manifest_, runs, "t", 6.5)["images"][1]
    assert (web["list_state"], web["lists"]) == ("pushed", {"localhost:5000/web:v1": D[9]})
    assert [(c["state"], c["duration"], list(c["steps"])) for c in web["platforms"]] == [
        ("pushed", 3.8, ["build"])] * 2


def test_the_builder_defaults_to_docker_host(two_images, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    data = report.build_report(*two_images, "t", 1.0)
    assert [c["builder"] for c in data["images"][0]["platforms"]] == [
        "unix:///run/other.sock", "arm-node"]


def test_only_runs_that_touch_images_write_a_report():
    assert not report.runs_anything({"doctor": report.TaskRun("doctor")})
    assert not report.runs_anything({"status": report.TaskRun("status")})
    assert report.runs_anything({"build:a:linux/amd64": report.TaskRun("build:a:linux/amd64")})


# ---------------------------------------------------------------- the page


def test_html_table_has_a_cell_per_image_platform(two_images):
    page = ReportPage(report_html.render(report.build_report(*two_images, "t", 6.5)))
    assert page.rows == {
        "demo": [("linux/amd64", "pushed"), ("linux/arm64", "built")],
        "web": [("linux/amd64", "failed"), ("linux/arm/v7", "failed")],
    }
    assert page.dashes == 2  # demo has no arm/v7, web no arm64
    assert "script" not in page.tags and "link" not in page.tags  # nothing to fetch or run


def test_timeline_geometry(two_images):
    data = report.build_report(*two_images, "t", 6.5)
    rows, scale, span = report_html.bars(data)
    assert span == 6.5
    assert scale == (report_html.WIDTH - report_html.LABEL - report_html.RIGHT) / 6.5
    by_name = {row["task"]["name"]: row for row in rows}
    assert set(by_name) == {t["name"] for t in data["tasks"] if t["duration"] is not None}
    arm64 = by_name["build:demo:linux/arm64"]
    assert arm64["x"] == pytest.approx(report_html.LABEL + 0.1 * scale, abs=0.01)
    assert arm64["width"] == pytest.approx(5.0 * scale, abs=0.01)
    assert [row["y"] for row in rows] == sorted(row["y"] for row in rows)  # a row each
    page = ReportPage(report_html.render(data))
    assert len(page.bars) == len(rows) and all(bar["width"] > 0 for bar in page.bars)
    emulated = [bar for bar in page.bars if bar.get("stroke") == report_html.QEMU_COLOUR]
    assert len(emulated) == 1


def test_an_instant_task_still_gets_a_visible_bar():
    task = {"name": "registries", "state": "ran", "start": 0.0, "duration": 0.0,
            "builder": "default", "emulated": None}
    rows, _, _ = report_html.bars({"wall_seconds": 100.0, "tasks": [task]})
    assert rows[0]["width"] == 2.0


def test_every_value_is_escaped(two_images):
    data = report.build_report(*two_images, "t", 6.5)
    hostile = '<script>alert("x")</script>'
    data["manifest"] = data["command"] = None
    data["manifest"], data["command"] = hostile, ["doit", hostile]
    data["tasks"][0]["builder"] = hostile
    data["tasks"][0]["name"] = hostile
    data["images"][0]["platforms"][0]["builder"] = hostile
    data["images"][0]["lists"] = {hostile: hostile}
    text = report_html.render(data)
    assert "<script" not in text
    assert text.count("&lt;script&gt;") >= 6


def test_nothing_ran_says_so(two_images):
    manifest_, runs = two_images
    quiet = {name: replace(run, outcome="up to date", start=None, end=None)
             for name, run in runs.items()}
    data = report.build_report(manifest_, quiet, "t", 0.3)
    assert {c["state"] for i in data["images"] for c in i["platforms"]} == {"up to date"}
    assert "Nothing ran" in report_html.render(data)


def test_write_report_is_atomic_and_leaves_no_temp_files(tmp_path, two_images):
    data = report.build_report(*two_images, "t", 6.5)
    json_path, html_path = write_report(data, tmp_path / ".multiarch")
    assert json.loads(json_path.read_text()) == data
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / ".multiarch").iterdir()) == [
        "report.html", "report.json"]


# ---------------------------------------------------------------- the reporter inside doit


def doit_namespace(manifest_: Manifest, fail: str | None) -> dict:
    demo = manifest_.images[0]

    def action(name, values):
        def act():
            return TaskFailed("boom") if name == fail else values
        return act

    def ran_before(task, values):
        return bool(values)  # up to date once it has succeeded

    def platform_tasks(stage):
        for platform in demo.platforms:
            name = f"{stage}:demo:{platform}"
            values = ({"source": "build", "input_digest": D[1], "image_id": D[2],
                       "emulated": platform != AMD64} if stage == "build"
                      else {"digests": {demo.platform_refs(platform)[0]: D[3]}})
            yield {"name": f"demo:{platform}", "actions": [action(name, values)],
                   "uptodate": [ran_before],
                   "task_dep": [f"build:demo:{platform}"] if stage == "push" else []}

    return {
        "DOIT_CONFIG": {"reporter": for_manifest(manifest_), "backend": "json",
                        "dep_file": str(manifest_.state_dir / "doit.json"),
                        "par_type": "thread"},
        "task_build": lambda: platform_tasks("build"),
        "task_push": lambda: platform_tasks("push"),
        "task_manifest": lambda: {"basename": "manifest:demo", "uptodate": [ran_before],
                                  "actions": [action("manifest:demo", {"lists": {"r": D[4]}})],
                                  "task_dep": [f"push:demo:{p}" for p in demo.platforms]},
        "task_doctor": lambda: {"actions": [lambda: None]},
    }


def run_doit(manifest_: Manifest, *args: str, fail: str | None = None) -> int:
    loader = ModuleTaskLoader(doit_namespace(manifest_, fail))
    return DoitMain(loader).run(list(args))


def test_the_reporter_writes_the_report_of_each_run(tmp_path):
    manifest_ = manifest(tmp_path, image(tmp_path, "demo"))
    (tmp_path / ".multiarch").mkdir()
    path = manifest_.state_dir / "report.json"
    console = tmp_path / "console.txt"
    assert run_doit(manifest_, "-n", "2", "-o", str(console), "push", "manifest:demo") == 0
    out = console.read_text()
    assert ".  build:demo:linux/arm64" in out  # doit's own console lines stay
    assert f"report: {manifest_.state_dir / 'report.html'} (2 pushed; QEMU " in out
    first = json.loads(path.read_text())
    cells = first["images"][0]["platforms"]
    assert [(c["state"], c["emulated"], c["image_digest"]) for c in cells] == [
        ("pushed", False, D[3]), ("pushed", True, D[3])]
    assert first["images"][0]["lists"] == {"r": D[4]}
    assert first["summary"]["tasks_run"] == 5
    bars = [t for t in first["tasks"] if t["duration"] is not None]
    assert all(t["start"] >= 0 for t in bars)

    assert run_doit(manifest_, "push", "manifest:demo") == 0
    second = json.loads(path.read_text())
    assert [c["state"] for c in second["images"][0]["platforms"]] == ["up to date"] * 2
    assert second["images"][0]["platforms"][1]["input_digest"] == D[1]  # saved by doit
    assert second["summary"]["tasks_run"] == 0

    assert run_doit(manifest_, "doctor") == 0  # not a build: the last report stays
    assert json.loads(path.read_text()) == second


def test_the_reporter_reports_a_failure(tmp_path):
    manifest_ = manifest(tmp_path, image(tmp_path, "demo"))
    (tmp_path / ".multiarch").mkdir()
    assert run_doit(manifest_, "push", fail="build:demo:linux/arm64") != 0
    data = json.loads((manifest_.state_dir / "report.json").read_text())
    states = {t["name"]: t["state"] for t in data["tasks"]}
    assert states["build:demo:linux/arm64"] == "failed"
    assert data["summary"]["tasks_failed"] == ["build:demo:linux/arm64"]
    assert data["images"][0]["platforms"][1]["state"] == "failed"


# ---------------------------------------------------------------- logs and progress


def test_every_line_is_prefixed_and_a_silent_command_says_it_is_alive(monkeypatch, capsys):
    monkeypatch.setenv(run_module.PROGRESS_ENV, "0.3")
    script = "import time; print('one', flush=True); time.sleep(1.2); print('two')"
    output = run_module.run([sys.executable, "-c", script], "sleep", prefix="[demo linux/arm64] ",
                            progress="building")
    assert output == "one\ntwo\n"
    lines = capsys.readouterr().out.splitlines()
    assert all(line.startswith("[demo linux/arm64] ") for line in lines)
    ticks = [line for line in lines if "still building" in line]
    assert 2 <= len(ticks) <= 4
    assert all(re.fullmatch(r"\[demo linux/arm64\] still building \(\d+ s\)", t) for t in ticks)
    assert lines.index(ticks[0]) > lines.index("[demo linux/arm64] one")
    assert lines[-1] == "[demo linux/arm64] two"


def test_no_progress_without_asking(monkeypatch, capsys):
    monkeypatch.setenv(run_module.PROGRESS_ENV, "0.1")
    run_module.run([sys.executable, "-c", "import time; time.sleep(0.4)"], "sleep", prefix="[x] ")
    assert "still" not in capsys.readouterr().out
    monkeypatch.setenv(run_module.PROGRESS_ENV, "soon")
    assert run_module.progress_seconds() == run_module.PROGRESS_SECONDS


@pytest.mark.parametrize(("platform", "arch", "emulated"), [
    (AMD64, "amd64", False), (parse_platform("linux/386"), "amd64", False),
    (ARM64, "amd64", True), (ARMV7, "amd64", True), (ARM64, "arm64", False),
    (AMD64, "arm64", True),
])
def test_is_emulated(platform, arch, emulated):
    assert build_stage.is_emulated(platform, arch) is emulated
