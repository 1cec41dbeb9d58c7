"""Blue/green's switch on the router's node (`pdfleet blue-green` runs it): the incoming set (this inventory) ready
in the router beside the outgoing one, then the outgoing one drained (roles/switch.py).

    pyinfra STAGED.py deploys/switch.py --limit ROUTER_NODE --data pdfleet_outgoing=INVENTORY.yaml
"""

from roles.layers import apply
from roles.switch import switch

apply((switch,))
