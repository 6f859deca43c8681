"""The hooks a zoo plugin can implement. Each receives a `register` callback, so core owns ordering and duplicates."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("zoo")
hookimpl = HookimplMarker("zoo")


@hookspec
def register_domains(register):
    """Call register(DomainSpec(...)) once for each domain the plugin provides."""


@hookspec
def register_metrics(register):
    """Call register(MetricSpec(...)) once for each image metric the plugin provides."""


@hookspec
def register_commands(cli):
    """Add commands to zoo's typer app `cli` (e.g. with `@cli.command()`); names zoo already uses are refused."""


@hookspec
def register_detectors(register):
    """Call register(DetectorSpec(...)) once for each face detector (five landmarks) the plugin provides."""
