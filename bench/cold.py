"""Issue #17's bench: cold multiarch builds against `docker buildx bake --push`.

Generates a repository like the issue's: N images x linux/amd64 + linux/arm64, each FROM
busybox:1.35 with a context of 5 small files and one short RUN loop (so QEMU counts), and an
equivalent docker-bake.hcl. Every cold run gets a repository of its own: a unique token (in a
file of each context and in an ARG/LABEL, so neither BuildKit's cache nor multiarch's content
tags answer) and a registry namespace of its own. Interleaved, --repeat rounds of:

  a  multiarch cold, as typed: python3 -m doit -f <repo>/dodo.py build manifest=<gen>/multiarch.yaml
  b  docker buildx bake -f <gen>/docker-bake.hcl --push (the default engine's docker driver;
     beyond 20 images, bakes of 20 targets in turn: moby/buildkit#4327)
  c  after each of a and b, one image changed (one byte of one context file), warm
  classic (with --classic) multiarch cold on the classic engine (multiarch only)

and prints each figure's wall times (median, min, max), the ratios multiarch/bake and the
commands it ran.

    python bench/cold.py [--images 12] [--repeat 3] [--jobs N] [--classic] [--out DIR]
                         [--remove-images]
"""

import argparse
import json
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import yaml
from generate import BASE, REGISTRY, TAG, bake_file, file_text, image_name, manifest
from routed import remove_images
from run import BAKE_BATCH, DODO, ENV, HISTORY_TIMEOUT, Bench, figure, platform_builds

PLATFORMS = ["linux/amd64", "linux/arm64"]
CLASSIC = "unix:///run/multiarch-classic/docker.sock"
FILES = 5  # small files per context, the token's file among them
DOCKERFILE = """FROM {base}
ARG TOKEN={token}
LABEL bench.token=$TOKEN
COPY . /data/
RUN for i in 1 2 3; do echo $i >> /log; done
"""
ATTEMPTS = 3  # a failed run is noted and run again (cold: on a fresh token)
INDEX = ", ".join(["application/vnd.oci.image.index.v1+json",
                   "application/vnd.docker.distribution.manifest.list.v2+json"])
TOOLS = {"multiarch": "a multiarch", "bake": "b bake", "classic": "classic multiarch"}
# BuildKit's plain progress: a step's header, and its CACHED line.
RUN_STEP = re.compile(r"^#(\d+) \[[^\]]*\] RUN ", re.M)
CACHED = re.compile(r"^#(\d+) CACHED", re.M)
BAKES = re.compile(r"^\[bake\] (\d+) builds of \d+ images", re.M)  # multiarch's bakes


def write_repo(folder: Path, images: int, namespace: str, token: str, seed: int) -> list[str]:
    """One tool run's repository: contexts, multiarch.yaml and docker-bake.hcl; its images."""
    rng = random.Random(seed)  # the same files in every run; only the token differs
    names = [image_name(index) for index in range(images)]
    for name in names:
        context = folder / name
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(DOCKERFILE.format(base=BASE, token=token))
        (context / "token.txt").write_text(f"{token}\n")
        for number in range(FILES - 1):
            (context / f"f{number}.txt").write_bytes(file_text(rng))
    document = manifest(names, PLATFORMS, namespace)
    (folder / "multiarch.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (folder / "docker-bake.hcl").write_text(bake_file(folder, names, PLATFORMS, namespace))
    return names


def change_one_byte(path: Path) -> None:
    """Replace one hex digit of ``path`` with a letter no run wrote before."""
    text, rng = path.read_bytes(), random.SystemRandom()
    at = rng.choice([i for i, byte in enumerate(text) if byte != ord("\n")])
    path.write_bytes(text[:at] + rng.choice(b"ghijklmnopqrstuvwxyz").to_bytes() + text[at + 1:])


def listed_platforms(namespace: str, name: str) -> set[str]:
    """The platforms of the list ``<namespace>/<name>:v1`` in the registry (no attestations)."""
    url = f"http://{REGISTRY}/v2/{namespace}/{name}/manifests/{TAG}"
    request = urllib.request.Request(url, headers={"Accept": INDEX})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            document = json.load(response)
    except OSError:
        return set()
    platforms = (entry.get("platform", {}) for entry in document.get("manifests", []))
    return {"/".join(filter(None, (p.get("os"), p.get("architecture"), p.get("variant"))))
            for p in platforms if p.get("os") != "unknown"}


def run_steps(output: str) -> tuple[int, int]:
    """(RUN steps, RUN steps CACHED) in BuildKit's plain progress, as bake prints it."""
    steps = set(RUN_STEP.findall(output))
    return len(steps), len(steps & set(CACHED.findall(output)))


def report_tasks(folder: Path) -> dict[str, list[float]]:
    """Durations of the platform builds, pushes and lists in the run's report.json."""
    path = folder / ".multiarch" / "report.json"
    durations: dict[str, list[float]] = {"build": [], "push": [], "manifest": []}
    if path.exists():
        for task in json.loads(path.read_text())["tasks"]:
            if task["kind"] in durations and task["duration"] is not None:  # a baked build:
                durations[task["kind"]].append(task.get("build_seconds", task["duration"]))
    return durations


def first_error(output: str) -> str:
    errors = re.findall(r"^(?:ERROR|error|FAILED)[: ](.*)", output, re.M) or ["?"]
    return errors[0].strip()[:100]


class Cold:
    """The rounds: fresh repositories, runs through bench/run.py's Bench, the figures."""

    def __init__(self, args: argparse.Namespace, bake_builder: list[str]):
        self.args, self.bake_builder = args, bake_builder
        self.bench = Bench(args.out, args.jobs or 1)
        self.times: dict[str, list[float]] = {}
        self.failures: dict[str, list[str]] = {}
        self.reports: dict[str, list[dict[str, list[float]]]] = {}
        self.loads: list[float] = []
        self.namespaces: list[str] = []
        self.history_timeouts = 0
        self.serial = 0

    def argvs(self, tool: str, folder: Path, names: list[str]) -> list[list[str]]:
        """The commands of one run, in turn: bake's targets in bakes of BAKE_BATCH, which is
        how bake gets through more than ~50 targets here (moby/buildkit#4327)."""
        if tool == "bake":
            bake = ["docker", "buildx", "bake", *self.bake_builder,
                    "-f", str(folder / "docker-bake.hcl"), "--push"]
            if len(names) <= BAKE_BATCH:
                return [bake]
            return [[*bake, *names[i:i + BAKE_BATCH]] for i in range(0, len(names), BAKE_BATCH)]
        return [self.argv(tool, folder)]

    def argv(self, tool: str, folder: Path) -> list[str]:
        jobs = ["-n", str(self.args.jobs)] if self.args.jobs else []
        argv = [sys.executable, "-m", "doit", "-f", str(DODO), *jobs, "build",
                f"manifest={folder / 'multiarch.yaml'}"]
        return ["env", f"DOCKER_HOST={CLASSIC}", *argv] if tool == "classic" else argv

    def fresh(self, tool: str) -> tuple[Path, str, list[str]]:
        token = uuid.uuid4().hex[:12]
        namespace = f"cold-{tool}-{token}"
        self.serial += 1
        folder = self.args.out / f"{self.serial:02d}-{tool}"
        names = write_repo(folder, self.args.images, namespace, token, self.args.seed)
        self.namespaces.append(namespace)
        return folder, namespace, names

    def timed(self, label: str, argvs: list[list[str]]) -> tuple[float, str, bool]:
        """One run of its commands in turn, printed as it goes; (wall time, output, whether
        every command succeeded)."""
        load = os.getloadavg()[0]
        self.loads.append(load)
        elapsed, output, ok = 0.0, "", True
        for argv in argvs:
            print(f"  $ {shlex.join(argv)}", flush=True)
            seconds, said = self.bench.run(label, argv, fail_ok=True)
            elapsed, output = elapsed + seconds, output + said
            ok = self.bench.returncode == 0
            if not ok:
                break
        if "DeadlineExceeded" in output:
            self.history_timeouts += 1
            why = " (BuildKit history, moby/buildkit#4327)" if HISTORY_TIMEOUT in output else ""
            print(f"  ! {label}: DeadlineExceeded in the output{why}")
        if not ok:
            self.failures.setdefault(label, []).append(first_error(output))
            print(f"  ! {label}: exit {self.bench.returncode} after {elapsed:.1f} s:"
                  f" {self.failures[label][-1]}", flush=True)
        return elapsed, output, ok

    def note(self, label: str, elapsed: float, folder: Path, tool: str, output: str,
             expected: set[str]) -> None:
        self.times.setdefault(label, []).append(elapsed)
        if tool == "bake":
            steps, cached = run_steps(output)
            what = f"RUN steps {steps}, cached {cached}"
        else:
            ran = platform_builds(output)
            reused = output.count("] reusing ")
            bakes = BAKES.findall(output)
            what = (f"{len(ran)} platform builds ({sum(map(int, bakes))} in {len(bakes)}"
                    f" bakes), {reused} served by content tags")
            if ran != expected:
                what += (f"; ! expected {len(expected)}: missing {sorted(expected - ran)[:3]},"
                         f" unexpected {sorted(ran - expected)[:3]}")
            tasks = report_tasks(folder)
            self.reports.setdefault(label, []).append(tasks)
            what += "; " + ", ".join(f"{len(v)} {k} {statistics.median(v):.2f} s"
                                     for k, v in tasks.items() if v)
        print(f"  {label}: {elapsed:.1f} s ({what}; load {self.loads[-1]:.1f})", flush=True)

    def cold(self, tool: str) -> tuple[Path, list[str]]:
        """A cold run on a fresh repository (a failed one is run again on another)."""
        label = f"{TOOLS[tool]} cold"
        for _ in range(ATTEMPTS):
            folder, namespace, names = self.fresh(tool)
            elapsed, output, ok = self.timed(label, self.argvs(tool, folder, names))
            if ok:
                expected = {f"build:{name}:{p}" for name in names for p in PLATFORMS}
                self.note(label, elapsed, folder, tool, output, expected)
                missing = [name for name in names
                           if listed_platforms(namespace, name) != set(PLATFORMS)]
                if missing:
                    print(f"  ! {label}: lists without both platforms: {missing[:4]}")
                return folder, names
        sys.exit(f"FAILED: {label} failed {ATTEMPTS} times: {self.failures[label]}")

    def changed(self, tool: str, folder: Path, names: list[str]) -> None:
        """One byte of one image's context changed, then the same tool again (warm)."""
        label = f"{TOOLS[tool]} one image changed"
        name = names[len(names) // 2]
        change_one_byte(folder / name / "f0.txt")
        for _ in range(ATTEMPTS):
            elapsed, output, ok = self.timed(label, self.argvs(tool, folder, names))
            if ok:
                expected = {f"build:{name}:{p}" for p in PLATFORMS}
                self.note(label, elapsed, folder, tool, output, expected)
                return
        sys.exit(f"FAILED: {label} failed {ATTEMPTS} times: {self.failures[label]}")

    def rounds(self) -> None:
        tools = ["multiarch", "bake", *(["classic"] if self.args.classic else [])]
        for number in range(self.args.repeat):
            order = tools[number % len(tools):] + tools[:number % len(tools)]
            print(f"== round {number + 1}/{self.args.repeat}: {', '.join(order)}", flush=True)
            for tool in order:
                folder, names = self.cold(tool)
                if tool != "classic":
                    self.changed(tool, folder, names)

    def figures(self) -> list[str]:
        rows, medians = [], {}
        for label, values in self.times.items():
            medians[label] = statistics.median(values)
            rows.append(f"{label:<36} {figure(values)}")
        for what, ours, theirs in (("cold", "a multiarch cold", "b bake cold"),
                                   ("one image changed", "a multiarch one image changed",
                                    "b bake one image changed"),
                                   ("classic cold / bake cold", "classic multiarch cold",
                                    "b bake cold"),
                                   ("classic cold / multiarch cold", "classic multiarch cold",
                                    "a multiarch cold")):
            if ours in medians and theirs in medians:
                pairs = zip(self.times[ours], self.times[theirs], strict=False)
                rounds = ", ".join(f"{a / b:.2f}x" for a, b in pairs)
                label = what if "/" in what else f"multiarch / bake, {what}"
                rows.append(f"{label:<36} {medians[ours] / medians[theirs]:.2f}x (medians;"
                            f" per round {rounds})")
        for label, reports in self.reports.items():
            if "cold" in label:
                parts = []
                for kind, noun in (("build", "builds"), ("push", "pushes"), ("manifest", "lists")):
                    values = [v for report in reports for v in report[kind]]
                    if values:
                        parts.append(f"{len(values) // len(reports)} {noun} of"
                                     f" {statistics.median(values):.2f} s")
                rows.append(f"{label + ' report':<36} {', '.join(parts)} (medians)")
        failed = "; ".join(f"{label}: {len(v)} ({', '.join(sorted(set(v)))})"
                           for label, v in self.failures.items()) or "none"
        rows.append(f"{'failed runs (run again)':<36} {failed}")
        rows.append(f"{'DeadlineExceeded in outputs':<36} {self.history_timeouts}")
        rows.append(f"{'crashed doit runs (retried)':<36} {len(self.bench.crashes)}")
        rows.append(f"{'load average (1 min) at run starts':<36} {min(self.loads):.1f}"
                    f"-{max(self.loads):.1f}")
        return rows


def engine_facts() -> tuple[str, list[str]]:
    """A line on the default engine and bake's builder; ``--builder default`` when the
    current builder is not the default engine's docker driver."""
    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, env=ENV).stdout.strip()

    version = out("docker", "version", "--format", "{{.Server.Version}}")
    if not version:
        sys.exit("FAILED: the default engine does not answer (scripts/engine up)")
    store = out("docker", "info", "--format", "{{json .DriverStatus}}")
    store = "containerd store" if "containerd" in store else "classic store"
    buildx = out("docker", "buildx", "version").split(" ")[1:2] or ["?"]
    driver = re.findall(r"^Driver:\s*(\S+)", out("docker", "buildx", "inspect"), re.M)
    extra = [] if driver == ["docker"] else ["--builder", "default"]
    line = (f"engine: dockerd {version} ({store}), buildx {buildx[0]}, current builder's"
            f" driver {driver[0] if driver else '?'}"
            f"{'; bake gets --builder default' if extra else ''}")
    return line, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--out", type=Path, help="where the repositories and logs go"
                        " (default: a new folder under /tmp)")
    parser.add_argument("--jobs", type=int, help="doit -n (default: none, as typed)")
    parser.add_argument("--classic", action="store_true",
                        help=f"also multiarch cold on the classic engine ({CLASSIC})")
    parser.add_argument("--seed", type=int, default=17)
    # Untagging is slow on a containerd store that holds thousands of images (minutes).
    parser.add_argument("--remove-images", action="store_true",
                        help="afterwards, remove the runs' images from the engines")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 1000 or args.repeat < 1:
        parser.error("--images must be 1..1000 and --repeat at least 1")
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="bench-cold-"))).resolve()
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    facts, bake_builder = engine_facts()
    version = subprocess.run(["git", "-C", str(DODO.parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
    started, start = datetime.now().astimezone(), time.perf_counter()
    header = (f"{started:%Y-%m-%d %H:%M %Z}, project at {version or '?'}, {os.cpu_count()} cores,"
              f" python {sys.version.split()[0]}, load average at start"
              f" {os.getloadavg()[0]:.1f}\n{facts}\n{args.images} images x"
              f" {','.join(PLATFORMS)}, FROM {BASE}, {FILES} files and one RUN loop each;"
              f" doit {'-n ' + str(args.jobs) if args.jobs else 'as typed (no -n)'};"
              f" {args.repeat} rounds; out {args.out}")
    print(header, flush=True)
    cold = Cold(args, bake_builder)
    cold.rounds()
    took = time.perf_counter() - start
    print(f"\n== figures ({header.splitlines()[0]})\n{header.splitlines()[2]}")
    print("\n".join(cold.figures()))
    print(f"load average at the end {os.getloadavg()[0]:.1f}; the rounds took {took:.0f} s")
    print(f"\n== commands (each cold run on its own repository under {args.out})")
    for label, command in cold.bench.commands.items():
        print(f"{label:<36} {shlex.join(command)}")
    if not args.remove_images:
        print("the runs' images stay in the engines: docker images"
              f" --filter=reference='{REGISTRY}/cold-*/*' (or pass --remove-images)")
        return 0
    hosts = [None, *([CLASSIC] if args.classic else [])]
    start = time.perf_counter()
    remove_images(cold.namespaces, hosts)
    print(f"removed the runs' images from the engines in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
