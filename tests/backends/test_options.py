"""Backend options: one dataclass per backend, checked when made, the same ones make_vec builds."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing

import pytest
from gymnasium.vector import AutoresetMode

import rock_envs
from rock_envs.backends import (
    OPTIONS,
    DockerOptions,
    RayOptions,
    RemoteOptions,
    SubprocessOptions,
    create_group,
    options_for,
)
from rock_envs.backends import options as options_module


def test_every_option_is_a_keyword_of_make_vec_with_the_same_default_meaning():
    params = inspect.signature(rock_envs.make_vec).parameters
    for cls in OPTIONS.values():
        for field in dataclasses.fields(cls):
            assert field.name in params, f"{cls.__name__}.{field.name} is not a make_vec keyword"
            assert params[field.name].default is None  # None: the dataclass's default applies


def test_every_option_field_has_a_docstring():
    tree = ast.parse(inspect.getsource(options_module))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in {cls.__name__ for cls in OPTIONS.values()}:
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if stmt.target.id == "backend":
                        continue
                    doc = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), (
                        f"{node.name}.{stmt.target.id} has no docstring"
                    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SubprocessOptions(start_method="threads"), r"start_method=\.\.\.\)`: expected one of"),
        (lambda: DockerOptions(envs_per_container=0), r"envs_per_container=\.\.\.\)`: expected a positive integer"),
        (lambda: DockerOptions(memory="lots"), r"backend='docker'\)`: bad sandbox limits"),
        (lambda: RayOptions(worker_resources={"cpu": 1}), r"worker_resources=\.\.\.\)`: unknown keys \['cpu'\]"),
        (lambda: RayOptions(placement="everywhere"), r"placement=\.\.\.\)`: expected one of"),
        (lambda: RemoteOptions(), r"expected `url=` of a rock-envs server"),
        (lambda: RemoteOptions(url="http://127.0.0.1:1", runtime="vm"), r"runtime=\.\.\.\)`: expected 'process'"),
        (lambda: RemoteOptions(url="http://127.0.0.1:1", envs_per_sandbox=-2), r"envs_per_sandbox"),
    ],
)
def test_bad_options_are_told_when_the_options_are_made(make, message):
    with pytest.raises(rock_envs.EnvArgumentError, match=message):
        make()


def test_make_vec_checks_options_before_starting_anything():
    with pytest.raises(rock_envs.EnvArgumentError, match="envs_per_container"):
        rock_envs.make_vec("CartPole-v1", 2, backend="docker", envs_per_container=0)  # no engine is touched


def test_options_for_fills_defaults_and_derives_worker_counts():
    docker = options_for("docker", {"envs_per_container": 3, "cpus": None})
    assert docker == DockerOptions(envs_per_container=3)
    assert docker.default_workers(7) == 3  # ceil(7 / 3)
    assert options_for("remote", {"url": "http://127.0.0.1:1", "envs_per_sandbox": 4}).default_workers(9) == 3
    assert options_for("local", {}).default_workers(64) == 1
    assert 1 <= options_for("subprocess", {}).default_workers(64) <= 64
    assert RayOptions().resources == {"num_cpus": 1}
    assert RayOptions(placement=None).placement == "spread"


def test_a_group_gets_its_options_and_shares_the_gone_and_closed_bookkeeping():
    group = create_group("subprocess", 2, SubprocessOptions(shared_memory=False))
    assert group.options.shared_memory is False and group.num_workers == 2
    group.start()
    try:
        group.kill(0)
        assert [type(reply).__name__ for _, reply in group.wait(10)] == ["WorkerGone"]
        assert group._gone == [True, False]
        group.restart(0)
        assert group._gone == [False, False]
    finally:
        group.close()
    group.close()  # a second close does nothing


def test_one_autoreset_type_from_make_vec_to_the_worker():
    from rock_envs.worker.protocol import Make

    assert typing.get_type_hints(Make)["autoreset_mode"] is AutoresetMode
    for given in ("same_step", AutoresetMode.SAME_STEP):
        with rock_envs.make_vec("CartPole-v1", 2, backend="local", autoreset_mode=given) as venv:
            assert venv.autoreset_mode is AutoresetMode.SAME_STEP
            assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
            assert venv._d.make_request.autoreset_mode is AutoresetMode.SAME_STEP  # what goes to the workers
    with pytest.raises(rock_envs.EnvArgumentError, match=r"autoreset_mode must be one of \['next_step'"):
        rock_envs.make_vec("CartPole-v1", 2, backend="local", autoreset_mode="sometimes")
