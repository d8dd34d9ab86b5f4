"""multiarch as a user gets it: a wheel of this repository in a fresh venv, then `multiarch
init` and `multiarch build` in a repository of their own, and plain `doit` there too."""

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT, raw_manifest

pytestmark = pytest.mark.engine


def user_env() -> dict[str, str]:
    """A user's environment: nothing of this checkout on the import path."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def run(*argv, cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                            env=user_env(), timeout=900)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory, engine):
    """The wheel built from this repository, installed with its dependencies from PyPI."""
    out = tmp_path_factory.mktemp("install")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out / "dist", ROOT)
    [wheel] = (out / "dist").glob("multiarch-*.whl")
    run(sys.executable, "-m", "venv", out / "venv")
    bin_dir = out / "venv" / "bin"
    run(bin_dir / "pip", "install", "-q", wheel)
    return bin_dir


def test_the_wheel_claims_one_import_name(venv):
    for name in ("tasks", "builders", "dodo"):
        result = run(venv / "python", "-c", f"import {name}", cwd="/", check=False)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, name
    run(venv / "python", "-c", "import multiarch.dodo, multiarch.cli", cwd="/",
        check=False)  # importable (it then looks for a manifest: not an import error)
    assert (venv / "multiarch").exists()


def test_init_then_build_in_a_users_repository(venv, tmp_path):
    repo = tmp_path / "my-monorepo"
    (repo / "web").mkdir(parents=True)
    (repo / "web" / "Dockerfile").write_text("FROM busybox:1.35\nCMD [\"echo\", \"web\"]\n")
    (repo / "services" / "api").mkdir(parents=True)
    (repo / "services" / "api" / "Containerfile").write_text(
        "FROM busybox:1.35\nARG TARGETARCH\nRUN echo \"$TARGETARCH\" > /arch\n")
    namespace = f"it-{uuid.uuid4().hex[:10]}"

    said = run(venv / "multiarch", "init", "--registry", f"localhost:5000/{namespace}",
               "--platform", "linux/amd64,linux/arm64", cwd=repo).stdout
    assert "wrote multiarch.yaml: 2 image(s): api, web" in said
    assert (repo / "dodo.py").exists() and (repo / ".multiarch" / ".gitignore").exists()
    again = run(venv / "multiarch", "init", cwd=repo).stdout
    assert "kept multiarch.yaml: it exists" in again  # never overwrites

    listed = run(venv / "multiarch", "list", cwd=repo).stdout
    assert listed.splitlines()[0].startswith("build ")
    run(venv / "multiarch", "-n", "2", "build", cwd=repo)
    for name in ("web", "api"):
        index = raw_manifest(f"localhost:5000/{namespace}/{name}:latest")
        assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == [
            "amd64", "arm64"]

    # Plain doit finds the same tasks through the dodo.py init wrote, and nothing to do.
    assert run(venv / "doit", "list", cwd=repo).stdout == listed
    rerun = run(venv / "doit", "build", cwd=repo).stdout
    assert "(4 up to date;" in rerun
