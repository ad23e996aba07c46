import pytest

from synalign.config import build_config, load_config
from synalign.errors import ConfigError
from synalign.io.toml import to_toml


def test_defaults_and_overrides() -> None:
    c = build_config({"data": {"dataset": "rotten-tomatoes"}}, ["generate.samples_per_label=7"])
    assert c.generate.samples_per_label == 7
    assert c.data.dataset == "rotten-tomatoes"
    assert c.run_dir.name == "run"


def test_override_string_and_bool() -> None:
    c = build_config({}, ["name=abc", "align.enabled=false", "llm.prompt_family=chat"])
    assert c.name == "abc" and c.align.enabled is False and c.llm.prompt_family == "chat"


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"generate\.samples_per_label"):
        build_config({"generate": {"samples_per_labl": 3}})


def test_wrong_type_and_range_named() -> None:
    with pytest.raises(ConfigError, match=r"generate\.samples_per_label"):
        build_config({}, ["generate.samples_per_label=0"])
    with pytest.raises(ConfigError, match=r"llm\.temperature"):
        build_config({}, ["llm.temperature='hot'"])


def test_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        build_config({}, ["seed"])


def test_toml_round_trip(tmp_path) -> None:
    data = {"path": str(tmp_path / "x.csv"), "label_descriptions": {"a b": 'alpha "q"'}}
    c = build_config({"data": data}, ["seed=3", "explore.bandwidth=0.5"])
    p = tmp_path / "c.toml"
    p.write_text(to_toml(c))
    assert load_config(p) == c
    # a relative path in a config file is the file beside it
    p.write_text(to_toml(build_config({"data": {"path": "x.csv"}})))
    assert load_config(p).data.path == str(tmp_path / "x.csv")


def test_config_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)


def test_dataset_and_path_exclusive() -> None:
    with pytest.raises(ConfigError, match="either"):
        build_config({"data": {"dataset": "bbc-news", "path": "x.csv"}})
