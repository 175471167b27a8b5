"""What the tests share, one module per idea; the fixtures built on them are in tests/conftest.py.

| module            | holds                                                                   |
|-------------------|-------------------------------------------------------------------------|
| paths.py          | the repository's ROOT and EXAMPLES, the PYTHON tests run and spawn, short temp dirs |
| processes.py      | the process census for leak checks (agents, env workers) and `settle`   |
| server.py         | `ServerProcess`: a real sandbox server on 127.0.0.1; free ports; the runtimes under test |
| envs.py           | the env ids and actions tests step, and small test envs pickled by value |
| backends.py       | the five backends every shared suite runs against                        |
| docker_support.py | a Docker engine (or one loud skip), the test image, container listings   |
"""
