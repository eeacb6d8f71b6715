from taskq.cli import main

main()
