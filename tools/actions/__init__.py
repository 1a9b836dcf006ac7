"""Remediation executors: the only code that changes anything in the estate.

Imported only by the graph node that runs approved actions (graphs/execute.py) and by the server
wiring that builds them; agents and view tools never import this package.
"""
