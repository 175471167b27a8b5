"""Mixed batches: several env ids (and per-env kwargs) in one vector env, on every backend."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import rock_envs
from tests.support.envs import CARTPOLE, GUESS, MOVES, SOKOBAN
from tests.support.processes import kill_worker

MINES = "game:Minesweeper-v0-easy"
MIXED = [SOKOBAN, MINES, GUESS, SOKOBAN]


def _actions(t: int) -> list[str]:
    return [
        MOVES[t % 4],
        f"\\boxed{{reveal {t % 5} {(t + 2) % 5}}}",
        f"\\boxed{{{t * 7 % 20 + 1}}}",
        MOVES[(t + 1) % 4],
    ]


def test_a_list_of_ids_steps_each_as_its_own_vector_env_would(make):
    """Env i of the mix gives what a one-env vector env of its id, reset with the same seed, gives."""
    venv = make(MIXED, 4)
    obs, infos = venv.reset(seed=10)
    assert list(infos["env_id"]) == MIXED and infos["_env_id"].all()
    mixed = [list(obs)] + [list(venv.step(_actions(t))[0]) for t in range(6)]
    for i, env_id in enumerate(MIXED):
        alone = make(env_id, 1)
        seen = [alone.reset(seed=10 + i)[0][0]] + [alone.step([_actions(t)[i]])[0][0] for t in range(6)]
        assert [row[i] for row in mixed] == seen


def test_a_dict_of_counts_and_per_env_kwargs(make):
    venv = make(CARTPOLE, 3, env_kwargs=[{"max_episode_steps": 2}, {"max_episode_steps": 3}, {}])
    venv.reset(seed=0)
    truncated = [venv.step(np.zeros(3, dtype=np.int64))[3].tolist() for _ in range(3)]
    assert truncated[1][:2] == [True, False] and truncated[2][:2] == [False, True]
    assert "env_id" not in venv.step(np.zeros(3, dtype=np.int64))[4]  # one id: infos as before
    mix = make({SOKOBAN: 2, GUESS: 2}, 4)
    assert repr(mix).startswith(f"RockVectorEnv('{SOKOBAN}+{GUESS}'")
    assert [s.id for s in mix.env_specs] == [SOKOBAN, SOKOBAN, GUESS, GUESS] and mix.spec is None
    _, infos = mix.reset(seed=0)
    assert list(infos["env_id"]) == [SOKOBAN, SOKOBAN, GUESS, GUESS]


def test_send_recv_and_same_step_autoreset_name_each_rows_env(make):
    venv = make(MIXED, 4, autoreset_mode="same_step", batch_size=2)
    venv.reset(seed=0)
    venv.send([MOVES[0], "\\boxed{reveal 0 0}"], [0, 1])
    venv.send(["\\boxed{3}", MOVES[1]], [2, 3])
    seen: dict[int, str] = {}
    for _ in range(2):
        ids, obs, rewards, terms, truncs, infos = venv.recv()
        seen.update({int(i): name for i, name in zip(ids, infos["env_id"])})
    assert seen == dict(enumerate(MIXED))
    for t in range(30):  # GuessTheNumber ends within its turns: its final obs comes in the same step
        *_, infos = venv.step(_actions(t))
        if "final_obs" in infos and infos["_final_obs"][2]:
            assert infos["env_id"][2] == GUESS
            break
    else:
        pytest.fail("GuessTheNumber never ended")


@pytest.mark.parametrize("num_workers", [1, 2])
def test_array_envs_with_other_spaces_name_both_envs_and_spaces(backend, num_workers):
    message = re.escape("env 0 ('CartPole-v1')") + ".*Box.*" + re.escape("env 1 ('Acrobot-v1')") + ".*Box"
    with pytest.raises(rock_envs.SpaceMismatchError, match=message):
        rock_envs.make_vec([CARTPOLE, "Acrobot-v1"], backend=backend.name, num_workers=num_workers, **backend.kwargs)


def test_text_and_array_envs_do_not_mix(backend):
    with pytest.raises(rock_envs.SpaceMismatchError, match=re.escape(f"env 1 ({SOKOBAN!r}) has AnyText")):
        rock_envs.make_vec([CARTPOLE, SOKOBAN], backend=backend.name, num_workers=1, **backend.kwargs)


def test_snapshots_of_a_mix_restore_into_envs_of_their_own_id_only(make):
    venv = make(MIXED, 4)
    venv.reset(seed=1)
    venv.step(_actions(0))
    snaps = venv.snapshot()
    after = venv.step(_actions(1))[0]
    venv.restore(snaps)
    assert venv.step(_actions(1))[0] == after
    with pytest.raises(rock_envs.SnapshotError, match=re.escape(SOKOBAN)):
        venv.restore([snaps[0]], [1])  # a Sokoban snapshot into the Minesweeper env


def test_a_killed_worker_with_two_env_ids_rebuilds_each_as_it_was(make, process_backend):
    venv = make(MIXED, 4, num_workers=2)
    first, _ = venv.reset(seed=4)
    kill_worker(venv, 0)  # envs 0 (Sokoban) and 1 (Minesweeper)
    time.sleep(0.2)
    obs, rewards, terms, truncs, infos = venv.step(_actions(0))
    assert list(infos["_worker_restarted"]) == [True, True, False, False]
    assert list(obs[:2]) == list(first[:2])  # each rebuilt as its own id, re-seeded with its seed
    assert list(infos["env_id"]) == MIXED


def test_bad_mixes_are_clear_errors():
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("num_envs=3 but the env ids give 2 envs")):
        rock_envs.make_vec([SOKOBAN, GUESS], 3, backend="local")
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("expected one kwargs dict per env (2), got 1")):
        rock_envs.make_vec([SOKOBAN, GUESS], env_kwargs=[{}], backend="local")
    with pytest.raises(rock_envs.EnvArgumentError, match=re.escape("a positive int; got 'game:Sokoban-v0-easy': 0")):
        rock_envs.make_vec({SOKOBAN: 0}, backend="local")
    with pytest.raises(rock_envs.EnvArgumentError, match="not both"):
        rock_envs.make_vec([SOKOBAN, lambda: None], backend="local")
    with pytest.raises(rock_envs.UnknownEnvError, match=re.escape("Did you mean 'game:Sokoban-v0-easy'")):
        rock_envs.make_vec([SOKOBAN, "game:Sokobann-v0-easy"], backend="local")
