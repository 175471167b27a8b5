"""Small example tasks written for rock-envs (no downloads): see ``code_tasks``."""
