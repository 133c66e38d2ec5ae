"""The plugin registry: names, broken plugins, duplicates."""

from __future__ import annotations

import pytest

from sadkit import registry
from sadkit.errors import DuplicatePluginError, PluginLoadError, PluginNotFoundError


def test_builtins_are_registered_by_entry_point():
    infos = {(i.group, i.name): i for i in registry.list_plugins(check=True)}
    for group, name in [
        ("sadkit.detectors", "deepsad"),
        ("sadkit.detectors", "deepsvdd"),
        ("sadkit.datasets", "odds"),
        ("sadkit.datasets", "synthetic"),
        ("sadkit.networks", "mlp"),
        ("sadkit.networks", "cardio_mlp"),
    ]:
        assert infos[(group, name)].distribution == "sadkit"
        assert infos[(group, name)].error is None


def test_unknown_name_lists_installed_ones():
    with pytest.raises(PluginNotFoundError) as err:
        registry.get("detectors", "nosuchdetector")
    assert "nosuchdetector" in str(err.value)
    assert "deepsad" in str(err.value) and "deepsvdd" in str(err.value)
    with pytest.raises(PluginNotFoundError, match="installed: .*odds"):
        registry.create_dataset("nosuchdataset")
    with pytest.raises(PluginNotFoundError, match="installed: .*cardio_mlp"):
        registry.create_network("nosuchnet", (3,))


def test_unknown_group_is_an_error():
    with pytest.raises(PluginNotFoundError, match="groups are"):
        registry.list_plugins("widgets")


def test_unknown_parameter_names_the_valid_ones():
    with pytest.raises(ValueError, match="no parameter 'learning_rate'.*lr"):
        registry.create_detector("deepsad", learning_rate=0.1)
    with pytest.raises(ValueError, match="no parameter 'hidden'"):
        registry.create_network("cardio_mlp", (21,), hidden=[3])


def test_broken_plugin_is_reported_with_distribution_and_error(fake_distribution):
    fake_distribution(
        "brokenplug",
        {"sadkit.detectors": {"broken": "brokenplug_missing_module:Broken"}},
    )
    # listed from metadata without being imported; the check imports it and says why it fails
    assert [i.error for i in registry.list_plugins("detectors") if i.name == "broken"] == [None]
    assert "broken" in registry.names("detectors")
    infos = [i for i in registry.list_plugins("detectors", check=True) if i.name == "broken"]
    assert len(infos) == 1
    assert infos[0].distribution == "brokenplug"
    assert "ModuleNotFoundError" in infos[0].error and "brokenplug_missing_module" in infos[0].error
    with pytest.raises(PluginLoadError, match="distribution brokenplug failed to load.*ModuleNotFoundError"):
        registry.get("detectors", "broken")
    # the other detectors still work
    assert registry.get("detectors", "deepsad").__name__ == "DeepSAD"


def test_duplicate_name_is_an_error_naming_both(fake_distribution):
    fake_distribution("dupone", {"sadkit.detectors": {"twin": "sadkit.plugins.deepsad.detector:DeepSAD"}})
    fake_distribution("duptwo", {"sadkit.detectors": {"twin": "sadkit.plugins.deepsad.detector:DeepSVDD"}})
    with pytest.raises(DuplicatePluginError) as err:
        registry.get("detectors", "twin")
    assert "dupone" in str(err.value) and "duptwo" in str(err.value)


def test_entry_point_that_is_not_a_detector(fake_distribution):
    fake_distribution("notadetector", {"sadkit.detectors": {"notadet": "json:dumps"}})
    with pytest.raises(PluginLoadError, match="not point to a sadkit Detector"):
        registry.create_detector("notadet")
