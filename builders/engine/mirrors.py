"""The engine's docker.io mirrors, remembered while its dockerd and config file stay the same.

`GET /info` is the only Engine API answer that holds `registry-mirrors`, and the dearest
question a run asks: for it dockerd runs `runc --version` and `docker-init --version` and
counts every image. That is ~25 ms of dockerd's and containerd's CPU here (more with more
images), taken from the two cores a no-op run's two processes are using: ~19 ms of a
100-image no-op's ~215.

dockerd's mirrors change only when it restarts or reloads (SIGHUP) its config file. So an
answer is remembered with the dockerd process (pid and start time) and the stat of that
file, and only when it equals the file's own `registry-mirrors`: an edit not reloaded yet is
never remembered, so its reload cannot leave a stale answer. An engine whose process or file
cannot be told (builders.engine_api.engine_process) is asked every time.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .api import docker_host, engine_info, engine_process

REMEMBERED = "engine-mirrors.json"  # in the state folder


def engine_mirrors(state_dir: Path | None = None) -> list[str]:
    """The engine's docker.io mirrors, as host[:port]; [] without one. With ``state_dir``,
    remembered there as the module says."""
    process = engine_process(docker_host()) if state_dir is not None else None
    state = process.state() if process else None
    if state is None:
        return _asked()
    path = state_dir / REMEMBERED
    remembered = _read(path)
    mirrors = remembered.get("mirrors")
    if (remembered.get("state") == state and isinstance(mirrors, list)
            and all(isinstance(mirror, str) for mirror in mirrors)):
        return mirrors
    in_file = config_mirrors(process.config)
    answer = _asked()
    if answer == in_file and process.state() == state:
        _write(path, {"state": state, "mirrors": answer})
    return answer


def config_mirrors(path: Path) -> list[str] | None:
    """The `registry-mirrors` of a dockerd config file as host[:port] ([] for an absent file
    or key); None when it cannot be read or is not what dockerd accepts."""
    try:
        settings = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    mirrors = settings.get("registry-mirrors", []) if isinstance(settings, dict) else None
    if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
        return None
    return [_host(mirror) for mirror in mirrors]


def _asked() -> list[str]:
    mirrors = (engine_info().get("RegistryConfig") or {}).get("Mirrors") or []
    return [_host(mirror) for mirror in mirrors]


def _host(mirror: str) -> str:
    return mirror.split("://", 1)[-1].rstrip("/")


def _read(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(path: Path, data: dict) -> None:
    """Atomically; not written is only slower (the engine is asked next time)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
