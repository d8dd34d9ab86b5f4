"""Interrupted builds: SIGINT, SIGTERM and SIGKILL at random points of `doit -n 2 build`.

After each interruption every task doit calls up to date stands for something real, read
with skopeo and the engine (not with multiarch): with `verify=0` too, where doit's state alone
decides. Every list the registry holds is complete at every point, and a last `doit build`
finishes the job. Between runs an image's build arg NONCE changes, so each run has real work
to interrupt and a stale record would show as an old nonce.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from doit.dependency import Dependency, SqliteDB

from tests.conftest import REGISTRY, ROOT, docker, engine_env, raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]
ARCH = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
SEED = int(os.environ.get("INTERRUPT_SEED", "6"))
# `RUN sleep 1` gives each build (and the arm64 one under QEMU, more) time to be interrupted.
DOCKERFILE = "FROM {base}\nARG NONCE\nLABEL it.nonce=$NONCE\nRUN sleep 1 && echo $NONCE > /nonce\n"
IMAGES = ("base", "app", "solo", "tool")  # app is FROM base
CHAIN_TASKS = len(IMAGES) * (2 * len(PLATFORMS) + 2)  # build and push per platform, list, image


class Scene:
    """Four images, each platform's build arg NONCE known, and doit runs in the background."""

    def __init__(self, workspace, rng: random.Random):
        self.ws, self.rng = workspace, rng
        self.repo = {name: f"{REGISTRY}/{workspace.namespace}/{name}" for name in IMAGES}
        for name in IMAGES:
            base = f"{self.repo['base']}:v1" if name == "app" else "busybox:1.35"
            workspace.context(name, DOCKERFILE.format(base=base))
        # The namespace too: BuildKit's cache must not carry a NONCE from one test run over.
        self.nonce = {name: f"{name}-0-{workspace.namespace}" for name in IMAGES}
        self.write()
        self.log = workspace.path / "doit.log"

    def write(self) -> None:
        self.ws.manifest({name: {"context": name, "tags": ["v1"],
                                 "build_args": {"NONCE": self.nonce[name]}}
                          for name in IMAGES}, PLATFORMS)

    def change(self, round_: int) -> list[str]:
        """New NONCEs for one or two images (and so for what is built FROM them)."""
        changed = self.rng.sample(IMAGES, self.rng.choice((1, 2)))
        for name in changed:
            self.nonce[name] = f"{name}-{round_}-{self.ws.namespace}"
        self.write()
        return changed

    def argv(self, *args: str) -> list[str]:
        command, rest = (args[0], args[1:]) if args[0] == "list" else ("run", args)
        return [sys.executable, "-m", "doit", command, "-f", str(ROOT / "dodo.py"), *rest,
                f"manifest={self.ws.path / 'multiarch.yaml'}"]

    def start(self, *args: str) -> subprocess.Popen:
        with self.log.open("a") as log:
            log.write(f"\n===== {' '.join(args)}\n")
            self.offset = log.tell()
            env = {**engine_env(None), "PYTHONUNBUFFERED": "1"}  # a killed run's lines too
            return subprocess.Popen(self.argv(*args), cwd=self.ws.path, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)

    def began(self) -> list[str]:
        """The tasks the last run began (doit's ".  name" lines), in order."""
        with self.log.open() as log:
            log.seek(self.offset)
            return [line.split()[1] for line in log if line.startswith(".  ")]

    def started(self) -> set[str]:
        return set(self.began())

    def statuses(self, *variables: str) -> dict[str, str]:
        """`doit list --all --status`: task name → U (up to date) or R (will run)."""
        listed = subprocess.run(self.argv("list", "--all", "--status", *variables),
                                cwd=self.ws.path, env=engine_env(None), capture_output=True,
                                text=True, timeout=300)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        return {line.split()[1]: line.split()[0] for line in listed.stdout.splitlines()}

    def said_up_to_date(self) -> set[tuple[str, str]]:
        """(image, platform) that `doit status` calls up to date."""
        said = subprocess.run(self.argv("status"), cwd=self.ws.path, env=engine_env(None),
                              capture_output=True, text=True, timeout=300)
        assert said.returncode == 0, said.stdout + said.stderr
        return {(found[1], found[2]) for found in re.finditer(
            r"^(\S+) (linux/\S+): up to date", said.stdout, re.MULTILINE)}

    def values(self, task: str) -> dict:
        """A task's saved values, read from doit's state through doit's own sqlite3 backend."""
        state = Dependency(SqliteDB, str(self.ws.path / ".multiarch" / "doit.db"))
        try:
            return state.get_values(task)
        finally:
            state.backend._conn.close()

    def tail(self) -> str:
        return self.log.read_text()[-4000:]


def effective(statuses: dict[str, str]) -> set[str]:
    """Tasks up to date with everything they depend on up to date, as a run would find them.

    doit's `list --status` checks each task alone: a push is "U" while its build's last result
    is the one it pushed, even if that build is about to run again and change it.
    """
    done = set()
    for name in IMAGES:
        for platform in PLATFORMS:
            build, push = f"build:{name}:{platform}", f"push:{name}:{platform}"
            if statuses.get(build) == "U":
                done.add(build)
                if statuses.get(push) == "U":
                    done.add(push)
        pushes = {f"push:{name}:{platform}" for platform in PLATFORMS}
        if statuses.get(f"manifest:{name}") == "U" and pushes <= done:
            done.add(f"manifest:{name}")
            if statuses.get(f"build:{name}") == "U":
                done.add(f"build:{name}")
    return done


def prerequisites(task: str) -> list[str]:
    """What doit saved as done before it began ``task``: a push waits for its build's record,
    a list for its pushes', `build:<image>` for its list's."""
    stage, _, rest = task.partition(":")
    name, _, platform = rest.partition(":")
    if stage == "push":
        return [f"build:{name}:{platform}"]
    if stage == "manifest":
        return [f"push:{name}:{p}" for p in PLATFORMS]
    return [f"manifest:{name}"] if stage == "build" and name and not platform else []


def forgotten(started: set[str], statuses: dict[str, str]) -> list[str]:
    """Finished tasks the state lost: a run began a task, so what it waited for had finished."""
    return sorted(f"{before} (finished before {task} began) is not up to date"
                  for task in started for before in prerequisites(task)
                  if statuses.get(before) != "U")


def image_config(ref: str, platform: str) -> dict | None:
    """skopeo's view of ``ref`` for ``platform`` (labels, architecture); None if absent."""
    result = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-os", "linux",
                             "--override-arch", ARCH[platform], f"docker://{ref}"],
                            capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout) if result.returncode == 0 else None


def platform_problems(scene: Scene, name: str, platform: str, ref: str) -> list[str]:
    config = image_config(ref, platform)
    if config is None:
        return [f"{ref} ({platform}) is not in the registry"]
    found = (config["Architecture"], (config.get("Labels") or {}).get("it.nonce"))
    wanted = (ARCH[platform], scene.nonce[name])
    return [] if found == wanted else [f"{ref} ({platform}) holds {found}, not {wanted}"]


def list_problems(scene: Scene, name: str, current: bool) -> list[str]:
    """A list in the registry must name each platform once, each child there and right;
    with ``current`` its children must also be the images of the current NONCE."""
    ref = f"{scene.repo[name]}:v1"
    index = raw_manifest(ref)
    if index is None:
        return [f"{ref} is not in the registry"] if current else []
    entries = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
               for m in index.get("manifests", [])}
    if sorted(entries) != PLATFORMS or len(index["manifests"]) != len(PLATFORMS):
        return [f"{ref} lists {[m.get('platform') for m in index.get('manifests', [])]}"]
    problems = []
    for platform, digest in entries.items():
        child = image_config(f"{scene.repo[name]}@{digest}", platform)
        if child is None or child["Architecture"] != ARCH[platform]:
            problems.append(f"{ref}: {platform} child {digest[:19]} missing or wrong: "
                            f"{child and child['Architecture']}")
        elif current and (child.get("Labels") or {}).get("it.nonce") != scene.nonce[name]:
            problems.append(f"{ref}: {platform} child has {child['Labels']}, not the current "
                            f"NONCE {scene.nonce[name]}")
    return problems


def build_problems(scene: Scene, name: str, platform: str) -> list[str]:
    """An up-to-date build: its image (local, or reused in the registry) has the current NONCE."""
    task = f"build:{name}:{platform}"
    values = scene.values(task)
    if values.get("source") == "registry":
        return platform_problems(scene, name, platform,
                                 f"{scene.repo[name]}:v1-{ARCH[platform]}")
    if values.get("source") == "bake":  # in the registry under its content tag
        return platform_problems(scene, name, platform,
                                 f"{scene.repo[name]}:cache-{values['input_digest'][7:39]}")
    inspected = subprocess.run(["docker", "image", "inspect", "--format",
                                "{{json .Config.Labels}} {{.Architecture}}",
                                values.get("image_id", "none")],
                               capture_output=True, text=True, timeout=60)
    wanted = f'{json.dumps({"it.nonce": scene.nonce[name]}, separators=(",", ":"))} ' \
             f"{ARCH[platform]}"
    if inspected.stdout.strip() != wanted:
        return [f"{task} is up to date but its image {values.get('image_id')} is "
                f"{inspected.stdout.strip() or inspected.stderr.strip()}"]
    return []


def problems(scene: Scene, done: set[str], said: frozenset = frozenset()) -> list[str]:
    """What is wrong with the registry and the engine, given what doit calls done (and
    ``said``: the (image, platform) `doit status` calls up to date)."""
    checks = [(platform_problems, scene, name, platform, f"{scene.repo[name]}:v1-{ARCH[platform]}")
              for name, platform in said]
    for name in IMAGES:
        checks.append((list_problems, scene, name, f"manifest:{name}" in done))
        for platform in PLATFORMS:
            if f"build:{name}:{platform}" in done:
                checks.append((build_problems, scene, name, platform))
            if f"push:{name}:{platform}" in done:
                checks.append((platform_problems, scene, name, platform,
                               f"{scene.repo[name]}:v1-{ARCH[platform]}"))
    with ThreadPoolExecutor(8) as pool:
        found = pool.map(lambda check: check[0](*check[1:]), checks)
    return [problem for some in found for problem in some]


def interrupt(scene: Scene, args: tuple[str, ...], sig: signal.Signals, delay: float,
              when=lambda began: True) -> bool:
    """Run `doit build`; once ``when`` holds for the tasks it began (in order), wait ``delay``
    s more and send ``sig``. True if doit was still running then."""
    process = scene.start(*args)
    deadline = time.monotonic() + 120
    while not when(scene.began()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        process.wait(timeout=delay)
        assert process.returncode == 0, scene.tail()
        return False  # finished first: nothing interrupted
    except subprocess.TimeoutExpired:
        pass
    process.send_signal(sig)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"doit did not stop within 60 s of {sig.name}:\n"
                             f"{scene.tail()}") from None
    return True


def run_to_completion(scene: Scene, *args: str) -> None:
    process = scene.start(*args)
    assert process.wait(timeout=600) == 0, scene.tail()


def check(scene: Scene, what: str, views: tuple[tuple[str, ...], ...], said=frozenset()) -> int:
    """Assert the invariants after one run; return how many finished tasks the log proves
    the state had to keep (the prerequisites of tasks the run began)."""
    kept = {before for task in scene.started() for before in prerequisites(task)}
    for variables in views:
        statuses = scene.statuses(*variables)
        found = problems(scene, effective(statuses), said) + forgotten(scene.started(), statuses)
        assert not found, f"after {what} {variables}:\n" + "\n".join(found) + "\n" + scene.tail()
    return len(kept)


def test_interrupted_builds_never_leave_a_false_up_to_date(workspace):
    rng = random.Random(SEED)
    scene = Scene(workspace, rng)
    # A round whose run ends before its signal interrupts nothing (about one in three): up
    # to 18 rounds are drawn, and the rounds stop at 9 interruptions.
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL] * 6
    rng.shuffle(signals)
    tried, kept = {sig.name: 0 for sig in signals}, 0
    started = time.monotonic()
    for round_, sig in enumerate(signals, start=1):
        if time.monotonic() - started > 180 or sum(tried.values()) >= 9:
            break
        if round_ > 1:
            scene.change(round_)
        # A random point: early (starting up), or just after the k-th task of the run began.
        k = rng.randrange(CHAIN_TASKS - len(effective(scene.statuses())) + 1)
        if interrupt(scene, ("-n", "2", "build"), sig, rng.uniform(0.3, 3.0) if k == 0
                     else rng.uniform(0.0, 1.0), when=lambda began, k=k: len(began) >= k):
            tried[sig.name] += 1
        kept += check(scene, f"{sig.name} in round {round_}", ((), ("verify=0",)),
                      scene.said_up_to_date())
    print(f"interruptions (seed {SEED}): {tried}; finished tasks kept: {kept}; "
          f"{time.monotonic() - started:.0f} s")
    assert sum(tried.values()) >= 6 and all(tried.values()), tried

    run_to_completion(scene, "-n", "2", "build")
    statuses = scene.statuses()
    everything = {name for name in statuses if name.split(":")[0] in ("build", "push", "manifest")
                  and ":" in name}
    assert len(everything) == CHAIN_TASKS, statuses
    assert effective(statuses) == everything, statuses
    said = scene.said_up_to_date()
    assert said == {(name, platform) for name in IMAGES for platform in PLATFORMS}
    assert problems(scene, everything, said) == []
    for platform in PLATFORMS:
        ran = docker("run", "--rm", "--pull", "always", "--platform", platform,
                     f"{scene.repo['app']}:v1", "sh", "-c", "uname -m; cat /nonce")
        assert ran.split() == [UNAME[platform], scene.nonce["app"]]


def test_state_alone_never_claims_a_killed_task_done(workspace):
    """verify=0: no registry check stands behind a record. SIGKILL after each run's first push
    began: the builds it waited for must stay on record (doit's own backend loses them)."""
    rng = random.Random(SEED + 1)
    scene = Scene(workspace, rng)
    killed, kept = 0, 0
    started = time.monotonic()
    for round_ in range(1, 6):
        if time.monotonic() - started > 120:
            break
        if round_ > 1:
            scene.change(round_)
        # Killed a random 0-3 s after the first push began: finished builds are on record.
        if interrupt(scene, ("-n", "2", "build", "verify=0"), signal.SIGKILL,
                     rng.uniform(0.0, 3.0),
                     when=lambda began: any(task.startswith("push:") for task in began)):
            killed += 1
        kept += check(scene, f"SIGKILL in round {round_}", (("verify=0",),))
    print(f"SIGKILLs (seed {SEED + 1}): {killed}; finished tasks kept: {kept}; "
          f"{time.monotonic() - started:.0f} s")
    assert killed >= 3 and kept >= killed

    run_to_completion(scene, "-n", "2", "build", "verify=0")
    assert problems(scene, effective(scene.statuses("verify=0"))) == []
    assert all(list_problems(scene, name, current=True) == [] for name in IMAGES)


def test_a_tag_moved_after_the_build_does_not_change_what_is_pushed(workspace):
    """A killed run's `docker build` goes on and may tag its (older) image after the next run
    built; the push takes the image its build recorded, not whatever the tag names by then."""
    workspace.context("late", DOCKERFILE.format(base="busybox:1.35"))
    repository = f"{REGISTRY}/{workspace.namespace}/late"

    def nonce(value: str) -> None:
        workspace.manifest({"late": {"context": "late", "tags": ["v1"],
                                     "build_args": {"NONCE": value}}}, ["linux/amd64"])

    first, second = f"late-1-{workspace.namespace}", f"late-2-{workspace.namespace}"
    nonce(first)
    workspace.doit("build:late:linux/amd64")  # into the engine, as a killed run's build is
    docker("tag", f"{repository}:v1-amd64", f"{repository}:older")
    nonce(second)
    workspace.doit("build:late:linux/amd64")
    docker("tag", f"{repository}:older", f"{repository}:v1-amd64")  # the late build's tag

    workspace.doit("build")

    pushed = image_config(f"{repository}:v1-amd64", "linux/amd64")
    assert pushed["Labels"]["it.nonce"] == second
    listed = raw_manifest(f"{repository}:v1")["manifests"]
    child = image_config(f"{repository}@{listed[0]['digest']}", "linux/amd64")
    assert child["Labels"]["it.nonce"] == second

    # And an image gone from the engine by then is built again, and that one is pushed.
    docker("image", "rm", "--force", docker("image", "inspect", "--format", "{{.Id}}",
                                            f"{repository}:v1-amd64").strip())
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--override-arch", "amd64", "docker://127.0.0.1:5000/library/busybox:1.35",
                    f"docker://{repository}:v1-amd64"], check=True)
    assert "$ docker build" in workspace.doit("build").stdout
    assert image_config(f"{repository}:v1-amd64", "linux/amd64")["Labels"]["it.nonce"] == second
