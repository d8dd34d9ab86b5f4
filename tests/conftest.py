"""Shared test support: the engine check and a workspace that runs the real `doit`."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from multiarch.builders.engine.api import unix_get

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "localhost:5000"
DOIT_COMMANDS = {"run", "list", "info", "forget", "clean", "ignore"}

# A suite started as a background job of a script (`.ci/run ... &`) inherits SIGINT ignored,
# and so would every doit the tests start: their Ctrl-C (SIGINT) would do nothing. Ignored
# is inherited, a handler is not: with one here, children start with SIGINT as a terminal
# leaves it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def engine_missing() -> str | None:
    """Why the integration tests cannot run here, or None when everything is up."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True)
    if info.returncode != 0:
        said = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers ({said})"
    try:
        urllib.request.urlopen("http://127.0.0.1:5000/v2/", timeout=5).close()
    except OSError as err:
        return f"no registry on 127.0.0.1:5000 ({err})"
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "no QEMU binfmt handler for aarch64"
    return None


def skip_or_fail(reason: str | None, tests: str = "integration tests") -> None:
    """Skip on a laptop when ``reason`` says a part of the test world is missing; in CI
    (CI=true) that is a failure."""
    if reason:
        message = f"{reason}: run `scripts/engine up` first"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tests} cannot run in CI: {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def engine():
    """Skip without an engine on a laptop; in CI (CI=true) a missing engine is a failure."""
    skip_or_fail(engine_missing())


def podman_missing() -> str | None:
    """Why the Podman tests cannot run here, or None when `podman info` answers."""
    if shutil.which("podman") is None:
        return "no podman on PATH"
    info = subprocess.run(["podman", "info", "--format", "{{.Store.GraphDriverName}}"],
                          capture_output=True, text=True)
    if info.returncode != 0:
        return f"podman does not answer ({(info.stderr.strip().splitlines() or ['?'])[-1]})"
    return None


@pytest.fixture(scope="session")
def podman(engine):
    """Podman beside the engine and registry; in CI its absence is a failure, as Docker's."""
    skip_or_fail(podman_missing(), "Podman tests")


def engine_answers() -> bool:
    """Whether the default engine answers `GET /_ping` (a few ms; `docker info` is ~100)."""
    try:
        return unix_get("unix:///var/run/docker.sock", "/_ping", timeout=10)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


@pytest.fixture(autouse=True)
def engine_survives(request):
    """After a test that used the engine: if dockerd died meanwhile, start it again for the
    tests after it, and fail this one saying so (instead of every later test failing).

    dockerd 26.1 with the containerd store can panic in its HTTP fallback while pushing to a
    loopback registry that drops connections (moby/moby#48818), as the fault tests' proxy
    does; it was seen once in this suite's CI runs.
    """
    yield
    if "engine" not in request.fixturenames or engine_answers():
        return
    up = subprocess.run([str(ROOT / "scripts" / "engine"), "up"], capture_output=True,
                        text=True, timeout=300)
    again = "restarted it" if up.returncode == 0 and engine_answers() else \
        f"did not restart it: {(up.stderr or up.stdout)[-300:]}"
    pytest.fail("the engine died during this test (see /opt/multiarch-engine/run/dockerd.log); "
                f"`scripts/engine up` {again}", pytrace=False)


# scripts/engine's second engine: Docker 20.10 with the classic image store.
CLASSIC = "unix:///run/multiarch-classic/docker.sock"
ENGINES = {"docker26": None, "docker20": CLASSIC}


# scripts/engine's fourth engine: Docker 26 as installed on Linux, with the classic image store.
STOCK = "unix:///run/multiarch-stock/docker.sock"


def require_classic(host: str = CLASSIC, name: str = "classic") -> None:
    """Skip without the classic engine (or ``name`` at ``host``) on a laptop; in CI (CI=true)
    its absence is a failure."""
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, env=engine_env(host))
    if info.returncode != 0:
        said = (info.stderr.strip().splitlines() or ["no output"])[-1]
        skip_or_fail(f"no {name} engine answers at {host} ({said})")


@pytest.fixture(params=list(ENGINES))
def engine_host(request, engine) -> str | None:
    """Each engine CI runs: the containerd-store 26 (default socket) and the classic 20.10."""
    if ENGINES[request.param]:
        require_classic()
    return ENGINES[request.param]


class Workspace:
    """A folder with its own multiarch.yaml and contexts, driven by the project's dodo.py."""

    def __init__(self, path: Path):
        self.path = path
        # A repository of its own per test, so runs never see each other's tags.
        self.namespace = f"it-{uuid.uuid4().hex[:10]}"

    def context(self, name: str, dockerfile: str) -> Path:
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Dockerfile").write_text(dockerfile)
        return folder

    def manifest(self, images: dict, platforms: list[str]) -> Path:
        for image in images.values():
            image.setdefault("repository", f"{self.namespace}/{image['context']}")
        document = {"version": 1, "registry": REGISTRY, "platforms": platforms, "images": images}
        path = self.path / "multiarch.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    def doit(self, *args: str, check: bool = True, docker_host: str | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        command, rest = (args[0], args[1:]) if args[0] in DOIT_COMMANDS else ("run", args)
        argv = [sys.executable, "-m", "doit", command, "-f", str(ROOT / "dodo.py"), *rest,
                f"manifest={self.path / 'multiarch.yaml'}"]
        result = subprocess.run(argv, capture_output=True, text=True, cwd=self.path,
                                timeout=600, env={**engine_env(docker_host), **(env or {})})
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n"
                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
        return result


@pytest.fixture
def workspace(engine, tmp_path) -> Workspace:
    return Workspace(tmp_path)


def raw_manifest(ref: str) -> dict | None:
    """What the registry holds for ``ref``, read by skopeo (not by multiarch); None if absent."""
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                            capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else None


def builders_of(workspace: Workspace, name: str) -> dict[str, str]:
    """Platform → the engine the build report says built it."""
    report = json.loads((workspace.path / ".multiarch" / "report.json").read_text())
    [image] = [image for image in report["images"] if image["name"] == name]
    return {cell["platform"]: cell["builder"] for cell in image["platforms"]}


def engine_env(docker_host: str | None) -> dict[str, str]:
    """The environment for a docker client talking to ``docker_host`` (None: the default)."""
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def docker(*args: str, docker_host: str | None = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                            env=engine_env(docker_host))
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout
