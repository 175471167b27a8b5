"""The registry: its five sources, their order, catalog files, and a real installed plugin."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

import rock_envs
import rock_envs.registry as registry
from tests.support.paths import PYTHON


def test_runtime_registration_with_spec_defaults(runtime_ids):
    spec = rock_envs.register(
        "acme:Guess-v0",
        entry_point="gem.envs.game_env.guess_the_number:GuessTheNumberEnv",
        kwargs={"min_number": 1, "max_number": 3, "max_turns": 2},
        backend="subprocess",
        image="acme:latest",
        cpus=0.5,
        memory="256m",
    )
    assert rock_envs.spec("acme:Guess-v0") is spec
    assert (spec.backend, spec.image, spec.cpus, spec.memory, spec.source) == (
        "subprocess",
        "acme:latest",
        0.5,
        "256m",
        "runtime",
    )
    env = rock_envs.make("acme:Guess-v0", backend="local", max_turns=5)
    assert env.unwrapped.max_turns == 5 and env.unwrapped.max_number == 3
    with pytest.raises(rock_envs.EnvArgumentError, match="already registered"):
        rock_envs.register("acme:Guess-v0", entry_point="x:y")
    with pytest.raises(rock_envs.EnvArgumentError, match="unknown spec field"):
        rock_envs.register("acme:Other-v0", entry_point="x:y", colour="red")


def test_runtime_registration_takes_callables_and_wins_over_every_source(runtime_ids):
    import gymnasium

    rock_envs.register("CartPole-v1", entry_point=lambda: gymnasium.make("MountainCar-v0"), override=True)
    assert type(rock_envs.make("CartPole-v1").unwrapped).__name__ == "MountainCarEnv"
    registry.unregister("CartPole-v1")
    assert type(rock_envs.make("CartPole-v1").unwrapped).__name__ == "CartPoleEnv"


def test_catalog_files_ship_and_extra_folders_join(tmp_path, monkeypatch):
    assert rock_envs.spec("rock:Sokoban-v0-tiny").source == "catalog:rock.toml"
    (tmp_path / "mine.toml").write_text(
        textwrap.dedent("""
        [[env]]
        id = "mine:Hanoi-v0"
        entry_point = "gem.envs.game_env.tower_of_hanoi:TowerofHanoiEnv"
        kwargs = { num_disks = 3, max_turns = 20 }
        cpus = 2.0
        [[env]]
        id = "game:Sokoban-v0-easy"
        entry_point = "gem.envs.game_env.sokoban.sokoban:SokobanEnv"
        kwargs = { dim_room = [5, 5], num_boxes = 1, max_turns = 3 }
    """)
    )
    monkeypatch.setenv("ROCK_ENVS_CATALOG_PATH", str(tmp_path))
    registry.refresh()
    try:
        spec = rock_envs.spec("mine:Hanoi-v0")
        assert spec.source == "catalog:mine.toml" and spec.cpus == 2.0
        env = rock_envs.make("mine:Hanoi-v0")
        assert isinstance(env.reset(seed=0)[0], str)
        # A catalog comes before GEM: the catalog's Sokoban wins.
        assert rock_envs.spec("game:Sokoban-v0-easy").source == "catalog:mine.toml"
    finally:
        monkeypatch.delenv("ROCK_ENVS_CATALOG_PATH")
        registry.refresh()
    assert rock_envs.spec("game:Sokoban-v0-easy").source == "gem"


def test_list_envs_globs_and_every_source_shows():
    games = rock_envs.list_envs("game:Sokoban-*")
    assert [s.id for s in games] == ["game:Sokoban-v0-easy", "game:Sokoban-v0-hard", "game:Sokoban-v0-random"]
    sources = {s.source.split(":")[0] for s in rock_envs.list_envs()}
    assert {"catalog", "gem", "gymnasium"} <= sources
    assert any(s.id == "CartPole-v1" for s in rock_envs.list_envs("Cart*"))


PLUGIN_PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "acme-rock-maze"
version = "0.0.1"

[project.entry-points."rock_envs.envs"]
acme = "acme_rock_maze:envs"

[tool.hatch.build.targets.wheel]
packages = ["acme_rock_maze"]
"""

PLUGIN_CODE = """
import gymnasium
from gymnasium import spaces


class Maze(gymnasium.Env):
    def __init__(self, size=5):
        self.size = size
        self.observation_space = spaces.Discrete(size * size)
        self.action_space = spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return self.pos, {}

    def step(self, action):
        self.pos = min(self.pos + 1, self.size * self.size - 1)
        done = self.pos == self.size * self.size - 1
        return self.pos, float(done), done, False, {}


def envs():
    return [{"id": "acme:Maze-v0", "entry_point": "acme_rock_maze:Maze", "kwargs": {"size": 3}}]
"""


@pytest.fixture
def installed_plugin(tmp_path):
    project = tmp_path / "acme-rock-maze"
    (project / "acme_rock_maze").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (project / "acme_rock_maze" / "__init__.py").write_text(PLUGIN_CODE)
    pip = [PYTHON, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps", str(project)]
    subprocess.run(pip, check=True)
    yield
    subprocess.run([PYTHON, "-m", "pip", "uninstall", "-q", "-y", "acme-rock-maze"], check=True)


def test_installed_package_contributes_ids_through_the_entry_point_group(installed_plugin):
    # A fresh interpreter, as a user would have after `pip install acme-rock-maze`.
    code = textwrap.dedent("""
        import rock_envs
        spec = rock_envs.spec("acme:Maze-v0")
        env = rock_envs.make("acme:Maze-v0")
        obs, _ = env.reset(seed=0)
        total = 0
        for _ in range(8):
            obs, r, term, trunc, _ = env.step(0)
            total += r
        print(spec.source, spec.kwargs["size"], obs, total, term)
    """)
    out = subprocess.run([PYTHON, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["plugin:acme-rock-maze", "3", "8", "1.0", "True"]


def test_order_of_sources_is_documented_and_held():
    assert registry.SOURCES == ("runtime", "plugin", "catalog", "gem", "gymnasium")
    doc = registry.__doc__
    positions = [
        doc.index(word)
        for word in ("run-time", "entry-point group", "catalog files", "GEM's registry", "Gymnasium's registry")
    ]
    assert positions == sorted(positions)
