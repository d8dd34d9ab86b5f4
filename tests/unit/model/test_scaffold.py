"""`multiarch init`'s manifest: one image per Dockerfile found, and a file that loads."""

import pytest
from multiarch.cli import main
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import load_manifest
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.model.scaffold import Found, find_dockerfiles, make_state_dir, manifest_text


def repo(tmp_path, files):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("FROM scratch\n")
    return tmp_path


def test_every_dockerfile_is_found_and_named_after_its_project(tmp_path):
    root = repo(tmp_path, ["web/Dockerfile", "services/api/docker/Containerfile",
                           "tools/Dockerfile.dev", "cli/release.Dockerfile",
                           "node_modules/x/Dockerfile", ".hidden/Dockerfile", "README.md"])
    assert find_dockerfiles(root) == [
        Found("cli-release", "cli", "release.Dockerfile"),
        Found("api", "services/api/docker", "Containerfile"),
        Found("tools-dev", "tools", "Dockerfile.dev"),
        Found("web", "web", "Dockerfile"),
    ]


@pytest.mark.parametrize(("registry", "platforms"), [
    ("localhost:5000/team", ("linux/amd64", "linux/arm64", "linux/loong64")),
    ("localhost:5000", None),
    (None, None),  # placeholders, each said so in a comment
])
def test_the_manifest_init_writes_loads(tmp_path, registry, platforms):
    root = repo(tmp_path, ["web/Dockerfile", "api/Containerfile"])
    text = manifest_text(find_dockerfiles(root), registry, platforms)
    (root / "multiarch.yaml").write_text(text)
    manifest = load_manifest(root / "multiarch.yaml")
    assert [image.name for image in manifest.images] == ["api", "web"]
    assert manifest.image("api").dockerfile == root / "api" / "Containerfile"
    wanted = platforms or ("linux/amd64", "linux/arm64")
    assert manifest.platforms == tuple(parse_platform(p) for p in wanted)
    if registry is None:
        assert manifest.image("web").repository == "registry.example.com/team/web"
        assert "multiarch init --registry" in text
    else:
        assert manifest.image("web").repository == f"{registry}/web"


def test_comma_separated_platforms_as_docker_takes_them(tmp_path):
    root = repo(tmp_path, ["web/Dockerfile"])
    (root / "multiarch.yaml").write_text(
        "version: 1\nregistry: localhost:5000\nplatforms: linux/amd64,linux/arm64\n"
        "images:\n  web:\n    context: web\n    platforms: linux/arm/v7, linux/arm64\n")
    manifest = load_manifest(root / "multiarch.yaml")
    assert [str(p) for p in manifest.platforms] == ["linux/amd64", "linux/arm64"]
    assert [str(p) for p in manifest.image("web").platforms] == ["linux/arm/v7", "linux/arm64"]
    (root / "multiarch.yaml").write_text(
        "version: 1\nregistry: localhost:5000\nplatforms: linux/amd64,\n"
        "images:\n  web:\n    context: web\n")
    with pytest.raises(ManifestError, match="platforms"):
        load_manifest(root / "multiarch.yaml")


def test_the_state_folder_ignores_itself(tmp_path):
    make_state_dir(tmp_path / ".multiarch")
    assert (tmp_path / ".multiarch" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_multiarch_init_writes_never_overwrites_and_refuses_a_bad_platform(tmp_path, monkeypatch,
                                                                           capsys):
    repo(tmp_path, ["web/Dockerfile"])
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--platform", "linux/amd64,linux/nosuch"]) == 2
    assert "--platform: " in capsys.readouterr().err
    assert not (tmp_path / "multiarch.yaml").exists()
    assert main(["init", "--registry", "localhost:5000/team"]) == 0
    assert (tmp_path / "dodo.py").read_text().endswith("from multiarch.dodo import *"
                                                       "  # noqa: F403\n")
    (tmp_path / "multiarch.yaml").write_text("# mine\n")
    assert main(["init"]) == 0
    assert (tmp_path / "multiarch.yaml").read_text() == "# mine\n"
    assert "kept multiarch.yaml: it exists" in capsys.readouterr().out
