"""Plugin loading (pluggy, entry-point group `zoo`) and the domains and metrics plugins register.

Built-in plugins are ordinary entry points of this distribution, loaded exactly like third-party ones. Each entry
point is loaded on its own: a plugin that fails to import, implements a misspelled hook or registers a bad or
duplicate spec is reported (warning, `zoo plugins`) and skipped, never breaking other commands.
`ZOO_STRICT_PLUGINS=1` re-raises instead; `ZOO_LOAD_PLUGINS=a,b` loads only those entry points or distributions
(empty: none), besides the core plugins (`CORE_PLUGINS`: the metrics the inversion, the distance and the evaluation
need), which are always loaded. This module is the one door to what plugins declare: domains, metrics and commands.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import warnings
from dataclasses import dataclass

import pluggy

from . import hookspecs
from .specs import DetectorSpec, DomainSpec, MetricSpec

ENTRY_POINT_GROUP = "zoo"
BUILTIN_DISTRIBUTION = "zoo-stylegan"
CORE_PLUGINS = ("metrics",)  # entry points of zoo's own distribution loaded whatever ZOO_LOAD_PLUGINS says

pm = pluggy.PluginManager("zoo")
pm.add_hookspecs(hookspecs)


class PluginWarning(UserWarning):
    """A plugin was skipped or partly ignored; the message says which and how to fix it."""


@dataclass
class PluginProblem:
    plugin: str
    message: str


problems: list[PluginProblem] = []
distributions: dict[str, importlib.metadata.Distribution] = {}
_apps_with_commands: set[int] = set()
_loaded = False


def load_plugins() -> None:
    """Register every `zoo` entry point once per process (built-ins first, then others by name)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry_point in _selected_entry_points():
        _load_one(entry_point)


def _selected_entry_points() -> list[importlib.metadata.EntryPoint]:
    wanted = os.environ.get("ZOO_LOAD_PLUGINS")
    names = None if wanted is None else {name.strip() for name in wanted.split(",") if name.strip()}
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    selected = [ep for ep in entry_points if names is None or ep.name in names or _distribution_name(ep) in names or _is_core(ep)]
    return sorted(selected, key=lambda ep: (_distribution_name(ep) != BUILTIN_DISTRIBUTION, ep.name))


def _is_core(entry_point) -> bool:
    return _distribution_name(entry_point) == BUILTIN_DISTRIBUTION and entry_point.name in CORE_PLUGINS


def _distribution_name(entry_point) -> str | None:
    return entry_point.dist.name if entry_point.dist else None


def _load_one(entry_point: importlib.metadata.EntryPoint) -> None:
    try:
        plugin = entry_point.load()
        pm.register(plugin, name=entry_point.name)
        if entry_point.dist:
            distributions[entry_point.name] = entry_point.dist
        pm.check_pending()
    except BaseException as error:  # noqa: BLE001 - any failure of third-party code must be contained
        if must_propagate(error):
            raise
        if pm.has_plugin(entry_point.name):
            pm.unregister(name=entry_point.name)
        distribution = _distribution_name(entry_point) or entry_point.value
        report(entry_point.name, f"failed to load ({type(error).__name__}: {error}); "
               f"fix or `pip uninstall {distribution}`, or skip it with ZOO_LOAD_PLUGINS")


def strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")


def must_propagate(error: BaseException) -> bool:
    """The user's Ctrl-C, and everything under ZOO_STRICT_PLUGINS=1; otherwise a plugin's failure is contained (a
    plugin calling sys.exit() is a broken plugin, not a request to end zoo's command)."""
    return isinstance(error, KeyboardInterrupt) or strict()


def report(plugin: str, message: str) -> None:
    """Record a plugin problem, warn about it, or raise it under ZOO_STRICT_PLUGINS=1."""
    if strict():
        raise RuntimeError(f"plugin {plugin}: {message}")
    if not any(p.plugin == plugin and p.message == message for p in problems):
        problems.append(PluginProblem(plugin, message))
        warnings.warn(f"zoo plugin {plugin}: {message}", PluginWarning, stacklevel=2)


def _call_each(hook_name: str, call) -> None:
    """`call(plugin_name, hook_function)` for each plugin implementing the hook; a failing plugin is reported alone."""
    load_plugins()
    for implementation in getattr(pm.hook, hook_name).get_hookimpls():
        try:
            call(implementation.plugin_name, implementation.function)
        except BaseException as error:  # noqa: BLE001
            if must_propagate(error):
                raise
            report(implementation.plugin_name, f"{hook_name} failed ({type(error).__name__}: {error})")


def _collect(hook_name: str, spec_type: type) -> dict:
    """Call one registration hook plugin by plugin; keep valid, first-come specs and report the rest."""
    collected: dict = {}

    def call(plugin, hook_function):
        def register(spec):
            if not isinstance(spec, spec_type):
                report(plugin, f"{hook_name} registered a {type(spec).__name__}, not a {spec_type.__name__}")
            elif spec.name in collected:
                report(plugin, f"{spec_type.__name__} {spec.name!r} is already registered by {collected[spec.name].plugin}; ignored")
            else:
                collected[spec.name] = dataclasses.replace(spec, plugin=plugin)

        hook_function(register=register)

    _call_each(hook_name, call)
    return collected


def registered_domains() -> dict[str, DomainSpec]:
    return _collect("register_domains", DomainSpec)


def registered_metrics() -> dict[str, MetricSpec]:
    return _collect("register_metrics", MetricSpec)


def register_commands(cli) -> None:
    """Let each plugin add commands to the typer app `cli` (hook `register_commands(cli)`, as in simonw/llm). A command
    whose name zoo or an earlier plugin already uses is dropped and reported, so a plugin never replaces one. Once per
    app and process."""
    if id(cli) in _apps_with_commands:
        return
    _apps_with_commands.add(id(cli))

    def call(plugin, hook_function):
        taken = {_command_name(command) for command in cli.registered_commands}
        before = len(cli.registered_commands)
        hook_function(cli=cli)
        added = cli.registered_commands[before:]
        for command in [command for command in added if _command_name(command) in taken]:
            cli.registered_commands.remove(command)
            report(plugin, f"register_commands: command {_command_name(command)!r} already exists; ignored")

    _call_each("register_commands", call)


def _command_name(command) -> str:
    """A typer command's name as the command line spells it (typer derives it from the function when not given)."""
    return command.name or command.callback.__name__.lower().replace("_", "-")


def registered_detectors() -> dict[str, DetectorSpec]:
    return _collect("register_detectors", DetectorSpec)


def plugin_listing() -> list[dict]:
    """name, distribution, version and hooks of each loaded plugin, plus the problems of every plugin.

    Every hook is called first, so a plugin whose hook fails or registers bad specs is listed with that problem.
    """
    registered_domains()
    registered_metrics()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin()):
        distribution = distributions.get(name)
        rows.append({
            "name": name,
            "distribution": distribution.name if distribution else None,
            "version": distribution.version if distribution else None,
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or []),
            "problems": [p.message for p in problems if p.plugin == name],
        })
    loaded = {row["name"] for row in rows}
    for plugin in sorted({p.plugin for p in problems} - loaded):
        rows.append({"name": plugin, "distribution": None, "version": None, "hooks": [],
                     "problems": [p.message for p in problems if p.plugin == plugin]})
    return rows
