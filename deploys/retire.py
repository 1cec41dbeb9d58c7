"""Retire a node from serving (`pdfleet replace-node` runs this on the node it replaces, before the inventory
changes): its SGLang units and the router's, if it ran there, stopped, disabled and out of systemd's reach
(roles/retire.py), so that the node never rejoins the cluster if it comes back.

    pyinfra inventories/prod.py deploys/retire.py --limit OLD [--data pdfleet_retire_note="replaced by spare-0"]

It reads nothing of the inventory but the cluster's name: after the replacement, when OLD is no longer in the
inventory, its previous version (git) does, and so does a bare address (`pyinfra 10.10.0.12 deploys/retire.py`).
"""

from roles.retire import retire

retire()
