"""`builders:`: parsing and validation, the CLI environment per node, the ping and the fallback.

No engine: an unreachable node is a socket path nothing listens on, a reachable one a tiny
HTTP server on a unix socket that answers `/_ping` as dockerd does.
"""

import http.server
import socketserver
import threading
from pathlib import Path

import pytest
from multiarch.builders.engine import facts, nodes
from multiarch.builders.engine.cli import run
from multiarch.builders.engine.client import cli_env
from multiarch.builders.errors import DockerError
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import parse_manifest
from multiarch.tasks.model.platforms import Platform
from multiarch.tasks.model.routing import LOCAL, Node, Routing

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
ARMV7 = Platform("linux", "arm", "v7")
NODE = "unix:///run/multiarch-node/docker.sock"


def manifest(tmp_path: Path, builders, platforms=("linux/amd64", "linux/arm64")):
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:1.35\n")
    document = {"version": 1, "platforms": list(platforms),
                "images": {"app": {"context": "app"}}, "builders": builders}
    return parse_manifest(document, tmp_path / "multiarch.yaml", "multiarch.yaml")


def error(tmp_path: Path, builders, **kwargs) -> str:
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, builders, **kwargs)
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_the_issue_example_routes_each_platform(tmp_path):
    routing = manifest(tmp_path, {
        "linux/amd64": {"docker_host": "unix:///var/run/docker.sock"},
        "linux/arm64": {"docker_host": "ssh://builder@arm-node", "emulate": False},
        "default": {"context": "default"},
    }).routing
    assert routing.node_for(AMD64) == Node(docker_host="unix:///var/run/docker.sock")
    assert routing.node_for(ARM64) == Node(docker_host="ssh://builder@arm-node", emulate=False)
    assert routing.default == Node(context="default")
    assert routing.node_for(ARM64).name == "ssh://builder@arm-node"
    assert routing.default.name == "default"


def test_platform_keys_are_normalised_and_unrouted_platforms_use_the_default(tmp_path):
    routing = manifest(tmp_path, {"linux/aarch64": {"context": "arm"}},
                       platforms=("linux/amd64", "linux/arm64", "linux/arm/v7")).routing
    assert routing.node_for(ARM64) == Node(context="arm")
    assert routing.node_for(AMD64) is LOCAL
    assert routing.node_for(ARMV7) is LOCAL
    assert LOCAL.name == "default" and LOCAL.from_environment


def test_without_builders_everything_builds_on_the_environments_engine(tmp_path):
    routing = manifest(tmp_path, None).routing
    assert routing == Routing()
    assert routing.node_for(ARM64) is LOCAL


def test_node_named_finds_the_engine_a_build_reported():
    arm = Node(docker_host=NODE)
    routing = Routing(((ARM64, arm),), Node(context="ci"))
    assert routing.node_named(NODE) == arm
    assert routing.node_named("ci") == Node(context="ci")
    assert routing.node_named("gone") is None
    assert routing.node_named(None) is None
    assert routing.nodes == (Node(context="ci"), arm)


@pytest.mark.parametrize(("builders", "expected"), [
    ({"defualt": {}},
     "multiarch.yaml: builders.defualt: unknown key 'defualt'; did you mean 'default'? "
     "(allowed: default, linux/amd64, linux/arm64)"),
    ({"linux/arm46": {"context": "x"}},
     "builders.linux/arm46: unknown key 'linux/arm46'; did you mean 'linux/arm64'?"),
    ({"linux/s390x": {"context": "x"}},
     "builders.linux/s390x: no image builds linux/s390x (allowed: default, linux/amd64, "
     "linux/arm64)"),
    ({"linux/arm64": {"context": "a"}, "linux/aarch64": {"context": "b"}},
     "builders.linux/aarch64: linux/arm64 is routed twice (also as 'linux/arm64')"),
    ({"linux/arm64": {"docker_host": NODE, "context": "x"}},
     "builders.linux/arm64: set one of docker_host, context or connection"),
    ({"linux/arm64": {"docker_host": "http://arm-node:2375"}},
     "builders.linux/arm64.docker_host: unsupported address 'http://arm-node:2375'; allowed "
     "schemes: unix://, tcp://, ssh://, npipe://"),
    ({"linux/arm64": {"docker_host": "ssh://"}},
     "builders.linux/arm64.docker_host: invalid address 'ssh://': expected ssh://<where>"),
    ({"linux/arm64": {"context": "--host=x"}},
     "builders.linux/arm64.context: invalid context name '--host=x'"),
    ({"linux/arm64": {"docker_host": NODE, "emulate": "no"}},
     "builders.linux/arm64.emulate: expected true or false, got a str"),
    ({"default": {"emulate": False}},
     "builders.default.emulate: the default engine has nothing to fall back to"),
    ({"linux/arm64": {"emulate": False}},
     "builders.linux/arm64: name the engine: docker_host"),
    ({"linux/arm64": {"docker-host": NODE}},
     "builders.linux/arm64.docker-host: unknown key 'docker-host'; did you mean 'docker_host'?"),
    ({"linux/arm64": NODE},
     "builders.linux/arm64: expected a mapping, got a str"),
    (["linux/arm64"], "builders: expected a mapping, got a list"),
])
def test_bad_builders_are_one_line_errors(tmp_path, builders, expected):
    assert expected in error(tmp_path, builders)


def test_cli_environment_per_kind_of_node():
    assert cli_env(Node(docker_host=NODE)) == {"DOCKER_HOST": NODE, "DOCKER_CONTEXT": None,
                                               "DOCKER_TLS_VERIFY": None,
                                               "DOCKER_CERT_PATH": None}
    assert cli_env(Node(context="arm")) == {"DOCKER_CONTEXT": "arm", "DOCKER_HOST": None}
    assert cli_env(LOCAL) == {}


def test_run_prints_the_environment_it_sets_and_passes_it(capsys, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    output = run(["sh", "-c", 'echo "host=$DOCKER_HOST context=${DOCKER_CONTEXT-unset}"'],
                 "env", prefix="[app linux/arm64] ", env=cli_env(Node(docker_host=NODE)))
    assert output == f"host={NODE} context=unset\n"
    assert capsys.readouterr().out.splitlines()[0] == (
        f"[app linux/arm64] $ DOCKER_HOST={NODE} sh -c "
        "'echo \"host=$DOCKER_HOST context=${DOCKER_CONTEXT-unset}\"'")


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/_ping" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port)


@pytest.fixture
def answering(tmp_path):
    """A unix socket answering `/_ping` like an engine; yields its DOCKER_HOST."""
    path = tmp_path / "engine.sock"
    server = _UnixHTTPServer(str(path), _Ping)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"unix://{path}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead(tmp_path):
    nodes._down.clear()
    yield f"unix://{tmp_path / 'nothing-listens.sock'}"
    nodes._down.clear()


def test_ping_answers_none_for_an_engine_and_why_for_no_engine(answering, dead):
    assert nodes.ping(Node(docker_host=answering)) is None
    assert nodes.ping(Node(docker_host=dead)) == "No such file or directory"
    assert nodes.ping(Node(context="no-such-context-here")).startswith("no docker context")


def test_emulate_false_refuses_the_fallback_in_one_line(dead):
    routing = Routing(((ARM64, Node(docker_host=dead, emulate=False)),))
    with pytest.raises(DockerError) as caught:
        nodes.choose(routing, ARM64)
    assert str(caught.value) == (f"linux/arm64: builder {dead} is unreachable (No such file or "
                                 "directory); emulate: false forbids a local QEMU build")


def test_by_default_an_unreachable_node_falls_back_to_the_default_and_says_so(dead, capsys):
    routing = Routing(((ARM64, Node(docker_host=dead)),))
    assert nodes.choose(routing, ARM64, prefix="[app linux/arm64] ") is LOCAL
    assert capsys.readouterr().out == (f"[app linux/arm64] builder {dead} unreachable (No such "
                                       "file or directory); building locally under QEMU\n")
    named = Routing(((ARM64, Node(docker_host=dead)),), Node(context="ci"))
    assert nodes.choose(named, ARM64) == Node(context="ci")
    assert "building on ci under QEMU" in capsys.readouterr().out


def test_an_answering_node_is_used_and_the_default_is_never_pinged(answering, dead):
    node = Node(docker_host=answering, emulate=False)
    assert nodes.choose(Routing(((ARM64, node),)), ARM64) == node
    default = Node(docker_host=dead)  # would fail a ping; the build reports it instead
    assert nodes.choose(Routing((), default), ARM64) == default


def test_is_native_compares_the_cpu(monkeypatch):
    monkeypatch.setattr(facts.host_platform, "machine", lambda: "x86_64")
    assert facts.is_native(AMD64) and not facts.is_native(ARM64)
    monkeypatch.setattr(facts.host_platform, "machine", lambda: "aarch64")
    assert facts.is_native(ARM64)


LOST = ("ERROR: failed to receive status: rpc error: code = Unavailable desc = error reading "
        "from server: EOF\n")


def test_a_failure_names_the_platform_and_the_engine(answering, dead):
    failed = DockerError("build app for linux/arm64 failed (exit 1)", ["docker", "build"], LOST)
    gone = nodes.explain_failure(failed, Node(docker_host=dead), "the build of app", ARM64)
    assert gone.message == (f"linux/arm64: builder {dead} stopped answering during the build "
                            "of app (No such file or directory); rerun once it is back")
    back = nodes.explain_failure(failed, Node(docker_host=answering), "the build of app", ARM64)
    assert back.message == (f"linux/arm64: builder {answering} dropped the build of app (the "
                            "engine restarted?); rerun to build it again")
    own = DockerError("build app for linux/arm64 failed (exit 1)", ["docker", "build"],
                      "RUN false: exit code 1\n")
    plain = nodes.explain_failure(own, Node(docker_host=answering), "the build of app", ARM64)
    assert plain.message == f"build app for linux/arm64 failed (exit 1) on builder {answering}"
    assert plain.output == own.output and plain.argv == own.argv


def test_build_and_push_tasks_carry_the_routing_registries_and_engine(tmp_path):
    from multiarch.tasks.doit import generate

    parsed = manifest(tmp_path, {"linux/arm64": {"docker_host": NODE}})
    run_ = generate.Run.of(parsed)
    builds = {task["name"]: task for task in generate.build_tasks(run_) if task.get("actions")}
    pushes = {task["name"]: task for task in generate.push_tasks(run_) if task.get("actions")}
    _, build_args = builds["app:linux/arm64"]["actions"][-1]
    assert build_args[-2:] == [parsed.routing, parsed.engine]
    assert build_args[-2].node_for(ARM64).name == NODE
    _, _, push_kwargs = pushes["app:linux/arm64"]["actions"][-1]
    assert push_kwargs == {"routing": parsed.routing, "registries": parsed.registries,
                           "engine": None}
    assert pushes["app:linux/arm64"]["getargs"] == {"built": ("build:app:linux/arm64", None)}


def test_the_push_goes_from_the_engine_the_build_reported(tmp_path, dead):
    from multiarch.builders.stages import push

    parsed = manifest(tmp_path, {"linux/arm64": {"docker_host": dead},
                                 "default": {"docker_host": f"{dead}-default"}})
    image = parsed.images[0]
    with pytest.raises(DockerError) as routed:
        push.push(image, ARM64, tmp_path, {"builder": dead, "source": "build"}, parsed.routing)
    assert str(routed.value) == (f"linux/arm64: cannot reach builder {dead}: No such file or "
                                 "directory; rerun once it is back")
    with pytest.raises(DockerError) as fell_back:  # built on the default after the node was down
        push.push(image, ARM64, tmp_path, {"builder": f"{dead}-default", "source": "build"},
                  parsed.routing)
    assert f"cannot reach builder {dead}-default: " in str(fell_back.value)


def test_doctor_reports_each_routed_engine(tmp_path, answering, dead):
    from multiarch.builders.checks import doctor

    parsed = manifest(tmp_path, {"linux/amd64": {"docker_host": answering},
                                 "linux/arm64": {"docker_host": dead, "emulate": False}})
    facts = doctor.node_facts(parsed)
    assert facts == {
        "linux/amd64": {"builder": answering, "emulate": True, "unreachable": None},
        "linux/arm64": {"builder": dead, "emulate": False,
                        "unreachable": "No such file or directory"},
    }
    lines = doctor.report([doctor.node_finding(p, node) for p, node in facts.items()])
    assert lines[0] == f"ok    builder for linux/amd64: {answering} answers"
    assert lines[1] == (f"error builder for linux/arm64: {dead} is unreachable (No such file or "
                        "directory); emulate: false forbids a local QEMU build; fix: start that "
                        "engine, or allow the fallback with emulate: true")
    facts["linux/arm64"]["emulate"] = True
    assert doctor.node_finding("linux/arm64", facts["linux/arm64"]).level == "warn"
