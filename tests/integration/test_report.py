"""`.multiarch/report.json` and `report.html` of real runs, checked against the registry
(skopeo), doit's own output, and what headless Chromium draws."""

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.integration.test_demo import platform_of
from tests.support.chromium import dump_dom, screenshot
from tests.support.report_page import ReportPage

PLATFORMS = ["linux/amd64", "linux/arm64"]
SUFFIX = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def registry_digest(ref: str) -> str:
    """The digest the registry serves ``ref`` under: sha256 of its raw manifest (skopeo)."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, check=True, timeout=60).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def list_entries(ref: str) -> dict[str, str]:
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, check=True, timeout=60).stdout
    return {platform_of(e): e["digest"] for e in json.loads(raw)["manifests"]}


def ran_tasks(stdout: str) -> set[str]:
    """The tasks doit says it ran (`.  name`)."""
    return {line[3:] for line in stdout.splitlines() if line.startswith(".  ")}


def two_images(workspace) -> dict[str, str]:
    token = workspace.namespace
    workspace.context("small", f"FROM busybox:1.35\nRUN echo small-{token} > /id\n")
    # Silent for ~3 s under QEMU: long enough for a progress line at a 1 s interval.
    workspace.context("slow", f"FROM busybox:1.35\nRUN sleep 3 && echo slow-{token} > /id\n")
    workspace.manifest({"small": {"context": "small", "tags": ["v1"]},
                        "slow": {"context": "slow", "tags": ["v1", "stable"]}}, PLATFORMS)
    return {name: f"localhost:5000/{workspace.namespace}/{name}" for name in ("small", "slow")}


def test_report_of_a_build_and_of_the_no_op_after_it(workspace, monkeypatch, tmp_path):
    repositories = two_images(workspace)
    monkeypatch.setenv("MULTIARCH_PROGRESS_SECONDS", "1")
    first = workspace.doit("-n", "2", "build")
    report_dir = workspace.path / ".multiarch"
    report = json.loads((report_dir / "report.json").read_text())
    first_page = tmp_path / "first.html"
    shutil.copy(report_dir / "report.html", first_page)

    # Logs: every line of a build's step names its image and platform, in one bake as in a
    # `docker build` of each; the silent RUN says it is alive.
    steps = [re.match(r"(\[[^\]]+\] )#\d+ \[(small|slow) (linux/(?:amd64|arm64)) ", line)
             for line in first.stdout.splitlines()]
    assert [step for step in steps if step]
    for step in filter(None, steps):
        assert step.group(1) == f"[{step.group(2)} {step.group(3)}] ", step.string
    assert re.search(r"^\[(bake|slow linux/(amd64|arm64))\] still building \(\d+ s\)$",
                     first.stdout, re.MULTILINE), first.stdout[-3000:]

    builder = os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT") or "default"
    assert sorted(image["name"] for image in report["images"]) == ["slow", "small"]
    for image in report["images"]:
        repository = repositories[image["name"]]
        assert image["repository"] == repository
        assert image["list_state"] == "pushed"
        tags = ["v1"] if image["name"] == "small" else ["v1", "stable"]
        assert image["lists"] == {f"{repository}:{tag}": registry_digest(f"{repository}:{tag}")
                                  for tag in tags}
        entries = list_entries(f"{repository}:v1")
        assert [cell["platform"] for cell in image["platforms"]] == PLATFORMS
        for cell in image["platforms"]:
            platform = cell["platform"]
            assert cell["state"] == "pushed", cell
            refs = [f"{repository}:{tag}-{SUFFIX[platform]}" for tag in tags]
            content_tag = f"{repository}:cache-{cell['input_digest'][7:39]}"
            assert set(cell["tags"]) == {*refs, content_tag}
            for ref, digest in cell["tags"].items():
                assert digest == registry_digest(ref), ref
            assert cell["image_digest"] == cell["tags"][refs[0]]
            assert cell["list_entry"] == entries[platform]
            assert cell["builder"] == builder
            assert cell["emulated"] is (platform == "linux/arm64")  # this host is amd64
            build, push = cell["steps"]["build"], cell["steps"]["push"]
            assert (build["state"], push["state"]) == ("built", "pushed")
            assert build["duration"] >= 0 and push["duration"] > 0  # a baked build waits
            assert push["start"] >= build["start"] + build["duration"]  # push waits for build
            assert cell["duration"] == pytest.approx(build["duration"] + push["duration"],
                                                     abs=0.002)

    timed = {t["name"]: t for t in report["tasks"] if t["duration"] is not None}
    assert set(timed) == ran_tasks(first.stdout)
    assert report["summary"]["tasks_run"] == len(timed)
    assert report["summary"]["platforms"] == {"pushed": 4}
    emulated = [t for t in timed.values() if t["kind"] == "build" and t["emulated"]]
    assert {t["name"] for t in emulated} == {"build:small:linux/arm64", "build:slow:linux/arm64"}
    assert report["summary"]["qemu_seconds"] == pytest.approx(  # a baked build's own steps
        sum(t.get("build_seconds", t["duration"]) for t in emulated), abs=0.002)
    assert all(t.get("build_seconds", 1) > 0 for t in emulated)
    for image in ("small", "slow"):
        pushes = [timed[f"push:{image}:{p}"] for p in PLATFORMS]
        ended = max(t["start"] + t["duration"] for t in pushes)  # each rounded to 1 ms
        assert timed[f"manifest:{image}"]["start"] >= ended - 0.002
    assert report["wall_seconds"] > 0 and all(
        t["start"] + t["duration"] <= report["wall_seconds"] + 0.01 for t in timed.values())

    # A no-op: every platform up to date, with the same digests; nothing ran.
    second = workspace.doit("build")
    again = json.loads((report_dir / "report.json").read_text())
    assert ran_tasks(second.stdout) == set()
    assert again["summary"]["tasks_run"] == 0
    assert again["summary"]["platforms"] == {"up to date": 4}
    for before, after in zip(report["images"], again["images"], strict=True):
        assert after["list_state"] == "up to date"
        assert after["lists"] == before["lists"]
        for old, new in zip(before["platforms"], after["platforms"], strict=True):
            assert new["state"] == "up to date"
            assert (new["image_digest"], new["input_digest"], new["tags"]) == (
                old["image_digest"], old["input_digest"], old["tags"])

    # What Chromium draws of the first run, from the file alone.
    page = ReportPage(dump_dom(first_page))
    assert page.rows == {image: [(p, "pushed") for p in PLATFORMS] for image in repositories}
    assert sorted(bar["task"] for bar in page.bars) == sorted(timed)
    assert all(bar["width"] > 0 for bar in page.bars)
    assert "Nothing ran" in dump_dom(report_dir / "report.html")
    png = screenshot(first_page, tmp_path / "first.png")
    assert png.stat().st_size > 10_000  # a page with a table and bars, not a blank one


def test_report_of_a_buildx_image(workspace):
    """One `docker buildx build --push` per image: every platform shares its task and list."""
    workspace.context("bx", f"FROM busybox:1.35\nRUN echo bx-{workspace.namespace} > /id\n")
    workspace.manifest({"bx": {"context": "bx", "tags": ["v1"], "strategy": "buildx"}},
                       PLATFORMS)
    result = workspace.doit("build")
    report = json.loads((workspace.path / ".multiarch" / "report.json").read_text())
    [image] = report["images"]
    ref = f"localhost:5000/{workspace.namespace}/bx:v1"
    assert (image["strategy"], image["list_state"]) == ("buildx", "pushed")
    assert image["lists"] == {ref: registry_digest(ref)}
    task = next(t for t in report["tasks"] if t["name"] == "build:bx")
    assert task["state"] == "pushed" and task["duration"] > 0
    assert [(c["platform"], c["state"], c["duration"]) for c in image["platforms"]] == [
        (p, "pushed", task["duration"]) for p in PLATFORMS]
    assert re.search(r"^\[bx\] #\d+ ", result.stdout, re.MULTILINE)
