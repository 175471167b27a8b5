from rock_envs.worker.loop import main

main()
