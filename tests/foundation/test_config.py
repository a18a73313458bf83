"""Config files and command-line overrides: loading, typed overrides, clear errors."""

import ml_collections
import pytest

from emu_jax import cli
from emu_jax import config as config_lib

CONFIG_TEXT = """
import ml_collections
def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.name = arg or "default"
    c.model = ml_collections.ConfigDict(dict(channels=32, mult=(1, 2), dropout=0.0, temporal=True))
    c.train = ml_collections.ConfigDict(dict(lr=1e-4, steps=10, init_from=None))
    return c
"""


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "c.py"
    p.write_text(CONFIG_TEXT)
    return str(p)


def test_load_with_arg_and_overrides(cfg_file):
    cfg = config_lib.config_from_args(
        cfg_file + ":big",
        [
            ("model.channels", "64"),
            ("model.mult", "(1,2,4)"),
            ("model.temporal", "false"),
            ("train.lr", "3"),
            ("train.init_from", "/ckpt"),
        ],
    )
    assert cfg.name == "big"
    assert cfg.model.channels == 64 and cfg.model.mult == (1, 2, 4)
    assert cfg.model.temporal is False
    assert cfg.train.lr == 3.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.init_from == "/ckpt"


def test_unknown_key_is_named(cfg_file):
    with pytest.raises(ValueError, match=r"model.chanels.*did you mean \['channels'\]"):
        config_lib.config_from_args(cfg_file, [("model.chanels", "3")])
    with pytest.raises(ValueError, match="unknown config key 'nosuch.x'"):
        config_lib.config_from_args(cfg_file, [("nosuch.x", "3")])


@pytest.mark.parametrize(
    "key,val,expected",
    [
        ("model.channels", "abc", "expected int"),
        ("model.channels", "1.5", "expected int, got float"),
        ("model.temporal", "maybe", "expected a bool"),
        ("model", "3", "whole section"),
    ],
)
def test_wrong_type_is_named(cfg_file, key, val, expected):
    with pytest.raises(ValueError, match=expected):
        config_lib.config_from_args(cfg_file, [(key, val)])


def test_split_overrides_both_forms():
    rest, ov = config_lib.split_overrides(["--config", "x.py", "--config.a.b=1", "--config.c", "2", "--workdir", "w"])
    assert rest == ["--config", "x.py", "--workdir", "w"]
    assert ov == [("a.b", "1"), ("c", "2")]


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.py"):
        config_lib.load_config("nope.py")


def test_cli_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_project_configs_load_by_name():
    """Every config under configs/ loads and is a ConfigDict (catches broken files)."""
    files = sorted(config_lib.PROJECT_CONFIGS.rglob("*.py"))
    assert files, "configs/ is empty"
    for f in files:
        if f.name.startswith("_"):
            continue
        cfg = config_lib.load_config(str(f))
        assert isinstance(cfg, ml_collections.ConfigDict), f


def test_model_options_the_config_leaves_at_default_can_be_overridden():
    """`--set model.unet.X` works for any UNetConfig / VAEConfig field, typed by its default, so ablations
    need no edited config file; typos still fail with the close names."""
    from emu_jax.models.emu import EmuConfig

    cfg = config_lib.load_config("demo/shapes.py:t2v,tiny")
    assert "upcast_attention" not in cfg.model.unet and "temporal_layers" not in cfg.model.unet
    config_lib.apply_override(cfg, "model.unet.upcast_attention", "true")
    config_lib.apply_override(cfg, "model.unet.temporal_layers", "2")
    config_lib.apply_override(cfg, "model.vae.use_quant_conv", "false")
    emu = EmuConfig.from_dict(cfg.model.to_dict())
    assert emu.unet.upcast_attention is True and emu.unet.temporal_layers == 2
    assert emu.vae.use_quant_conv is False
    with pytest.raises(ValueError, match=r"upcast_atention.*did you mean \['upcast_attention'"):
        config_lib.apply_override(cfg, "model.unet.upcast_atention", "true")
    with pytest.raises(ValueError, match="expected int"):
        config_lib.apply_override(cfg, "model.unet.temporal_kernel", "wide")
