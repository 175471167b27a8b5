"""ROCK_WIRE.md §5 T5: `rock.make` against `rock-envs serve`, its token in the base URL (HTTP Basic)."""

from __future__ import annotations

import pytest


@pytest.fixture
def rock_base_url(process_rock, monkeypatch):
    host = process_rock.url.removeprefix("http://")
    monkeypatch.setenv("ROCK_BASE_URL", f"http://rock:{process_rock.token}@{host}")  # read by rock.make per call
    return process_rock


def test_rock_make_gem(rock_base_url):
    import rock

    one, two = rock.make("game:Sokoban-v0-easy"), rock.make("game:Sokoban-v0-easy")
    try:
        first, info = one.reset(seed=42)
        assert first == two.reset(seed=42)[0] and first == one.reset(seed=42)[0]
        assert isinstance(info, dict) and "suffix" in info
        obs, reward, terminated, truncated, info = one.step("\\boxed{up}")
        assert (type(obs), type(reward), type(terminated), type(truncated), type(info)) == (
            str,
            float,
            bool,
            bool,
            dict,
        )
        _, reward, terminated, _, _ = two.step("not an action")
        assert terminated and reward == pytest.approx(-0.1)
    finally:
        one.close()
        one.close()
        two.close()


def test_rock_make_errors(rock_base_url, monkeypatch):
    import rock

    with pytest.raises(Exception, match="HTTP error 500 for make") as raised:
        rock.make("nope:X-v0")
    assert "nope:X-v0" in str(raised.value)
    with pytest.raises(TypeError):
        rock.make("game:Sokoban-v0-easy", session_name="x")  # the client's own limit
    monkeypatch.setenv("ROCK_BASE_URL", rock_base_url.url)  # no token
    with pytest.raises(Exception, match="HTTP error 401 for make"):
        rock.make("game:Sokoban-v0-easy")
