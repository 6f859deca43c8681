"""Plugin modules for tests/test_plugins.py, loaded through fake entry points."""

from zoo import hookimpl


class typo_plugin:  # noqa: N801 - a module-like namespace, as pluggy sees a plugin module
    @staticmethod
    @hookimpl
    def register_domain(register):  # misspelled: the hook is register_domains
        pass


class good_plugin:  # noqa: N801
    @staticmethod
    @hookimpl
    def register_metrics(register):
        pass
