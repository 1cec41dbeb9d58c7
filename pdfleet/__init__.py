"""pdfleet: provision GPU clusters for SGLang prefill/decode disaggregated serving, with pyinfra.

Data flows one way: inventory (YAML) -> cluster model -> serving plan -> rendered files -> pyinfra operations.
"""

__version__ = "0.1.0"
