from rock_envs.cli import main

main()
