"""Programs pdfleet copies to the hosts and runs there with the host's own /usr/bin/python3.

Each module here is a standalone script: standard library only, Python 3.10+, no import of pdfleet (the hosts do
not have it). The deploy puts the file as it is on the host (weights.py -> /usr/local/lib/pdfleet/pdfleet-weights.py)
and tests run it as a subprocess, the way the host does.
"""
