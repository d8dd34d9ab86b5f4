"""builders.mirrors and engine_api: a config file's mirrors, and which dockerd serves a socket."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from multiarch.builders.engine import api as engine_api
from multiarch.builders.engine.api import EngineProcess, config_file, engine_process
from multiarch.builders.engine.mirrors import config_mirrors, engine_mirrors


def test_config_mirrors_as_hosts(tmp_path):
    config = tmp_path / "daemon.json"
    config.write_text('{"registry-mirrors": ["http://127.0.0.1:5000", "https://m.example/"]}')
    assert config_mirrors(config) == ["127.0.0.1:5000", "m.example"]


def test_config_without_mirrors_or_without_a_file_has_none(tmp_path):
    config = tmp_path / "daemon.json"
    assert config_mirrors(config) == []  # dockerd starts without a config file
    config.write_text('{"insecure-registries": ["10.77.0.2:5000"]}')
    assert config_mirrors(config) == []


def test_unreadable_or_odd_config_is_none(tmp_path):
    config = tmp_path / "daemon.json"
    for text in ('{"registry-mirrors": ', '{"registry-mirrors": "http://m"}',
                 '{"registry-mirrors": [1]}', '["http://m"]'):
        config.write_text(text)
        assert config_mirrors(config) is None, text


def test_config_file_named_on_the_command_line():
    pid = os.getpid()
    assert config_file(pid, [b"dockerd", b"--config-file", b"/opt/e/daemon.json"]) == \
        Path(f"/proc/{pid}/root/opt/e/daemon.json")
    assert str(config_file(pid, [b"dockerd", b"--config-file=conf/d.json"])) == \
        f"/proc/{pid}/cwd/conf/d.json"


def test_config_file_default_only_for_a_root_dockerd():
    expected = f"/proc/{os.getpid()}/root/etc/docker/daemon.json"
    found = config_file(os.getpid(), [b"dockerd"])
    assert (str(found) if found else None) == (expected if os.getuid() == 0 else None)


def test_a_socket_not_served_by_dockerd_names_no_engine(tmp_path):
    """This test's own listener (comm: python) is no dockerd: nothing is remembered for it."""
    path = tmp_path / "engine.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        assert engine_process(f"unix://{path}") is None
    assert engine_process("tcp://127.0.0.1:2375") is None
    assert engine_process(f"unix://{tmp_path / 'none.sock'}") is None


def test_another_process_on_the_pid_has_no_state(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            started = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
            config = tmp_path / "daemon.json"
            assert EngineProcess(child.pid, started, config).state() == \
                [child.pid, started, str(config), None]
            assert EngineProcess(child.pid, started + 1, config).state() is None
        finally:
            child.kill()
    assert EngineProcess(child.pid, started, config).state() is None


def test_without_an_engine_nothing_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    assert engine_mirrors(tmp_path / "state") == []
    assert not (tmp_path / "state").exists()


def named(comm: str, *argv: str, listen: Path | None = None) -> subprocess.Popen:
    """A process whose /proc comm is ``comm`` (as systemd's or dockerd's would be), listening
    on ``listen`` if given; it says "ready" once both are so."""
    code = ("import socket, sys, time\n"
            f"open('/proc/self/comm', 'w').write({comm!r})\n"
            f"path = {str(listen) if listen else None!r}\n"
            "if path:\n"
            "    server = socket.socket(socket.AF_UNIX); server.bind(path); server.listen()\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_behind_systemd_socket_activation_the_dockerd_of_the_pidfile_is_the_engine(
        tmp_path, monkeypatch):
    """docker.socket: systemd listens, `dockerd -H fd://` serves; found by its pidfile."""

    sock, pidfile = tmp_path / "docker.sock", tmp_path / "docker.pid"
    monkeypatch.setattr(engine_api, "_ACTIVATED_SOCKETS", (str(sock),))
    monkeypatch.setattr(engine_api, "_DEFAULT_PIDFILE", str(pidfile))
    listener = named("systemd", listen=sock)
    served = named("dockerd", "-H", "fd://", "--config-file", str(tmp_path / "daemon.json"))
    other = named("dockerd", "-H", "unix:///run/other.sock")
    try:
        pidfile.write_text(f"{served.pid}\n")
        found = engine_process(f"unix://{sock}")
        assert found is not None and found.pid == served.pid
        assert found.config == Path(f"/proc/{served.pid}/root") / str(tmp_path / "daemon.json")[1:]
        pidfile.write_text(f"{other.pid}\n")  # a dockerd, but not one socket-activated
        assert engine_process(f"unix://{sock}") is None
        monkeypatch.setattr(engine_api, "_ACTIVATED_SOCKETS", ())  # not docker.socket's path
        pidfile.write_text(f"{served.pid}\n")
        assert engine_process(f"unix://{sock}") is None
    finally:
        for process in (listener, served, other):
            process.kill()
            process.wait()
