"""An image built FROM another image of the manifest: order, and what a change rebuilds."""

from tests.conftest import docker, raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]


def ran(result) -> set[str]:
    return {line.split()[1] for line in result.stdout.splitlines() if line.startswith(".  ")
            and not line.startswith(".  registries")}


def chain(workspace):
    base = f"localhost:5000/{workspace.namespace}/base"
    workspace.context("base", "FROM busybox:1.35\nCOPY base.txt /base.txt\n")
    (workspace.path / "base" / "base.txt").write_text("base one\n")
    workspace.context("app", "ARG BASE_TAG=v1\nFROM " + base + ":${BASE_TAG}\n"
                      "COPY app.txt /app.txt\nCMD [\"cat\", \"/base.txt\", \"/app.txt\"]\n")
    (workspace.path / "app" / "app.txt").write_text("app one\n")
    workspace.manifest({"base": {"context": "base", "tags": ["v1"]},
                        "app": {"context": "app", "tags": ["v1"]}}, PLATFORMS)
    return f"localhost:5000/{workspace.namespace}/app:v1"


def test_base_is_published_before_the_image_built_from_it(workspace):
    app = chain(workspace)

    workspace.doit("-n", "4", "build")

    for platform in PLATFORMS:
        said = docker("run", "--rm", "--pull", "always", "--platform", platform, app)
        assert said == "base one\napp one\n"


def test_a_base_change_rebuilds_everything_above_it_and_an_app_change_only_the_app(workspace):
    app = chain(workspace)
    workspace.doit("build")

    (workspace.path / "base" / "base.txt").write_text("base two\n")
    after_base = workspace.doit("build")
    builds = {name for name in ran(after_base)
              if name.startswith("build:") and name.count(":") == 2}
    assert builds == {f"build:{image}:{platform}" for image in ("base", "app")
                      for platform in PLATFORMS}
    assert docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                  app) == "base two\napp one\n"

    (workspace.path / "app" / "app.txt").write_text("app two\n")
    after_app = workspace.doit("build")
    assert {name for name in ran(after_app)
            if name.startswith("build:") and name.count(":") == 2} == {
        f"build:app:{platform}" for platform in PLATFORMS}
    assert not any(name.endswith("base") or ":base:" in name for name in ran(after_app))


def test_a_monorepo_rebuilds_exactly_the_changed_image_and_what_is_built_from_it(workspace):
    """base → mid → (app1, app2), and solo beside them: a change in mid touches three images."""
    repo = f"localhost:5000/{workspace.namespace}"
    froms = {"base": "busybox:1.35", "mid": f"{repo}/base:v1", "app1": f"{repo}/mid:v1",
             "app2": f"{repo}/mid:v1", "solo": "busybox:1.35"}
    for name, base in froms.items():
        context = workspace.context(name, f"FROM {base}\nCOPY {name}.txt /{name}.txt\n")
        (context / f"{name}.txt").write_text(f"{name} one\n")
    workspace.manifest({name: {"context": name, "tags": ["v1"]} for name in froms}, PLATFORMS)
    workspace.doit("-n", "2", "build")
    lists = {name: raw_manifest(f"{repo}/{name}:v1") for name in froms}

    (workspace.path / "mid" / "mid.txt").write_text("mid two\n")
    result = workspace.doit("-n", "2", "build")  # lines of parallel tasks must not merge

    changed = {"mid", "app1", "app2"}
    assert sorted(ran(result)) == sorted(
        [f"{stage}:{name}:{p}" for stage in ("build", "push") for name in changed
         for p in PLATFORMS]
        + [f"{stage}:{name}" for stage in ("manifest", "build") for name in changed])
    for name in froms:
        now = raw_manifest(f"{repo}/{name}:v1")
        assert (now != lists[name]) is (name in changed), name
    said = docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                  f"{repo}/app2:v1", "cat", "/base.txt", "/mid.txt", "/app2.txt")
    assert said == "base one\nmid two\napp2 one\n"
