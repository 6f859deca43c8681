"""The plugin system: built-in domains via entry points, inline plugins, and broken plugins contained."""

import importlib.metadata
import warnings

import pytest

from zoo import hookimpl, plugins
from zoo.domains import DataSource, DomainSpec, Recipe, get_domain, list_domains
from zoo.errors import ZooError

PAPER_DOMAINS = {"face": "face", "portrait": "face", "cartoon": "face", "anime": "face", "cat": "cat", "dog": "cat", "wild": "cat"}
EMOJI_STYLES = ["noto", "twemoji", "openmoji", "fluent-flat", "fluent-color", "fluent-3d"]


def spec(name, family="test", base=None):
    return DomainSpec(name=name, family=family, description=name, resolution=16,
                      data=DataSource(description="none", license="none"), recipe=Recipe(base=base, iters=10))


@pytest.fixture
def fresh_problems(monkeypatch):
    monkeypatch.setattr(plugins, "problems", [])
    return plugins.problems


@pytest.fixture
def register_inline():
    """llm-style: register plugin objects for one test, unregister afterwards."""
    names = []

    def add(plugin, name):
        plugins.load_plugins()
        plugins.pm.register(plugin, name=name)
        names.append(name)

    yield add
    for name in names:
        plugins.pm.unregister(name=name)


def test_builtin_domains_come_from_entry_points():
    domains = {spec.name: spec for spec in list_domains()}
    assert {name: domains[name].family for name in PAPER_DOMAINS} == PAPER_DOMAINS
    assert {f"emoji-{style}" for style in EMOJI_STYLES} <= set(domains)
    assert domains["emoji-noto"].recipe.base is None
    assert all(domains[f"emoji-{style}"].recipe.base == "emoji-noto" for style in EMOJI_STYLES[1:])
    assert domains["face"].weights.urls[0].endswith("ffhq-res256-mirror-paper256-noaug.pkl")
    assert domains["cat"].weights.urls[0].endswith("/afhqcat.pkl")
    assert domains["anime"].weights is None and domains["anime"].recipe.base == "face"
    assert len(list(domains["emoji-noto"].data.bundled.glob("*.png"))) == 1030
    assert {spec.plugin for spec in domains.values()} == {"faces", "animals", "emoji"}
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="zoo") if ep.dist.name == "zoo-stylegan"}
    assert entry_points == {"faces": "zoo_plugins.faces", "animals": "zoo_plugins.animals", "emoji": "zoo_plugins.emoji",
                            "metrics": "zoo_plugins.metrics"}


def test_wildcards_families_and_unknown_names():
    assert [s.name for s in list_domains("emoji-fluent-*")] == ["emoji-fluent-3d", "emoji-fluent-color", "emoji-fluent-flat"]
    assert [s.name for s in list_domains(family="cat")] == ["cat", "dog", "wild"]
    with pytest.raises(ZooError, match="did you mean anime"):
        get_domain("anme")


def test_inline_plugin_adds_a_domain(register_inline):
    class Pixel:
        __name__ = "pixel"

        @staticmethod
        @hookimpl
        def register_domains(register):
            register(spec("pixel-art"))

    register_inline(Pixel, "pixel")
    assert get_domain("pixel-art").plugin == "pixel"
    assert any(row["name"] == "pixel" and row["hooks"] == ["register_domains"] for row in plugins.plugin_listing())


def test_bad_specs_duplicates_and_crashing_hooks_are_contained(register_inline, fresh_problems):
    class Messy:
        @staticmethod
        @hookimpl
        def register_domains(register):
            register({"name": "not-a-spec"})
            register(spec("face"))  # duplicate of a built-in
            register(spec("messy-ok"))

    class Crashing:
        @staticmethod
        @hookimpl
        def register_domains(register):
            raise RuntimeError("boom")

    register_inline(Messy, "messy")
    register_inline(Crashing, "crashing")
    with pytest.warns(UserWarning):
        domains = plugins.registered_domains()
    assert domains["face"].plugin == "faces"
    assert "messy-ok" in domains and "anime" in domains
    messages = {(p.plugin, p.message.split(" (")[0].split(";")[0]) for p in fresh_problems}
    assert ("messy", "register_domains registered a dict, not a DomainSpec") in messages
    assert ("messy", "DomainSpec 'face' is already registered by faces") in messages
    assert ("crashing", "register_domains failed") in messages


def test_strict_mode_reraises(register_inline, monkeypatch):
    class Crashing:
        @staticmethod
        @hookimpl
        def register_domains(register):
            raise RuntimeError("boom")

    register_inline(Crashing, "crashing")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(RuntimeError, match="boom"):
        plugins.registered_domains()


def fake_entry_point(name, value):
    return importlib.metadata.EntryPoint(name=name, value=value, group="zoo")


def test_misspelled_hooks_and_import_errors_are_reported_not_raised(fresh_problems):
    with pytest.warns(UserWarning):
        plugins._load_one(fake_entry_point("typo", "plugin_samples:typo_plugin"))
        plugins._load_one(fake_entry_point("missing", "no_such_module_anywhere"))
    assert not plugins.pm.has_plugin("typo") and not plugins.pm.has_plugin("missing")
    by_plugin = {p.plugin: p.message for p in fresh_problems}
    assert "register_domain" in by_plugin["typo"]
    assert "ModuleNotFoundError" in by_plugin["missing"] and "ZOO_LOAD_PLUGINS" in by_plugin["missing"]
    plugins._load_one(fake_entry_point("good", "plugin_samples:good_plugin"))
    try:
        assert plugins.pm.has_plugin("good")
        assert get_domain("face").family == "face"
    finally:
        plugins.pm.unregister(name="good")


def test_load_plugins_filter(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "faces,emoji")
    assert [ep.name for ep in plugins._selected_entry_points()] == ["emoji", "faces", "metrics"]


def test_domain_spec_validation():
    with pytest.raises(ValueError, match="never a path"):
        spec("../evil")
    with pytest.raises(ValueError, match="from itself"):
        spec("loop", base="loop")
    with pytest.raises(ValueError, match="augment"):
        Recipe(base=None, iters=10, augment="sometimes")


def test_emoji_split_holds_out_every_tenth_base_with_its_skin_tones():
    import csv

    from zoo_plugins.emoji import DATA, test_emoji

    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    base_of = {row["unified"]: row["base_unified"] or row["unified"] for row in rows}
    bases = sorted(set(base_of.values()))
    held_out = test_emoji()
    assert {base_of[emoji] for emoji in held_out} == set(bases[::10])
    assert held_out == {emoji for emoji, base in base_of.items() if base in set(bases[::10])}
    assert len(held_out) == 100
    noto, twemoji = get_domain("emoji-noto").data, get_domain("emoji-twemoji").data
    assert noto.include is None
    training = [path for path in twemoji.bundled.glob("*.png") if twemoji.include(path)]
    assert len(training) == 930 and not {path.stem for path in training} & held_out


def test_a_hook_calling_sys_exit_fails_alone_and_ctrl_c_still_stops(register_inline, fresh_problems):
    class Exits:
        @staticmethod
        @hookimpl
        def register_domains(register):
            raise SystemExit(3)

    register_inline(Exits, "exits")
    with pytest.warns(UserWarning, match="zoo plugin exits: register_domains failed \\(SystemExit: 3\\)"):
        domains = plugins.registered_domains()
    assert "face" in domains
    plugins.pm.unregister(name="exits")

    class Interrupted:
        @staticmethod
        @hookimpl
        def register_domains(register):
            raise KeyboardInterrupt

    register_inline(Interrupted, "interrupted")
    with pytest.raises(KeyboardInterrupt):
        plugins.registered_domains()


def test_a_plugin_exiting_on_import_is_reported(fresh_problems, tmp_path, monkeypatch):
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit('bye')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning):
        plugins._load_one(fake_entry_point("exiting", "exiting_plugin"))
    assert not plugins.pm.has_plugin("exiting")
    assert "failed to load (SystemExit: bye)" in {p.plugin: p.message for p in fresh_problems}["exiting"]


def test_plugin_listing_calls_every_hook_and_reports_the_failing_ones(register_inline, fresh_problems):
    class FailsQuietly:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            raise ValueError("broken metric table")

    register_inline(FailsQuietly, "fails-quietly")
    with pytest.warns(UserWarning):
        rows = {row["name"]: row for row in plugins.plugin_listing()}
    assert rows["fails-quietly"]["problems"] == ["register_metrics failed (ValueError: broken metric table)"]
    assert rows["faces"]["problems"] == [] and rows["metrics"]["problems"] == []


@pytest.fixture
def fresh_cli(monkeypatch):
    """zoo's typer app with the commands it has now, restored afterwards; plugins may add commands to it once."""
    from zoo import cli

    monkeypatch.setattr(cli.app, "registered_commands", list(cli.app.registered_commands))
    monkeypatch.setattr(plugins, "_apps_with_commands", set())
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() prints warnings its own way
    return cli


def run_zoo(cli, monkeypatch, *args) -> int:
    monkeypatch.setattr("sys.argv", ["zoo", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code


def test_a_plugin_adds_a_command_but_cannot_replace_one(register_inline, fresh_problems, fresh_cli, monkeypatch, capsys):
    from plugin_samples import command_plugin

    register_inline(command_plugin, "greeter")
    assert run_zoo(fresh_cli, monkeypatch, "hello", "--name", "plugins") == 0
    output = capsys.readouterr()
    assert output.out == "hello plugins\n"
    assert output.err == "zoo: warning: zoo plugin greeter: register_commands: command 'list' already exists; ignored\n"
    assert run_zoo(fresh_cli, monkeypatch, "list", "--json") == 0
    assert "hijacked" not in capsys.readouterr().out
    assert any(row["name"] == "greeter" and row["hooks"] == ["register_commands"] for row in plugins.plugin_listing())


def test_core_metrics_load_whatever_zoo_load_plugins_says(monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    assert [ep.name for ep in plugins._selected_entry_points()] == ["metrics"]
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "faces")
    assert [ep.name for ep in plugins._selected_entry_points()] == ["faces", "metrics"]
