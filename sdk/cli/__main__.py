from orch.cli import main

main()
