"""The remote backend against a real server process: the VectorEnv contract, one env, tokens, caps."""

from __future__ import annotations

import numpy as np
import pytest

import rock_envs
from rock_envs.backends.remote import RemoteBackendError
from rock_envs.core.errors import EnvArgumentError
from rock_envs.sandbox.errors import SandboxLimitError
from tests.support.envs import MOVES, SOKOBAN
from tests.support.server import free_port


def test_same_seeds_give_the_same_trajectories_as_local(make_remote):
    venv = make_remote(SOKOBAN, 4, num_workers=2)
    local = rock_envs.make_vec(SOKOBAN, 4, backend="local")
    try:
        assert venv.reset(seed=3)[0] == local.reset(seed=3)[0]
        for k in range(5):
            actions = [MOVES[(k + i) % 4] for i in range(4)]
            got, want = venv.step(actions), local.step(actions)
            assert got[0] == want[0]
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[2], want[2])
    finally:
        local.close()
    assert len(set(venv.group.sandbox_ids())) == 2


def test_array_observations_are_stacked_and_send_recv_gives_batches(make_remote):
    venv = make_remote("CartPole-v1", 6, num_workers=3, batch_size=2)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (6, 4)
    venv.send(np.zeros(6, dtype=np.int64))
    seen = []
    for _ in range(3):
        ids, obs, rewards, terms, truncs, infos = venv.recv()
        assert len(ids) == 2 and obs.shape == (2, 4)
        seen += ids.tolist()
    assert sorted(seen) == list(range(6))


def test_one_env_through_make_speaks_gem(remote_server):
    env = rock_envs.make(SOKOBAN, backend="remote", url=remote_server.url, token=remote_server.token)
    try:
        obs, info = env.reset(seed=1)
        assert isinstance(obs, str)
        obs, reward, terminated, truncated, info = env.step(MOVES[0])
        assert isinstance(obs, str) and isinstance(terminated, bool)
    finally:
        env.close()
    assert remote_server.sandboxes() == []


def test_the_token_defaults_to_the_token_file(make_remote, remote_server, tmp_path, monkeypatch):
    path = tmp_path / "token"
    path.write_text(remote_server.token + "\n")
    monkeypatch.delenv("ROCK_ENVS_TOKEN", raising=False)
    monkeypatch.setenv("ROCK_ENVS_TOKEN_FILE", str(path))
    venv = rock_envs.make_vec("CartPole-v1", 2, backend="remote", url=remote_server.url, num_workers=1)
    try:
        assert venv.reset(seed=0)[0].shape == (2, 4)
    finally:
        venv.close()


def test_a_wrong_token_or_no_server_is_a_clear_error(remote_server):
    with pytest.raises(RemoteBackendError, match="token"):
        rock_envs.make_vec("CartPole-v1", 2, backend="remote", url=remote_server.url, token="wrong")
    with pytest.raises(RemoteBackendError, match="unreachable"):
        rock_envs.make_vec(
            "CartPole-v1", 2, backend="remote", url=f"http://127.0.0.1:{free_port()}", token="x", reconnect_timeout=0.5
        )
    with pytest.raises(EnvArgumentError, match="url="):
        rock_envs.make_vec("CartPole-v1", 2, backend="remote")


def test_sandboxes_over_the_cap_are_refused_with_the_cap_and_the_count(own_server, make_remote):
    srv = own_server("--max-sandboxes", "3")
    first = make_remote("CartPole-v1", 4, srv=srv, num_workers=2)
    with pytest.raises(SandboxLimitError, match=r"cap on sandboxes is 3 and this server holds 3"):
        make_remote("CartPole-v1", 4, srv=srv, num_workers=2)
    assert set(srv.sandboxes()) == set(first.group.sandbox_ids())  # the refused env left nothing
    first.reset(seed=0)  # and the one that fit goes on


def test_envs_over_the_cap_per_server_and_per_token(own_server, make_remote):
    srv = own_server("--max-envs", "12", "--max-envs-per-token", "8", "--extra-token", "second-token")
    make_remote("CartPole-v1", 8, srv=srv, num_workers=2)
    with pytest.raises(SandboxLimitError, match=r"cap on envs per token is 8 and this token holds 8"):
        make_remote("CartPole-v1", 2, srv=srv, num_workers=1)
    other = rock_envs.make_vec("CartPole-v1", 4, backend="remote", url=srv.url, token="second-token", num_workers=1)
    try:
        with pytest.raises(SandboxLimitError, match=r"cap on envs is 12 and this server holds 12"):
            rock_envs.make_vec("CartPole-v1", 1, backend="remote", url=srv.url, token="second-token")
    finally:
        other.close()
    assert len(srv.sandboxes()) == 2
