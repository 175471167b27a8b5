"""The public surface is deliberate: `__all__`, py.typed, the error tree."""

from __future__ import annotations

import importlib.resources
import re

import rock_envs


def test_all_names_exist_and_nothing_private_leaks():
    for name in rock_envs.__all__:
        assert hasattr(rock_envs, name), name
    assert {"make", "make_vec", "register", "spec", "list_envs", "EnvSpec", "Env", "RockEnvsError"} <= set(
        rock_envs.__all__
    )
    assert not [n for n in rock_envs.__all__ if n.startswith("_")]


def test_package_is_typed():
    assert importlib.resources.files("rock_envs").joinpath("py.typed").is_file()


def test_every_error_has_the_root_and_a_builtin():
    errors = [getattr(rock_envs, n) for n in rock_envs.__all__ if n.endswith("Error") and n != "RockEnvsError"]
    for error in errors:
        assert issubclass(error, rock_envs.RockEnvsError)
        builtin_bases = [
            b for b in error.__mro__[1:] if b.__module__ == "builtins" and b not in (Exception, BaseException, object)
        ]
        assert builtin_bases, f"{error.__name__} subclasses no builtin"


def test_all_is_exactly_the_public_names():
    import types

    public = {n for n, v in vars(rock_envs).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(rock_envs.__all__)


def test_make_vec_has_its_real_signature_and_returns_the_exported_class():
    import inspect
    import typing

    from rock_envs.backends import BACKENDS, BackendName, backend_option_names
    from rock_envs.vector.make_vec import BACKEND_OPTIONS

    params = inspect.signature(rock_envs.make_vec).parameters
    assert set(BACKEND_OPTIONS) == {o for b in BACKENDS for o in backend_option_names(b)}  # every option, once
    assert set(BACKEND_OPTIONS) <= set(params)
    hints = typing.get_type_hints(rock_envs.make_vec)
    assert hints["return"] is rock_envs.RockVectorEnv
    assert typing.get_args(BackendName) == BACKENDS == ("local", "subprocess", "docker", "ray", "remote")
    with rock_envs.make_vec("CartPole-v1", 2, backend="local") as venv:
        assert isinstance(venv, rock_envs.RockVectorEnv)
        assert callable(venv.send) and callable(venv.recv) and callable(venv.async_reset)


def test_an_option_of_another_backend_is_a_clear_error():
    import pytest

    with pytest.raises(
        rock_envs.EnvArgumentError,
        match=re.escape(
            "`make_vec`: `image` is an option of the docker and remote backend(s), not of 'subprocess'; "
            "for an env kwarg of that name pass env_kwargs={'image': ...}."
        ),
    ):
        rock_envs.make_vec("CartPole-v1", 2, backend="subprocess", image="x")
