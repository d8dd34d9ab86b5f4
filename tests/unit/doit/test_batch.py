"""tasks.doit.batch: which builds a run plans and which of them a bake takes; no engine."""

import os
import pickle
from dataclasses import replace

import pytest
from doit.dependency import JSONCodec
from multiarch.tasks.doit import batch, names, state
from multiarch.tasks.doit.batch import Batches, planned
from multiarch.tasks.inputs.digests import Inputs
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.routing import Node, Routing

from tests.unit.doit.test_generate import AMD64, ARM64, ARMV7, make_image, make_manifest


@pytest.fixture
def shop(tmp_path):
    """base; web and api FROM base; tool built with buildx."""
    base = make_image(tmp_path, "base")
    web = make_image(tmp_path, "web", depends_on=("base",))
    api = make_image(tmp_path, "api", depends_on=("base",), platforms=(AMD64, ARM64))
    tool = make_image(tmp_path, "tool", method=Method(strategy="buildx"))
    return make_manifest(tmp_path, base, web, api, tool)


def every(manifest, *image_names):
    return [(name, p) for name in image_names for p in manifest.image(name).platforms]


def test_a_plain_run_plans_every_manifest_strategy_build_bases_first(shop):
    assert planned(shop, []) == every(shop, "base", "web", "api")
    assert planned(shop, ["build"]) == planned(shop, ["push"]) == planned(shop, [])


def test_a_named_task_plans_its_builds_and_every_platform_of_its_bases(shop):
    assert planned(shop, ["push:api:linux/arm64"]) == [*every(shop, "base"), ("api", ARM64)]
    assert planned(shop, ["push:web:linux/arm/v7", "manifest:api"]) == [
        *every(shop, "base"), ("web", ARMV7), *every(shop, "api")]
    assert planned(shop, ["build:web"]) == every(shop, "base", "web")


def test_a_build_alone_is_not_baked_but_its_bases_are(shop):
    assert planned(shop, ["build:api:linux/arm64"]) == every(shop, "base")
    assert planned(shop, ["build:api:linux/arm64", "push:api:linux/arm64"]) == [
        *every(shop, "base"), ("api", ARM64)]


def test_single_plans_only_what_is_named_and_buildx_or_other_tasks_nothing(shop):
    assert planned(shop, ["push:web:linux/amd64"], single=True) == [("web", AMD64)]
    assert planned(shop, ["build:web:linux/amd64"], single=True) == []
    assert planned(shop, ["build:tool", "doctor", "push:nope:linux/amd64"]) == []


def store(dep_file, task_id: str, values: dict) -> None:
    db = state.CommittingSqliteDB(dep_file, JSONCodec())
    db.set(task_id, state.FIRST_KEY, values)
    db.set(task_id, state.LAST_KEY, [])
    db.dump()


def test_saved_values_reads_each_task_s_values_as_committed(tmp_path):
    dep_file = str(tmp_path / "doit.db")
    assert state.saved_values(dep_file) == {}
    store(dep_file, "build:web:linux/amd64", {"input_digest": "sha256:1"})
    assert state.saved_values(dep_file) == {"build:web:linux/amd64": {"input_digest": "sha256:1"}}


class Recorder:
    """Stands in for builders.stages.bake.bake: what it was asked to build."""

    def __init__(self):
        self.batches = []

    def __call__(self, targets, state_dir, node, registries=(), arch=None):
        self.batches.append([(t.image.name, p) for t in targets for p in t.platforms])
        return {(t.image.name, p): {"source": "bake"} for t in targets for p in t.platforms}


@pytest.fixture
def baking(monkeypatch, shop, tmp_path):
    recorder = Recorder()
    monkeypatch.setattr(batch.bake, "bake", recorder)
    monkeypatch.setattr(Batches, "_engine_bakes", lambda self: True)
    manifest = replace(shop, cache="local")
    dep_file = str(tmp_path / "doit.db")
    store(dep_file, "unrelated", {})
    inputs = Inputs(manifest)
    return manifest, inputs, dep_file, recorder


def test_the_first_build_bakes_its_level_and_the_rest_find_theirs(baking):
    manifest, inputs, dep_file, recorder = baking
    batches = Batches(manifest, inputs, planned(manifest, []), dep_file)
    base = manifest.image("base")
    assert batches.built(base, ARM64) == {"source": "bake"}
    assert recorder.batches == [every(manifest, "base")]  # web and api wait for base's lists
    assert batches.built(base, AMD64) == {"source": "bake"}
    assert batches.built(manifest.image("api"), AMD64) == {"source": "bake"}
    assert sorted(recorder.batches[1]) == sorted([*every(manifest, "web"),
                                                  *every(manifest, "api")])
    assert len(recorder.batches) == 2


def test_a_build_whose_inputs_match_its_record_is_left_out(baking):
    manifest, inputs, dep_file, recorder = baking
    web = manifest.image("web")
    store(dep_file, names.build("web", ARM64), {"input_digest": inputs.digest(web, ARM64)})
    batches = Batches(manifest, inputs, every(manifest, "web"), dep_file)
    assert batches.built(web, AMD64) == {"source": "bake"}
    assert recorder.batches == [[("web", AMD64), ("web", ARMV7)]]
    assert batches.built(web, ARM64) is None  # doit ran it all the same (-a): on its own
    assert len(recorder.batches) == 1


def test_always_bakes_every_build(baking):
    manifest, inputs, dep_file, recorder = baking
    web = manifest.image("web")
    store(dep_file, names.build("web", ARM64), {"input_digest": inputs.digest(web, ARM64)})
    Batches(manifest, inputs, every(manifest, "web"), dep_file, always=True).built(web, AMD64)
    assert recorder.batches == [every(manifest, "web")]


def test_no_bake_without_our_state_db_or_in_another_process(baking):
    manifest, inputs, dep_file, recorder = baking
    web = manifest.image("web")
    assert Batches(manifest, inputs, every(manifest, "web"), None).built(web, AMD64) is None
    copied = pickle.loads(pickle.dumps(Batches(manifest, inputs, every(manifest, "web"),
                                               dep_file)))
    assert copied.built(web, AMD64) is None
    other = Batches(manifest, inputs, every(manifest, "web"), dep_file)
    other.pid = os.getpid() + 1
    assert other.built(web, AMD64) is None
    assert recorder.batches == []


def test_a_routed_platform_builds_on_its_node_alone(baking):
    manifest, inputs, dep_file, recorder = baking
    routed = replace(manifest, routing=Routing(routes=((ARM64, Node(docker_host="tcp://n:2375")),)))
    web = routed.image("web")
    batches = Batches(routed, Inputs(routed), every(routed, "web"), dep_file)
    assert batches.built(web, ARM64) is None
    assert recorder.batches == [[("web", AMD64), ("web", ARMV7)]]
