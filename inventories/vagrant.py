"""pyinfra inventory of the Vagrant cluster (the Vagrantfile). Edit vagrant.yaml, not this file."""

from pdfleet.inventory import pyinfra_groups

_groups = pyinfra_groups(__file__)

prefill = _groups["prefill"]  # nodes of prefill instances
decode = _groups["decode"]  # nodes of decode instances (every rank)
router = _groups["router"]  # the node running the PD router
spare = _groups["spare"]  # nodes in no instance
