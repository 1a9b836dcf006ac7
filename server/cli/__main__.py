"""`python -m server.cli ...` runs the command line."""

from server.cli import main

main()
