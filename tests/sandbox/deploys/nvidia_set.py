"""The NVIDIA driver set alone (pin file + held set), for the sandbox tests of the host layer's core move."""

from pdfleet.hostplan import nvidia_pins
from roles import common
from roles.packages import held_set

common.put_rendered("/etc/apt/preferences.d/pdfleet-nvidia.pref", name="NVIDIA | pin the set")
held_set(name="NVIDIA | driver set installed and held", pins=nvidia_pins(common.cluster()), label="NVIDIA set")
