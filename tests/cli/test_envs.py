"""The `rock-envs` command, run as a user runs it: a real process."""

from __future__ import annotations

import subprocess

from tests.support.paths import PYTHON


def rock_envs(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "rock_envs.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_list_shows_source_and_offline_mark():
    out = rock_envs("list", "game:Wordle*")
    assert out.returncode == 0, out.stderr
    assert "game:Wordle-v0-easy" in out.stdout and "NLTK" in out.stdout and "gem" in out.stdout
    out = rock_envs("list", "--offline", "game:Soko*")
    assert "game:Sokoban-v0-easy" in out.stdout and "3 env(s)" in out.stdout


def test_info_prints_spec_and_spaces():
    out = rock_envs("info", "CartPole-v1")
    assert out.returncode == 0, out.stderr
    assert "Discrete(2)" in out.stdout and "gymnasium" in out.stdout


def test_unknown_id_exits_2_with_suggestions():
    out = rock_envs("info", "game:Sokobon-v0-easy")
    assert out.returncode == 2 and "Did you mean" in out.stdout and "game:Sokoban-v0-easy" in out.stdout


def test_run_prints_episodes_and_speed():
    out = rock_envs("run", "game:GuessTheNumber-v0-easy", "--steps", "40", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert "episode 0: return" in out.stdout and "steps/s" in out.stdout
    again = rock_envs("run", "game:GuessTheNumber-v0-easy", "--steps", "40", "--seed", "3")
    strip = lambda s: [line for line in s.splitlines() if "steps/s" not in line]  # noqa: E731
    assert strip(out.stdout) == strip(again.stdout)  # same seed, same episodes


def test_play_takes_typed_actions_and_shows_the_board():
    out = rock_envs("play", "rock:Sokoban-v0-tiny", "--seed", "1", stdin="\\boxed{up}\nrandom\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Here is the current board layout") >= 3
    assert "(random) \\boxed{" in out.stdout and "bye" in out.stdout
