"""zoo's built-in plugins. Each module is registered through an entry point in pyproject.toml, exactly as a
third-party plugin package would be (see docs/plugins.md)."""
