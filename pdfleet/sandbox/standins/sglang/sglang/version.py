from sglang import __version__, __version_tuple__  # noqa: F401  (real SGLang has sglang.version.__version__)
