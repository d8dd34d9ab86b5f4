"""Issue #7's benchmark: one 10-image manifest, arm64 under QEMU on one engine vs routed.

Every run is a cold build: each image's RUN step echoes a token unique to the run, so no
BuildKit cache or content tag answers. Four configurations, each with `doit -n 1` and `-n 4`:
both platforms on the default engine, or amd64 there and arm64 on the node engine
(`builders: {linux/arm64: {docker_host: <node>}}`). Prints the median wall time of each.
`--ssh` adds arm64 routed to the same node engine through sshd (tests/support/sshd.py, at
ssh://builder@10.77.0.3), so the difference to the unix-socket route is ssh's own cost; it is
printed per routed build too. Once with a new ssh connection per session (the docker CLI and
SDK open one per HTTP connection), once with ssh's ControlMaster/ControlPersist.

`--tcp` adds arm64 on a dockerd 20.10 behind `--tlsverify` at tcp://10.77.0.4:2376
(tests/support/tcpnode.py, started and stopped here; needs root, like the tests), and the
transport's cost per build against the unix-socket node (also dockerd 20.10).

    python bench/routed.py [--repeat 2] [--images 10] [--work 30000] [--ssh] [--tcp]
"""

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DODO = ROOT / "dodo.py"
NODE = "unix:///run/multiarch-node/docker.sock"
PLATFORMS = ["linux/amd64", "linux/arm64"]
ROUTED = "routed: arm64 on the node"
OVER_SSH = f"{ROUTED} over ssh"
OVER_TCP = "routed: arm64 on a tcp:// node (mutual TLS)"
TLS_FILES: dict[str, object] = {}  # docker_host → its certificates (tcpnode.Certificates)
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
    tls = TLS_FILES.get(node)
    if tls:  # copied beside the manifest, as a user would keep them
        (folder / "certs").mkdir()
        for source, name in ((tls.ca, "ca.pem"), (tls.cert, "cert.pem"), (tls.key, "key.pem")):
            shutil.copyfile(source, folder / "certs" / name)
        document["builders"]["linux/arm64"]["tls"] = {
            "ca": "certs/ca.pem", "cert": "certs/cert.pem", "key": "certs/key.pem"}
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


def timed_build(folder: Path, jobs: int, env: dict[str, str] | None = None
                ) -> tuple[float, list[str]]:
    argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-n", str(jobs), "build",
            f"manifest={folder / 'multiarch.yaml'}"]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=folder, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
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
    parser.add_argument("--ssh", action="store_true",
                        help="also route arm64 to the node through sshd in a namespace")
    parser.add_argument("--tcp", action="store_true",
                        help="also route arm64 to a tcp:// node with mutual TLS")
    args = parser.parse_args()

    routes = [("one engine, arm64 under QEMU", None, {}), (ROUTED, args.node, {})]
    ssh = None
    if args.ssh:
        sys.path.insert(0, str(ROOT))
        from tests.support.sshd import SSH_NODE, SshNode

        ssh = SshNode(Path(tempfile.mkdtemp(prefix="multiarch-ssh-"))).setup()
        ssh.start()
        routes += [(OVER_SSH, SSH_NODE, ssh.env),
                   (f"{OVER_SSH}, ControlPersist", SSH_NODE, ssh.env_multiplexed)]
    tcp = None
    if args.tcp:
        sys.path.insert(0, str(ROOT))
        from tests.support.tcpnode import CLASSIC_DOCKERD, HOST, TcpNode

        tcp = TcpNode(Path(tempfile.mkdtemp(prefix="multiarch-tcp-")), CLASSIC_DOCKERD).up()
        TLS_FILES[HOST] = tcp.certs
        routes.append((OVER_TCP, HOST, {}))
    try:
        return run(args, routes)
    finally:
        if ssh:
            ssh.down()
            shutil.rmtree(ssh.folder, ignore_errors=True)
        if tcp:
            tcp.down()
            shutil.rmtree(tcp.folder, ignore_errors=True)


def run(args, routes: list[tuple[str, str | None, dict[str, str]]]) -> int:
    """Each configuration ``--repeat`` times, interleaved; the table of medians."""
    configs = [(label, node, env, jobs) for label, node, env in routes for jobs in (1, 4)]
    times: dict[tuple[str, int], list[float]] = {(c[0], c[3]): [] for c in configs}
    example, namespaces = None, []
    # Afterwards, not between runs: untagging on the containerd store takes minutes under load.
    with tempfile.TemporaryDirectory(prefix="bench-routed-") as tmp:
        try:
            for repeat in range(args.repeat):
                for index, (label, node, env, jobs) in enumerate(configs):
                    folder = Path(tmp) / f"{repeat}-{index}"
                    namespaces.append(write_project(folder, args.images, args.work, node))
                    elapsed, argv = timed_build(folder, jobs, env)
                    example = example or argv
                    times[(label, jobs)].append(elapsed)
                    print(f"  {label}, -n {jobs}: {elapsed:.1f} s", flush=True)
        finally:
            remove_images(namespaces, [None, args.node])
    print(f"\n{args.images} images x {len(PLATFORMS)} platforms, cold builds, "
          f"medians of {args.repeat}:\n")
    print("| configuration | `-n 1` | `-n 4` |")
    print("| --- | --- | --- |")
    for label in dict.fromkeys(config[0] for config in configs):
        cells = [f"{statistics.median(times[(label, jobs)]):.1f} s" for jobs in (1, 4)]
        print(f"| {label} | {' | '.join(cells)} |")
    for label in dict.fromkeys(c[0] for c in configs if c[0].startswith(OVER_SSH)
                               or c[0] == OVER_TCP):
        for jobs in (1, 4):
            extra = (statistics.median(times[(label, jobs)])
                     - statistics.median(times[(ROUTED, jobs)]))
            how = "tcp+TLS" if label == OVER_TCP else "ssh"
            print(f"{label}, -n {jobs}: {how} costs {extra:+.1f} s in all, "
                  f"{extra / args.images:+.2f} s per routed (arm64) build")
    print(f"\ncommand (per configuration): {shlex.join(example)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
