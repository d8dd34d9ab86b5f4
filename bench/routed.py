"""Issue #7's benchmark: one 10-image manifest, arm64 under QEMU on one engine vs routed.

Every run is a cold build: each image's RUN step echoes a token unique to the run, so no
BuildKit cache or content tag answers. Four configurations, each with `doit -n 1` and `-n 4`:
both platforms on the default engine, or amd64 there and arm64 on the node engine
(`builders: {linux/arm64: {docker_host: <node>}}`). Prints the median wall time of each.

    python bench/routed.py [--repeat 2] [--images 10] [--work 30000]
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

DODO = Path(__file__).resolve().parent.parent / "dodo.py"
NODE = "unix:///run/multiarch-node/docker.sock"
PLATFORMS = ["linux/amd64", "linux/arm64"]
DOCKERFILE = """FROM busybox:1.35
RUN echo {token} > /id && i=0 && while [ $i -lt {work} ]; do i=$((i+1)); done
"""


def write_project(folder: Path, images: int, work: int, node: str | None) -> str:
    """A fresh manifest of ``images`` tiny images in a namespace of its own; returns it."""
    namespace = f"bench-routed-{uuid.uuid4().hex[:10]}"
    table = {}
    for index in range(images):
        name = f"img{index:02d}"
        (folder / name).mkdir(parents=True)
        (folder / name / "Dockerfile").write_text(
            DOCKERFILE.format(token=f"{namespace}-{name}", work=work))
        table[name] = {"context": name, "repository": f"{namespace}/{name}"}
    document = {"version": 1, "registry": "localhost:5000", "platforms": PLATFORMS,
                "images": table}
    if node:
        document["builders"] = {"linux/arm64": {"docker_host": node, "emulate": False}}
    (folder / "multiarch.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return namespace


def remove_images(namespaces: list[str], hosts: list[str | None]) -> None:
    """Drop the runs' images from each engine (their own namespaces only)."""
    filters = [f"--filter=reference=localhost:5000/{namespace}/*" for namespace in namespaces]
    for host in hosts:
        env = {"DOCKER_HOST": host} if host else {}
        mine = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", *filters],
            capture_output=True, text=True, env={**os.environ, **env}).stdout.split()
        if mine:
            subprocess.run(["docker", "image", "rm", "-f", *mine], capture_output=True,
                           env={**os.environ, **env})


def timed_build(folder: Path, jobs: int) -> tuple[float, list[str]]:
    argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-n", str(jobs), "build",
            f"manifest={folder / 'multiarch.yaml'}"]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    (folder / "bench.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"FAILED: {shlex.join(argv)} exited {result.returncode}; see {folder}/bench.log")
    return elapsed, argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--work", type=int, default=30000, help="shell loop iterations per RUN")
    parser.add_argument("--node", default=NODE, help="the engine arm64 is routed to")
    args = parser.parse_args()

    configs = [(label, node, jobs) for label, node in (("one engine, arm64 under QEMU", None),
                                                       ("routed: arm64 on the node", args.node))
               for jobs in (1, 4)]
    times: dict[tuple[str, int], list[float]] = {(label, jobs): [] for label, _, jobs in configs}
    example, namespaces = None, []
    with tempfile.TemporaryDirectory(prefix="bench-routed-") as tmp:
        for repeat in range(args.repeat):
            for label, node, jobs in configs:
                folder = Path(tmp) / f"{repeat}-{len(times[(label, jobs)])}-{jobs}-{bool(node)}"
                namespace = write_project(folder, args.images, args.work, node)
                elapsed, argv = timed_build(folder, jobs)
                example = example or argv
                times[(label, jobs)].append(elapsed)
                print(f"  {label}, -n {jobs}: {elapsed:.1f} s", flush=True)
                namespaces.append(namespace)
    print(f"\n{args.images} images x {len(PLATFORMS)} platforms, cold builds, "
          f"medians of {args.repeat}:\n")
    print("| configuration | `-n 1` | `-n 4` |")
    print("| --- | --- | --- |")
    for label in dict.fromkeys(label for label, _, _ in configs):
        cells = [f"{statistics.median(times[(label, jobs)]):.1f} s" for jobs in (1, 4)]
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"\ncommand (per configuration): {shlex.join(example)}", flush=True)
    # Afterwards, not between runs: untagging on the containerd store takes minutes under load.
    remove_images(namespaces, [None, args.node])
    return 0


if __name__ == "__main__":
    sys.exit(main())
