"""pdfleet's pyinfra roles: one module per component, each a `@deploy` function plus the facts it reads.

Roles put on hosts exactly the text `pdfleet.render` produced; they never build a command line of their own.
"""
