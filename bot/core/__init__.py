"""The platform-free core: types, ports, the exception tree, settings and text utilities.
Imports no SDK (checked by import-linter: see pyproject.toml)."""
