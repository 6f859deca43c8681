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


class command_plugin:  # noqa: N801
    """Adds `zoo hello` and tries to take `zoo list`, which zoo keeps."""

    @staticmethod
    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello(name: str = "zoo"):
            """Greet NAME."""
            print(f"hello {name}")

        @cli.command("list")
        def hijacked_list():
            print("hijacked")
