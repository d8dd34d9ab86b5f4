"""Benchmarks over a bench/generate.py monorepo: print the figures of issue #3."""

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

DODO = Path(__file__).resolve().parent.parent / "dodo.py"
GNU_TIME = "/usr/bin/time"
# Without GNU time: a child that runs the command and reports its children's peak RSS.
RSS_CHILD = ("import resource,subprocess,sys; r=subprocess.run(sys.argv[1:]);"
             " print('maxrss_kb=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
             " sys.exit(r.returncode)")
FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", re.MULTILINE | re.IGNORECASE)


class Bench:
    """One monorepo's runs: argv builders, a runner that keeps logs, and the figures table."""

    def __init__(self, out: Path, jobs: int):
        self.out, self.jobs = out, jobs
        self.manifest = out / "multiarch.yaml"
        self.logs = out / ".bench-logs"
        self.logs.mkdir(exist_ok=True)
        self.rows: list[tuple[str, str, str]] = []
        self.commands: dict[str, list[str]] = {}

    def build_argv(self, verify: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "doit", "-f", str(DODO), "-n", str(self.jobs), "build",
                f"manifest={self.manifest}"]
        return argv if verify else [*argv, "verify=0"]

    def list_argv(self) -> list[str]:
        return [sys.executable, "-m", "doit", "list", "-f", str(DODO), f"manifest={self.manifest}"]

    def run(self, label: str, argv: list[str], on_line=None) -> tuple[float, str]:
        """Run ``argv`` in OUT (output merged, kept in .bench-logs/); stop the bench on failure."""
        self.commands.setdefault(label, argv)
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=self.out, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        lines = []
        for line in process.stdout:
            lines.append(line)
            if on_line:
                on_line(line)
        process.wait()
        elapsed = time.perf_counter() - start
        output = "".join(lines)
        log = self.logs / (re.sub(r"[^\w.-]+", "-", label) + ".log")
        log.write_text(output)
        if process.returncode != 0:
            tail = "".join(lines[-40:])
            sys.exit(f"\nFAILED ({label}): exit {process.returncode} after {elapsed:.1f} s\n"
                     f"$ {shlex.join(argv)}\n(full log: {log})\n{tail}")
        return elapsed, output

    def sample(self, label: str, argv: list[str], repeat: int) -> list[float]:
        """One untimed warm-up, then ``repeat`` timed runs; a no-op that runs tasks is shown."""
        _, output = self.run(label, argv)
        times = []
        for _ in range(repeat):
            elapsed, output = self.run(label, argv)
            times.append(elapsed)
        ran = executed(output, ".  ")
        if ran:
            print(f"  ! {label}: not a no-op, it ran {len(ran)} tasks, e.g. {sorted(ran)[:3]}")
        return times

    def row(self, step: str, value: str, target: str = "") -> None:
        self.rows.append((step, value, target))
        print(f"{step:<44} {value}  {target}", flush=True)


def executed(output: str, prefix: str = ".  build:") -> set[str]:
    """Tasks doit ran (it prints ``.  name`` for those it executes, ``-- name`` for skipped)."""
    return {line[3:].strip() for line in output.splitlines() if line.startswith(prefix)}


def figure(samples: list[float], unit: str = "s", scale: float = 1.0) -> str:
    values = [value * scale for value in samples]
    if len(values) == 1:
        return f"{values[0]:.2f} {unit} (n=1)"
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


def dependents(images: dict[str, dict], base: str) -> list[str]:
    """``base`` and every image built on it, transitively."""
    found, grew = {base}, True
    while grew:
        above = {name for name, image in images.items() if image["bases"] & found}
        grew = not above <= found
        found |= above
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="a folder written by bench/generate.py")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--change-repeat", type=int, default=1,
                        help="one-byte change/revert cycles (each rebuilds a base's family)")
    parser.add_argument("--jobs", type=int, default=2, help="doit -n")
    args = parser.parse_args(argv)
    bench = Bench(args.out.resolve(), args.jobs)
    images = read_images(bench.manifest)
    builds = sum(len(image["platforms"]) for image in images.values())

    print(f"== a. initial full build: {len(images)} images, {builds} image-platforms", flush=True)
    if (bench.out / ".multiarch" / "doit.db").exists():
        print("  note: .multiarch/doit.db exists, so this is not a build from scratch")
    counts = {"build": 0, "manifest": 0}
    start = time.perf_counter()

    def progress(line: str) -> None:
        kind, colons = line[3:].split(":", 1)[0], line.count(":")
        if line.startswith(".  ") and (kind, colons) in (("build", 2), ("manifest", 1)):
            counts[kind] += 1
            if kind == "manifest" or counts["build"] % 10 == 0:
                print(f"  {time.perf_counter() - start:7.1f} s  {counts['build']}/{builds}"
                      f" builds, {counts['manifest']}/{len(images)} lists", flush=True)

    elapsed, _ = bench.run("a initial build", bench.build_argv(), progress)
    bench.row("a initial full build", f"{elapsed:.1f} s (n=1, {counts['build']} builds)")

    print(f"== b. no-op build vs list ({args.repeat} timed runs each, after a warm-up)")
    listed = bench.sample("b doit list", bench.list_argv(), args.repeat)
    off = bench.sample("b no-op verify=0", bench.build_argv(verify=False), args.repeat)
    on = bench.sample("b no-op verify on", bench.build_argv(), args.repeat)
    m_list, m_off, m_on = (statistics.median(s) for s in (listed, off, on))
    bench.row("b doit list", figure(listed))
    bench.row("b no-op build, verify=0", figure(off),
              check(m_off <= 1.5 * m_list and m_off <= 0.5,
                    f"<= 1.5x list ({1.5 * m_list:.2f} s) and <= 0.5 s; {m_off / m_list:.2f}x"))
    bench.row(f"b no-op build, verify on ({builds} tags)", figure(on),
              check(m_on <= 1.5, "<= 1.5 s"))

    base = next(name for name in images if len(dependents(images, name)) > 1)
    family = dependents(images, base)
    expected = {f"build:{name}:{p}" for name in family for p in images[name]["platforms"]}
    changed_file = sorted((images[base]["context"] / "src").rglob("*.txt"))[0]
    print(f"== c. one-byte change to {changed_file.relative_to(bench.out)} ({base} and"
          f" {len(family) - 1} images FROM it)")
    original = changed_file.read_bytes()
    changed, reverted = [], []
    for _ in range(args.change_repeat):
        for label, content, times in (("c one-byte change", bytes([original[0] ^ 1]), changed),
                                      ("c revert", original[:1], reverted)):
            try:
                changed_file.write_bytes(content + original[1:])
                elapsed, output = bench.run(label, bench.build_argv())
            finally:
                if label == "c one-byte change":
                    changed_file.write_bytes(original)
            times.append(elapsed)
            ran = executed(output)
            detail = f"expected {len(expected)}, actual {len(ran)} build tasks"
            missing, extra = sorted(expected - ran), sorted(ran - expected)
            if missing or extra:
                detail += f"; missing {missing[:4]}, unexpected {extra[:4]}"
            bench.row(f"{label}: build tasks", detail, check(ran == expected, "exactly those"))
    bench.row("c one-byte change: wall time", figure(changed))
    bench.row("c revert: wall time", figure(reverted))

    print(f"== e. peak memory of the no-op build ({args.repeat} runs each)")
    for verify in (False, True):
        rss = []
        for _ in range(args.repeat):
            prefix = ([GNU_TIME, "-f", "maxrss_kb=%M"] if os.path.exists(GNU_TIME)
                      else [sys.executable, "-c", RSS_CHILD])
            _, output = bench.run(f"e rss verify={'on' if verify else '0'}",
                                  [*prefix, *bench.build_argv(verify)])
            rss.append(int(re.findall(r"maxrss_kb=(\d+)", output)[-1]))
        bench.row(f"e no-op peak RSS, verify={'on' if verify else '0'}",
                  figure(rss, "MiB", 1 / 1024))

    print("== d. all-cached `docker buildx bake --push` (after a warm-up bake); it pushes the"
          " same v1 tags, replacing doit's lists, so it runs last")
    bake = ["docker", "buildx", "bake", "-f", str(bench.out / "docker-bake.hcl"), "--push"]
    baked = bench.sample("d bake", bake, args.repeat)
    m_bake = statistics.median(baked)
    bench.row("d bake, all cached", figure(baked))
    bench.row("d bake / no-op (verify on | verify=0)",
              f"{m_bake / m_on:.1f}x | {m_bake / m_off:.1f}x")

    print("\n== figures\n" + "\n".join(f"{s:<44} {v}  {t}" for s, v, t in bench.rows))
    print(f"\n== commands (run in {bench.out})")
    for label, command in bench.commands.items():
        print(f"{label:<20} {shlex.join(command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
