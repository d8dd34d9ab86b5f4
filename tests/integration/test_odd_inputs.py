"""Odd but valid input builds and publishes like any other (issue 6, promise 6)."""

import json
import subprocess
import uuid

from tests.conftest import docker, raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def built(result) -> list[str]:
    """The per-platform build tasks that ran (`.  build:<image>:<platform>`)."""
    return [line for line in result.stdout.splitlines()
            if line.startswith(".  build:") and line.count(":") >= 2]


def run_on(platform: str, ref: str, *argv: str) -> str:
    return docker("run", "--rm", "--pull", "always", "--platform", platform, ref, *argv)


def test_unicode_spaces_symlinks_a_long_tag_many_args_and_an_empty_context(workspace, tmp_path):
    marker = uuid.uuid4().hex
    context = workspace.path / "ctx with spaces" / "ünïcødé app"
    (context / "sub dir").mkdir(parents=True)
    (context / "données ✓.txt").write_text(f"{marker}\n")
    (context / "sub dir" / "ça va.txt").write_text("oui\n")
    (context / "inside link").symlink_to("données ✓.txt")
    outside = tmp_path.parent / f"outside-{marker}.txt"
    outside.write_text("outside the context\n")
    (context / "outside link").symlink_to(outside)
    (context / "Dockerfile").write_text("FROM busybox:1.35\nCOPY . /app/\n")

    names = [f"A{i}" for i in range(60)]
    workspace.context("args", "FROM busybox:1.35\n"
                                     + "".join(f"ARG {name}\n" for name in names)
                                     + 'RUN echo "' + "".join(f"${name}" for name in names)
                                     + '" > /args\n')
    empty = workspace.path / "empty"
    empty.mkdir()
    (workspace.path / "empty.Dockerfile").write_text(f"FROM busybox:1.35\nLABEL marker={marker}\n")

    long_tag = "v" + "1234567890" * 12 + "abcdefg"
    ns = workspace.namespace
    workspace.manifest({
        "odd": {"context": "ctx with spaces/ünïcødé app", "repository": f"{ns}/odd",
                "tags": [long_tag]},
        "args": {"context": "args", "tags": ["v1"],
                 "build_args": {name: f"{i}." for i, name in enumerate(names)}},
        "empty": {"context": "empty", "dockerfile": "../empty.Dockerfile", "tags": ["v1"]},
    }, PLATFORMS)

    workspace.doit("-n", "2", "build")

    assert len(long_tag) == 128
    odd = f"localhost:5000/{ns}/odd:{long_tag}"
    for image in (odd, f"localhost:5000/{ns}/args:v1", f"localhost:5000/{ns}/empty:v1"):
        listed = raw_manifest(image)
        assert listed is not None, image
        assert sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
                      for m in listed["manifests"]
                      if m["platform"]["architecture"] != "unknown") == PLATFORMS
    for platform in PLATFORMS:
        assert run_on(platform, odd, "uname", "-m").strip() == UNAME[platform]
        assert run_on(platform, odd, "cat", "/app/données ✓.txt", "/app/inside link",
                      "/app/sub dir/ça va.txt") == f"{marker}\n{marker}\noui\n"
        # The link is sent as a link, never as the file it points to outside the context.
        assert run_on(platform, odd, "readlink", "/app/outside link").strip() == str(outside)
        assert "outside the context" not in run_on(platform, odd, "sh", "-c",
                                                    "cat '/app/outside link' 2>&1; true")
        assert run_on(platform, f"localhost:5000/{ns}/args:v1", "cat", "/args") == \
            "".join(f"{i}." for i in range(60)) + "\n"
        config = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--override-arch",
             platform.split("/")[1], f"docker://localhost:5000/{ns}/empty:v1"],
            capture_output=True, text=True, check=True).stdout
        assert json.loads(config)["Labels"] == {"marker": marker}

    # The file behind the outside link is not an input: changing it rebuilds nothing,
    # while a change inside the context rebuilds that image only.
    outside.write_text("changed outside\n")
    assert built(workspace.doit("build")) == []
    (context / "sub dir" / "ça va.txt").write_text("non\n")
    assert sorted(built(workspace.doit("build"))) == [f".  build:odd:{p}" for p in PLATFORMS]
