from edgeface.cli import main

main()
