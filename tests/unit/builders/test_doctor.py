"""builders.checks.doctor: what the facts of a machine mean for a manifest; no engine."""

from pathlib import Path

import pytest
from multiarch.builders.checks import doctor
from multiarch.builders.checks.doctor import Finding, diagnose, parse_buildx_inspect, report
from multiarch.builders.engine.facts import binfmt_handlers, handler_for, host_arch
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import buildx
from multiarch.tasks.doit import generate
from multiarch.tasks.model.manifest import Image, Manifest
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.platforms import parse_platform

CTX = Path("/src/demo")


def image(name="demo", platforms=("linux/amd64", "linux/arm64"), repository=None, **method):
    return Image(name=name, context=CTX, dockerfile=CTX / "Dockerfile",
                 repository=repository or f"localhost:5000/{name}", tags=("v1",),
                 platforms=tuple(parse_platform(p) for p in platforms), method=Method(**method))


def manifest(*images, builder=None):
    images = images or (image(),)
    return Manifest(path=Path("/src/multiarch.yaml"), registry="localhost:5000",
                    platforms=images[0].platforms, images=images, builder=builder)


def engine(**overrides):
    facts = {"reachable": True, "version": "26.1.5", "api_version": "1.45",
             "driver": "overlayfs", "containerd_store": True, "architecture": "amd64",
             "insecure_cidrs": ["127.0.0.0/8"], "index_configs": {"docker.io": {"Secure": True}},
             "mirrors": []}
    return {**facts, **overrides}


def facts(engine_facts=None, builder=None, binfmt=None, registries=None):
    return {
        "engine": engine_facts or engine(),
        "builder": builder or {"name": "default", "driver": "docker", "platforms": []},
        "binfmt": {"qemu-aarch64": True, "qemu-arm": True} if binfmt is None else binfmt,
        "registries": registries if registries is not None else {
            "localhost:5000": {"addresses": ["127.0.0.1"], "answers": True, "scheme": "http",
                               "error": None}},
    }


def by_subject(findings, subject) -> Finding:
    return next(finding for finding in findings if finding.subject == subject)


def errors(findings):
    return [finding for finding in findings if finding.level == "error"]


def test_a_healthy_machine_has_no_errors():
    findings = diagnose(facts(), manifest())
    assert errors(findings) == []
    assert by_subject(findings, "engine").message.startswith(
        "Docker 26.1.5 (containerd image store)")


def test_the_classic_store_is_named_with_its_driver():
    found = by_subject(diagnose(facts(engine(containerd_store=False, driver="overlay2")),
                                manifest()), "engine")
    assert "classic image store, overlay2" in found.message


def test_an_unreachable_engine_is_an_error():
    down = {"reachable": False, "error": "cannot reach the Docker engine", "architecture": "amd64"}
    findings = diagnose(facts(down), manifest())
    assert by_subject(findings, "engine").level == "error"
    assert by_subject(findings, "registry localhost:5000").level == "ok"


def test_amd64_and_386_are_native_on_amd64_others_need_qemu():
    m = manifest(image(platforms=("linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7")))
    findings = diagnose(facts(), m)
    assert "native" in by_subject(findings, "platform linux/amd64").message
    assert "native" in by_subject(findings, "platform linux/386").message
    assert by_subject(findings, "platform linux/arm64").message == (
        "via QEMU (binfmt handler qemu-aarch64)")
    assert "qemu-arm" in by_subject(findings, "platform linux/arm/v7").message
    assert errors(findings) == []


@pytest.mark.parametrize(("arch", "platform", "handler"), [
    ("amd64", "linux/arm64", "qemu-aarch64"),
    ("amd64", "linux/arm/v6", "qemu-arm"),
    ("amd64", "linux/ppc64le", "qemu-ppc64le"),
    ("amd64", "linux/s390x", "qemu-s390x"),
    ("amd64", "linux/riscv64", "qemu-riscv64"),
    ("amd64", "linux/mips64le", "qemu-mips64el"),
    ("amd64", "linux/loong64", "qemu-loongarch64"),
    ("amd64", "linux/loongarch64", "qemu-loongarch64"),
    ("arm64", "linux/amd64", "qemu-x86_64"),
    ("arm64", "linux/386", "qemu-i386"),
    ("amd64", "linux/amd64", None),
    ("amd64", "linux/386", None),
    ("arm64", "linux/arm64", None),
])
def test_handler_for_each_platform(arch, platform, handler):
    assert handler_for(parse_platform(platform), arch) == handler


def test_a_missing_handler_is_an_error_with_the_fix():
    m = manifest(image(platforms=("linux/amd64", "linux/riscv64")))
    found = by_subject(diagnose(facts(), m), "platform linux/riscv64")
    assert found.level == "error"
    assert found.message == "no binfmt handler qemu-riscv64"
    assert "docker run --privileged --rm tonistiigi/binfmt --install riscv64" in found.fix
    assert "qemu-user-static" in found.fix


def test_a_missing_loongarch_handler_is_named():
    m = manifest(image(platforms=("linux/amd64", "linux/loong64")))
    found = by_subject(diagnose(facts(), m), "platform linux/loong64")
    assert (found.level, found.message) == ("error", "no binfmt handler qemu-loongarch64")
    assert "qemu-user-static" in found.fix
    present = by_subject(diagnose(facts(binfmt={"qemu-loongarch64": True}), m),
                         "platform linux/loong64")
    assert present.message == "via QEMU (binfmt handler qemu-loongarch64)"


def test_a_disabled_handler_is_an_error():
    found = by_subject(diagnose(facts(binfmt={"qemu-aarch64": False}), manifest()),
                       "platform linux/arm64")
    assert found.level == "error"
    assert "disabled" in found.message
    assert "/proc/sys/fs/binfmt_misc/qemu-aarch64" in found.fix


def test_fedora_static_handler_names_count():
    found = by_subject(diagnose(facts(binfmt={"qemu-aarch64-static": True}), manifest()),
                       "platform linux/arm64")
    assert found.level == "ok"


def test_on_an_arm64_host_amd64_needs_qemu_x86_64():
    m = manifest(image(platforms=("linux/arm64", "linux/amd64")))
    findings = diagnose(facts(engine(architecture="arm64"), binfmt={}), m)
    assert by_subject(findings, "platform linux/arm64").level == "ok"
    assert by_subject(findings, "platform linux/amd64").message == "no binfmt handler qemu-x86_64"
    assert "--install amd64" in by_subject(findings, "platform linux/amd64").fix


def test_arm_on_an_arm64_host_without_a_handler_is_a_warning():
    m = manifest(image(platforms=("linux/arm64", "linux/arm/v7")))
    found = by_subject(diagnose(facts(engine(architecture="arm64"), binfmt={}), m),
                       "platform linux/arm/v7")
    assert found.level == "warn"


CLASSIC = engine(version="20.10.24", containerd_store=False, driver="overlay2")


def test_docker_driver_without_containerd_store_fails_a_buildx_image():
    m = manifest(image(strategy="buildx"))
    findings = diagnose(facts(CLASSIC), m)
    assert "cannot build several platforms" in by_subject(findings, "builder default").message
    found = by_subject(findings, "image demo")
    assert found.level == "error"
    assert found.fix == buildx.ADVICE


def test_with_fallback_manifest_it_is_only_a_warning():
    m = manifest(image(strategy="buildx", fallback="manifest"))
    findings = diagnose(facts(CLASSIC), m)
    assert by_subject(findings, "image demo").level == "warn"
    assert errors(findings) == []


def test_builder_auto_is_not_held_to_the_default_builder():
    findings = diagnose(facts(CLASSIC), manifest(image(strategy="buildx"), builder="auto"))
    assert errors(findings) == []


def test_manifest_strategy_does_not_care_about_the_driver():
    findings = diagnose(facts(CLASSIC), manifest())
    assert errors(findings) == []
    assert not [f for f in findings if f.subject.startswith("image ")]


@pytest.mark.parametrize(("driver", "containerd", "several"), [
    ("docker", True, True), ("docker", False, False), ("docker-container", False, True),
    ("kubernetes", False, True), ("remote", False, True),
])
def test_can_build_several(driver, containerd, several):
    assert doctor.can_build_several({"driver": driver},
                                    {"containerd_store": containerd}) is several


def test_a_missing_builder_is_an_error_only_for_buildx_images():
    builder = {"name": "ci", "error": "no builder \"ci\" found"}
    assert by_subject(diagnose(facts(builder=builder), manifest()), "builder ci").level == "warn"
    findings = diagnose(facts(builder=builder), manifest(image(strategy="buildx"), builder="ci"))
    assert by_subject(findings, "builder ci").level == "error"


def registry(host, answers=True, scheme="http", addresses=("10.0.0.5",), error=None):
    return {host: {"addresses": list(addresses), "answers": answers, "scheme": scheme,
                   "error": error}}


def test_plain_http_registry_the_engine_treats_as_secure_names_the_daemon_json_line():
    found = by_subject(diagnose(facts(registries=registry("reg.lan:5000")), manifest()),
                       "registry reg.lan:5000")
    assert found.level == "error"
    assert '"insecure-registries": ["reg.lan:5000"]' in found.fix
    assert "daemon.json" in found.fix


def test_registry_inside_an_insecure_cidr_is_ok():
    insecure = engine(insecure_cidrs=["127.0.0.0/8", "10.0.0.0/24"])
    found = by_subject(diagnose(facts(insecure, registries=registry("reg.lan:5000")),
                                manifest()), "registry reg.lan:5000")
    assert found.level == "ok"
    assert "insecure" in found.message


def test_registry_marked_insecure_in_index_configs_is_ok():
    insecure = engine(index_configs={"reg.lan:5000": {"Secure": False}})
    found = by_subject(diagnose(facts(insecure, registries=registry("reg.lan:5000")),
                                manifest()), "registry reg.lan:5000")
    assert found.level == "ok"


def test_loopback_registry_is_always_insecure():
    for host in ("localhost:5000", "127.0.0.1:5000"):
        found = by_subject(diagnose(facts(engine(insecure_cidrs=[]),
                                          registries=registry(host, addresses=["127.0.0.1"])),
                                    manifest()), f"registry {host}")
        assert found.level == "ok"
        assert "(loopback)" in found.message


def test_https_registry_is_ok_and_a_silent_one_is_an_error():
    ok = diagnose(facts(registries=registry("ghcr.io", scheme="https")), manifest())
    assert by_subject(ok, "registry ghcr.io").message == "answers over HTTPS"
    down = diagnose(facts(registries=registry("reg.lan", answers=False, scheme=None,
                                              error="Connection refused")), manifest())
    found = by_subject(down, "registry reg.lan")
    assert found.level == "error"
    assert "Connection refused" in found.message


def test_untrusted_certificate_is_an_error_unless_insecure():
    untrusted = registry("reg.lan", answers=False, scheme="https-untrusted",
                         error="certificate verify failed")
    found = by_subject(diagnose(facts(registries=untrusted), manifest()), "registry reg.lan")
    assert found.level == "error"
    assert "/etc/docker/certs.d/reg.lan/ca.crt" in found.fix
    insecure = engine(index_configs={"reg.lan": {"Secure": False}})
    found = by_subject(diagnose(facts(insecure, registries=untrusted), manifest()),
                       "registry reg.lan")
    assert found.level == "ok"


def test_report_lines():
    lines = report([Finding("ok", "engine", "Docker 26.1.5 (containerd image store)"),
                    Finding("error", "platform linux/riscv64", "no binfmt handler qemu-riscv64",
                            "install it")])
    assert lines == [
        "ok    engine: Docker 26.1.5 (containerd image store)",
        "error platform linux/riscv64: no binfmt handler qemu-riscv64; fix: install it",
    ]


def test_parse_buildx_inspect_takes_the_builder_and_first_node():
    output = ("Name:          default\nDriver:        docker\n\nNodes:\nName:             default\n"
              "Endpoint:         default\nPlatforms:        linux/amd64, linux/arm64\n")
    assert parse_buildx_inspect(output) == {"name": "default", "driver": "docker",
                                            "platforms": ["linux/amd64", "linux/arm64"]}


def test_binfmt_handlers_reads_the_first_line(tmp_path):
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n")
    (tmp_path / "qemu-arm").write_text("disabled\ninterpreter /usr/bin/qemu-arm\n")
    (tmp_path / "register").write_text("")
    (tmp_path / "status").write_text("enabled\n")
    assert binfmt_handlers(tmp_path) == {"qemu-aarch64": True, "qemu-arm": False}
    assert binfmt_handlers(tmp_path / "absent") == {}


def test_host_arch_normalises_kernel_names():
    assert host_arch("x86_64") == "amd64"
    assert host_arch("aarch64") == "arm64"
    assert host_arch("loongarch64") == "loong64"


def test_doctor_raises_with_the_problem_count(monkeypatch, capsys):
    m = manifest(image(platforms=("linux/amd64", "linux/riscv64")))
    monkeypatch.setattr(doctor, "gather", lambda _: facts())
    with pytest.raises(DockerError, match=r"doctor: 1 problem\(s\).*platform linux/riscv64"):
        doctor.doctor(m)
    assert "error platform linux/riscv64: no binfmt handler" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "gather", lambda _: facts(binfmt={"qemu-riscv64": True}))
    assert doctor.doctor(m)["engine"]["version"] == "26.1.5"


def test_doctor_task_shape():
    run = type("Run", (), {"manifest": manifest()})()
    task = generate.doctor_task(run)
    assert task["uptodate"] == [False]
    reference, argument = task["actions"][0][1]
    assert (reference, argument) == (doctor.doctor, run.manifest)

