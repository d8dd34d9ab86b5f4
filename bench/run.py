"""Benchmarks over a bench/generate.py monorepo: print the figures of issues #3 and #14."""

import argparse
import os
import random
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

DODO = Path(__file__).resolve().parent.parent / "dodo.py"
GNU_TIME = ["/usr/bin/time", "-f", "maxrss_kb=%M"]  # peak RSS of the doit process, in KiB
# Runs get a user's environment. This sandbox sets PYTHONDONTWRITEBYTECODE, which makes every
# run compile the project's modules again (~15 ms of a list or a no-op), and PYTHONUNBUFFERED,
# a write per line doit prints; a user's shell sets neither.
ENV = {name: value for name, value in os.environ.items()
       if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", re.MULTILINE | re.IGNORECASE)
# BuildKit saves a build record per target after the push; with ~50+ targets in one bake it
# can pass its 20 s timeout (moby/buildkit#4327): then the bake is timed in batches.
HISTORY_TIMEOUT = "failed to solve: DeadlineExceeded"
BAKE_BATCH = 20
# doit swaps the process-wide sys.stdout per action; builders that print() from its threads
# (a borrowed reference, python/cpython#130163; before dd141bf) crashed, by a signal or with a
# freed object in a traceback like this. Such a run is retried and counted.
CORRUPTED = re.compile(r"Fatal Python error|doit/action\.py\", line \d+, in write")


class Bench:
    """One monorepo's runs: argv builders, a runner that keeps logs, and the figures table."""

    def __init__(self, out: Path, jobs: int):
        self.out, self.jobs, self.manifest = out, jobs, out / "multiarch.yaml"
        self.logs = out / ".bench-logs"
        self.logs.mkdir(exist_ok=True)
        self.rows: list[tuple[str, str, str]] = []
        self.commands: dict[str, list[str]] = {}
        self.crashes: list[str] = []
        self.cpu_times: dict[str, list[float]] = {}
        self.returncode = self.runs = 0
        self.cpu = 0.0  # user + system CPU seconds of the last run(), all attempts

    def build_argv(self, verify: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-n", str(self.jobs), "build",
                f"manifest={self.manifest}"]
        return argv if verify else [*argv, "verify=0"]

    def list_argv(self) -> list[str]:
        return [sys.executable, "-m", "doit", "list", "-f", str(DODO), f"manifest={self.manifest}"]

    def run(self, label: str, argv: list[str], on_line=None, fail_ok=False) -> tuple[float, str]:
        """Run ``argv`` in OUT, output merged and kept in .bench-logs/; exit on a failure.

        A run that crashed (a signal, or CORRUPTED) is noted and retried up to 4 times; the
        times and outputs of the attempts are added up, so task counts stay whole.
        """
        self.commands.setdefault(label, argv)
        elapsed, lines = 0.0, []
        self.runs += 1
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = self.logs / f"{self.runs:03d}-{label.replace(' ', '-')}.log"
        for attempt in range(5):
            start, first = time.perf_counter(), len(lines)
            process = subprocess.Popen(argv, cwd=self.out, env=ENV, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, errors="replace")
            for line in process.stdout:
                lines.append(line)
                if on_line:
                    on_line(line)
            self.returncode = process.wait()
            took = time.perf_counter() - start
            elapsed += took
            log.write_text("".join(lines))
            code, text = self.returncode, "".join(lines[first:])
            if attempt == 4 or code >= 0 and not (code and CORRUPTED.search(text)):
                break
            how = f"signal {-code}" if code < 0 else f"exit {code}, a corrupted object"
            crash = f"{label}: {how} after {took:.1f} s"
            self.crashes.append(crash)
            print(f"  ! {crash}; retrying", flush=True)
            lines.append(f"\n[bench: {crash}, retried]\n")
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
        if self.returncode != 0 and not fail_ok:
            sys.exit(f"\nFAILED ({label}): exit {self.returncode} after {elapsed:.1f} s\n"
                     f"$ {shlex.join(argv)}\n(full log: {log})\n{''.join(lines[-40:])}")
        return elapsed, "".join(lines)

    def sample(self, runs: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
        """A warm-up of each, then ``repeat`` rounds running each once; builds must run no task.

        Interleaved, so a change in the machine's load between figures skews no ratio. Each
        run's CPU time goes to ``self.cpu_times``: less swayed by other work on the machine.
        """
        for label, argv in runs.items():
            if tasks := executed(self.run(label, argv)[1], ""):
                print(f"  warm-up of {label} ran {len(tasks)} tasks, e.g. {sorted(tasks)[:3]}")
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(repeat):
            for label, argv in runs.items():
                elapsed, output = self.run(label, argv)
                times[label].append(elapsed)
                self.cpu_times.setdefault(label, []).append(self.cpu)
                if "build" in argv and (tasks := executed(output, "")):
                    print(f"  ! {label}: not a no-op, it ran {len(tasks)} tasks:"
                          f" {sorted(tasks)[:3]}")
        return times

    def row(self, step: str, value: str, target: str = "") -> None:
        self.rows.append((step, value, target))
        print(f"{step:<44} {value}  {target}", flush=True)


def executed(output: str, kind: str = "build:") -> set[str]:
    """Tasks doit ran: it prints ``.  name`` for those it runs (``-- name`` for skipped ones).

    Not only at line starts: before dd141bf parallel tasks' lines could merge.
    """
    return set(re.findall(r"(?:^|(?<=\S))\.  (" + re.escape(kind) + r"\S*)", output, re.M))


def platform_builds(output: str) -> set[str]:
    """The ``build:<image>:<platform>`` tasks doit ran (not the ``build:<image>`` ones)."""
    return {task for task in executed(output) if task.count(":") == 2}


def figure(samples: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = [value * scale for value in samples]
    return (f"{statistics.median(values):.2f} {unit} (min {min(values):.2f}, max"
            f" {max(values):.2f}, n={len(values)})")


def check(ok: bool, text: str) -> str:
    return f"{'ok' if ok else 'MISSED'}: {text}"


def read_images(manifest: Path) -> dict[str, dict]:
    """Each image's context, platforms and the images of the manifest it is built FROM."""
    document = yaml.safe_load(manifest.read_text())
    registry, images = document["registry"], document["images"]
    by_ref = {f"{registry}/{raw['repository']}:{tag}": name
              for name, raw in images.items() for tag in raw["tags"]}
    result = {}
    for name, raw in images.items():
        context = manifest.parent / raw["context"]
        text = (context / raw.get("dockerfile", "Dockerfile")).read_text()
        result[name] = {"context": context,
                        "platforms": raw.get("platforms", document["platforms"]),
                        "bases": {by_ref[ref] for ref in FROM.findall(text) if ref in by_ref}}
    return result


def family(images: dict[str, dict], base: str) -> list[str]:
    """``base`` and every image built on it, transitively."""
    found, grew = {base}, True
    while grew:
        above = {name for name, image in images.items() if image["bases"] & found}
        grew = not above <= found
        found |= above
    return sorted(found)


def initial_build(bench: Bench, images: dict[str, dict]) -> None:
    builds = sum(len(image["platforms"]) for image in images.values())
    print(f"== a. initial full build: {len(images)} images, {builds} image-platforms", flush=True)
    if (bench.out / ".multiarch" / "doit.db").exists():
        print("  note: .multiarch/doit.db exists, so this is not a build from scratch")
    counts, start = {"build": 0, "manifest": 0}, time.perf_counter()

    def progress(line: str) -> None:
        for task in executed(line, ""):
            kind = task.split(":")[0]
            if (kind, task.count(":")) in (("build", 2), ("manifest", 1)):
                counts[kind] += 1
                if counts[kind] % 10 == 0:
                    print(f"  {time.perf_counter() - start:7.1f} s  {counts['build']}/{builds}"
                          f" builds, {counts['manifest']}/{len(images)} lists", flush=True)

    elapsed, output = bench.run("a initial build", bench.build_argv(), progress)
    bench.row("a initial full build", f"{elapsed:.1f} s (n=1, {counts['build']} build tasks,"
              f" {output.count('] reusing ')} served by the registry cache)")


def one_byte_change(bench: Bench, images: dict[str, dict], repeat: int) -> None:
    """Change one byte of a base's file, build, revert, build: each rebuilds its family.

    Each change writes content never built before (a random letter at a random place), so it
    is a real build; the revert's inputs were built before, so the registry cache may serve it.
    """
    base = next(name for name in images if len(family(images, name)) > 1)
    names = family(images, base)
    expected = {f"build:{name}:{p}" for name in names for p in images[name]["platforms"]}
    path = sorted((images[base]["context"] / "src").rglob("*.txt"))[0]
    print(f"== c. one-byte change to {path.relative_to(bench.out)} ({base} and"
          f" {len(names) - 1} images FROM it), then revert; {repeat} times")
    original, rng = path.read_bytes(), random.SystemRandom()
    places = [i for i, byte in enumerate(original) if byte != ord("\n")]
    runs = {"c one-byte change": ([], [], []), "c revert": ([], [], [])}
    for _ in range(repeat):
        at = rng.choice(places)
        changed = original[:at] + rng.choice(b"ghijklmnopqrstuvwxyz").to_bytes() + original[at + 1:]
        for label, content in (("c one-byte change", changed), ("c revert", original)):
            try:
                path.write_bytes(content)
                elapsed, output = bench.run(label, bench.build_argv())
            finally:
                path.write_bytes(original)
            ran = platform_builds(output)
            for values, value in zip(runs[label], (elapsed, len(ran), output.count("] reusing ")),
                                     strict=True):
                values.append(value)
            if ran != expected:
                print(f"  ! {label}: missing {sorted(expected - ran)[:4]},"
                      f" unexpected {sorted(ran - expected)[:4]}")
    for label, (times, counts, reused) in runs.items():
        bench.row(f"{label}: build tasks", f"expected {len(expected)}, actual {counts}"
                  f" (served by the registry cache: {reused})",
                  check(set(counts) == {len(expected)}, "exactly the family's platforms"))
        bench.row(f"{label}: wall time", figure(times))


def bake(bench: Bench, names: list[str], repeat: int, noop: dict[str, float]) -> None:
    """A warm-up bake, then ``repeat`` timed ones; a failed bake is noted and run again."""
    print("== d. all-cached `docker buildx bake --push` (after a warm-up bake); it pushes the"
          " same v1 tags, replacing doit's lists, so it runs last", flush=True)
    argv = ["docker", "buildx", "bake", "-f", str(bench.out / "docker-bake.hcl"), "--push"]
    runs, how, failures, baked = [argv], "one bake of every target", [], []
    while len(baked) <= repeat and len(failures) < repeat + 3:
        elapsed = 0.0
        for command in runs:
            took, output = bench.run("d bake", command, fail_ok=True)
            elapsed += took
            if bench.returncode:
                break
        if not bench.returncode:
            baked.append(elapsed)  # the first round is the warm-up
            continue
        failures.append(([*re.findall(r"^ERROR: (.*)", output, re.M), "?"])[0][:90])
        print(f"  ! bake failed: {failures[-1]}", flush=True)
        if HISTORY_TIMEOUT in output and len(runs) == 1:
            runs = [[*argv, *names[i : i + BAKE_BATCH]] for i in range(0, len(names), BAKE_BATCH)]
            how, baked = f"{len(runs)} bakes of {BAKE_BATCH} targets in a row", []
            bench.commands["d bake (1st batch)"] = runs[0]
            print(f"  timing {how} instead: moby/buildkit#4327 (saving build records)")
    if len(baked) <= repeat:
        sys.exit(f"FAILED (d bake): {len(failures)} failed bakes: {failures}")
    bench.row("d bake, all cached", figure(baked[1:]), how)
    bench.row("d bake failures (run again)", str(len(failures)), "; ".join(sorted(set(failures))))
    bench.row("d bake / no-op (verify on | verify=0)", " | ".join(
        f"{statistics.median(baked[1:]) / noop[key]:.1f}x" for key in ("on", "0")))
    elapsed, output = bench.run("d doit after bake", bench.build_argv())
    bench.row("d doit after bake (republishes its lists)",
              f"{elapsed:.2f} s, {len(executed(output, 'manifest:'))} lists,"
              f" {len(platform_builds(output))} builds")


def no_op(bench: Bench, images: dict[str, dict], repeat: int) -> dict[str, float]:
    """No-op build (registry verification off and on) next to `doit list`; their medians."""
    print(f"== b. no-op build vs list ({repeat} rounds of one run each, after a warm-up;"
          f" load average {os.getloadavg()[0]:.1f})")
    times = bench.sample({"b doit list": bench.list_argv(),
                          "b no-op verify=0": bench.build_argv(verify=False),
                          "b no-op verify on": bench.build_argv()}, repeat)
    listed, off, on = times.values()
    m_list, m_off, m_on = (statistics.median(s) for s in (listed, off, on))
    bench.row("b doit list", figure(listed))
    bench.row("b no-op build, verify=0", figure(off),  # #14 retired the ratio to a list
              check(m_off <= 0.5, f"<= 0.5 s; {m_off / m_list:.2f}x list"))
    tags = sum(len(image["platforms"]) for image in images.values())
    bench.row(f"b no-op build, verify on ({tags} tags)", figure(on), check(m_on <= 1.5, "<= 1.5 s"))
    cpu = {label: statistics.median(values) for label, values in bench.cpu_times.items()}
    bench.row("b CPU time (user+sys): list | verify=0 | on", " | ".join(
        f"{value:.2f} s" for value in cpu.values()),
        f"verify=0 / list: {cpu['b no-op verify=0'] / cpu['b doit list']:.2f}x")
    return {"on": m_on, "0": m_off}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="a folder written by bench/generate.py")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--change-repeat", type=int, help="change/revert cycles (--repeat)")
    parser.add_argument("--jobs", type=int, default=2, help="doit -n")
    parser.add_argument("--steps", default="abcde", help="which steps (d needs b), run a-c-e-d")
    args = parser.parse_args(argv)
    if "d" in args.steps and "b" not in args.steps:
        parser.error("step d prints its ratio to b's no-op: add b to --steps")
    bench, repeat = Bench(args.out.resolve(), args.jobs), args.repeat
    images = read_images(bench.manifest)
    version = subprocess.run(["git", "-C", str(DODO.parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
    print(f"project {DODO.parent} at {version or '?'}, python {sys.version.split()[0]},"
          f" load average at start {os.getloadavg()[0]:.1f}, bytecode cache on")
    if "a" in args.steps:
        initial_build(bench, images)
    if "b" in args.steps:
        noop = no_op(bench, images, repeat)
    if "c" in args.steps:
        one_byte_change(bench, images, args.change_repeat or repeat)
    if "e" in args.steps:
        print(f"== e. peak memory of the no-op build ({repeat} runs each)")
        for verify in ("0", "on"):
            command = [*GNU_TIME, *bench.build_argv(verify == "on")]
            outputs = [bench.run(f"e rss verify={verify}", command)[1] for _ in range(repeat)]
            rss = [int(re.findall(r"maxrss_kb=(\d+)", output)[-1]) for output in outputs]
            bench.row(f"e no-op peak RSS, verify={verify}", figure(rss, "MiB", 1 / 1024))
    if "d" in args.steps:
        bake(bench, list(images), repeat, noop)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    bench.row("doit runs that crashed (retried)", str(len(bench.crashes)),
              "; ".join(bench.crashes[:6]))
    print("\n== figures\n" + "\n".join(f"{s:<44} {v}  {t}" for s, v, t in bench.rows))
    print(f"\n== commands (run in {bench.out})")
    for label, command in bench.commands.items():
        print(f"{label:<20} {shlex.join(command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
