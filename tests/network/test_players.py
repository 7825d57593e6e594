import pytest
from conftest import tiny_cnn, tiny_mlp
from torch import nn

from neuronshapley import PlayerError, discover_players


def test_conv_and_hidden_linear_units_exclude_logits():
    ps = discover_players(tiny_cnn())
    assert [ly.name for ly in ps.layers] == ["0", "2"]
    assert ps.n_players == 7
    assert ps.ids[:4] == ["0:0", "0:1", "0:2", "2:0"]
    assert ps.index("2:3") == 6


def test_output_layer_can_be_included_and_patterns_select_layers():
    ps = discover_players(tiny_mlp(), include_output_layer=True)
    assert [ly.name for ly in ps.layers] == ["0", "2"]
    assert discover_players(tiny_cnn(), layers=["2"]).ids == [f"2:{i}" for i in range(4)]
    assert discover_players(tiny_cnn(), layers="*").n_players == 7


def test_conv1d_conv3d_and_nested_paths():
    model = nn.Module()
    model.block = nn.Sequential(nn.Conv1d(2, 5, 3), nn.Conv3d(5, 2, 1))
    model.head = nn.Linear(4, 2)
    ps = discover_players(model)
    assert [(ly.name, ly.n_units, ly.channel_axis) for ly in ps.layers] == [
        ("block.0", 5, 1), ("block.1", 2, 1)
    ]


def test_errors_are_specific():
    with pytest.raises(PlayerError, match="no removable units"):
        discover_players(nn.Sequential(nn.ReLU(), nn.Flatten()))
    with pytest.raises(PlayerError, match="logit layer"):
        discover_players(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(PlayerError, match="matches no removable layer"):
        discover_players(tiny_cnn(), layers=["features.*"])
    with pytest.raises(PlayerError, match="has 4 units"):
        discover_players(tiny_cnn()).index("2:9")
