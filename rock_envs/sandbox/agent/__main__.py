from .boot import main

main()
