"""The public surface is deliberate: `__all__`, py.typed, the error tree."""

from __future__ import annotations

import importlib.resources

import rock_envs


def test_all_names_exist_and_nothing_private_leaks():
    for name in rock_envs.__all__:
        assert hasattr(rock_envs, name), name
    assert {"make", "make_vec", "register", "spec", "list_envs", "EnvSpec", "Env", "RockEnvsError"} <= set(rock_envs.__all__)
    assert not [n for n in rock_envs.__all__ if n.startswith("_")]


def test_package_is_typed():
    assert importlib.resources.files("rock_envs").joinpath("py.typed").is_file()


def test_every_error_has_the_root_and_a_builtin():
    errors = [getattr(rock_envs, n) for n in rock_envs.__all__ if n.endswith("Error") and n != "RockEnvsError"]
    for error in errors:
        assert issubclass(error, rock_envs.RockEnvsError)
        builtin_bases = [b for b in error.__mro__[1:] if b.__module__ == "builtins" and b not in (Exception, BaseException, object)]
        assert builtin_bases, f"{error.__name__} subclasses no builtin"
