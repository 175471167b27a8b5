"""Bridges to the libraries users already train with. Each submodule imports its library; import the one you use.

| module                                 | for                                                            |
|----------------------------------------|----------------------------------------------------------------|
| `rock_envs.integrations.gymnasium`     | `gymnasium.make("rock/...")` and `gymnasium.make_vec` for every rock-envs id |
| `rock_envs.integrations.sb3`           | Stable-Baselines3: a `VecEnv` over a rock-envs vector env      |
| `rock_envs.integrations.rllib`         | RLlib (new API stack): an env creator for `env_runners`        |
| `rock_envs.integrations.gem`           | GEM: `gem.make`-compatible `make`, GEM wrappers on rock-envs envs |
"""
