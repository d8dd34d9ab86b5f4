"""The second, classic engine that `scripts/engine up` starts beside the first: Docker 20.10.

Users still run Docker 20.10 with its classic image store next to 26+. On it BuildKit (through the
CLI's buildx docker driver) builds one platform at a time under QEMU, and a multi-platform build is
refused outright.
"""

import json
import os
import subprocess
import uuid

import pytest

from tests.conftest import CLASSIC, require_classic

MULTI_PLATFORM_REFUSAL = "Multi-platform build is not supported for the docker driver"

pytestmark = pytest.mark.engine


def classic(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``docker ARGS`` against the classic engine."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DOCKER_HOST": CLASSIC})
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module", autouse=True)
def classic_engine(engine):
    require_classic()


def test_classic_engine_is_docker_20_10_with_the_classic_image_store():
    info = json.loads(classic("info", "--format", "{{json .}}").stdout)
    assert info["ServerVersion"].startswith("20.10."), info["ServerVersion"]
    driver_status = json.dumps(info["DriverStatus"])
    assert "io.containerd.snapshotter" not in driver_status, driver_status
    assert info["Driver"] in {"overlay2", "vfs"}, info["Driver"]


def test_per_platform_arm64_build_runs_as_aarch64(tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox:1.35\n"
        "RUN uname -m > /built-on\n"
        'CMD ["sh", "-c", "cat /built-on; uname -m"]\n')
    tag = f"classic-check-{uuid.uuid4().hex[:10]}:arm64"
    classic("build", "--platform", "linux/arm64", "-t", tag, str(tmp_path))
    try:
        assert classic("image", "inspect", "--format", "{{.Architecture}}",
                       tag).stdout.strip() == "arm64"
        run = classic("run", "--rm", "--platform", "linux/arm64", tag)
        assert run.stdout.split() == ["aarch64", "aarch64"], run.stdout
    finally:
        classic("image", "rm", tag, check=False)


def test_multi_platform_build_is_refused_by_the_docker_driver(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.35\nRUN uname -m\n")
    result = classic("buildx", "build", "--builder", "default",
                     "--platform", "linux/amd64,linux/arm64", str(tmp_path), check=False)
    assert result.returncode != 0, result.stdout
    assert MULTI_PLATFORM_REFUSAL in result.stderr, result.stderr
