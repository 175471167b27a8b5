"""Quick start: play Sokoban with random moves, in-process and then 8 at a time in worker processes."""

import random

import rock_envs

# One env, in this process: GEM's reset/step face. Actions are text, e.g. "\boxed{up}".
env = rock_envs.make("game:Sokoban-v0-easy")
obs, info = env.reset(seed=42)
print(obs)
print(info["suffix"])

moves = ["up", "down", "left", "right"]
rng = random.Random(0)
episode_return = 0.0
for step in range(1, 21):
    action = f"\\boxed{{{rng.choice(moves)}}}"
    obs, reward, terminated, truncated, info = env.step(action)
    episode_return += reward
    if terminated or truncated:
        break
print(f"\nafter {step} random moves: return {episode_return}, terminated={terminated}, truncated={truncated}")
print(info["suffix"])
env.close()


# Eight envs in two worker processes, stepped as one batch: a gymnasium.vector.VectorEnv.
with rock_envs.make_vec("game:Sokoban-v0-easy", num_envs=8, backend="subprocess") as venv:
    obs, infos = venv.reset(seed=0)  # env i gets seed 0 + i
    returns = [0.0] * venv.num_envs
    for _ in range(30):
        actions = [f"\\boxed{{{rng.choice(moves)}}}" for _ in range(venv.num_envs)]
        obs, rewards, terminations, truncations, infos = venv.step(actions)
        returns = [r + float(x) for r, x in zip(returns, rewards)]
    print(f"\n8 envs, 30 steps each: returns {[round(r, 2) for r in returns]}")
