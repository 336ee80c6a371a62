"""Layers: argument forwarding, automatic num_sends, state_dict compatibility, avg, helpers."""

from __future__ import annotations

import pytest
import torch

import bss2.ml as ml
from bss2.ml import nn

from ml_testutil import random_inputs, random_weights


def test_layers_subclass_torch_layers() -> None:
    assert isinstance(nn.Linear(3, 2), torch.nn.Linear)
    assert isinstance(nn.Conv1d(1, 2, 3), torch.nn.Conv1d)
    assert isinstance(nn.ExpandedConv1d(1, 2, 3), torch.nn.Conv1d)
    assert isinstance(nn.Conv2d(1, 2, 3), torch.nn.Conv2d)


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda: nn.Linear(5, 3), lambda: torch.nn.Linear(5, 3)),
    (lambda: nn.Linear(5, 3, bias=False, avg=4), lambda: torch.nn.Linear(5, 3, bias=False)),
    (lambda: nn.Conv1d(2, 4, 3, stride=2), lambda: torch.nn.Conv1d(2, 4, 3, stride=2)),
    (lambda: nn.ExpandedConv1d(2, 4, 3, num_expansions=2), lambda: torch.nn.Conv1d(2, 4, 3)),
    (lambda: nn.Conv2d(1, 3, (2, 3), stride=(1, 2)), lambda: torch.nn.Conv2d(1, 3, (2, 3), stride=(1, 2))),
])
def test_state_dict_keys_and_shapes_equal_torchs(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    torch_layer, our_layer = theirs(), ours()
    our_layer.load_state_dict(torch_layer.state_dict())
    assert {k: v.shape for k, v in our_layer.state_dict().items()} == \
        {k: v.shape for k, v in torch_layer.state_dict().items()}


def test_trained_torch_model_loads_and_runs() -> None:
    torch_model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 5, stride=2, bias=False), torch.nn.ReLU(),
                                      torch.nn.Flatten(), torch.nn.Linear(4 * 8, 3))
    with torch.no_grad():
        torch_model[0].weight.uniform_(-30, 30)
        torch_model[3].weight.uniform_(-30, 30)
    ours = torch.nn.Sequential(nn.Conv1d(2, 4, 5, stride=2, bias=False), nn.ConvertingReLU(),
                               torch.nn.Flatten(), nn.Linear(4 * 8, 3))
    ours.load_state_dict(torch_model.state_dict())
    assert ours(random_inputs(6, 2, 20)).shape == (6, 3)


def test_num_sends_is_chosen_from_the_mock_gain() -> None:
    assert nn.Linear(4, 8).num_sends == 8  # 127 / (0.002 * 4 * 31 * 63) = 8.1
    assert nn.Linear(128, 8).num_sends == 1
    assert nn.Conv1d(1, 2, 2).num_sends == 16
    assert nn.Linear(4, 8, num_sends=3).num_sends == 3
    ml.set_mock_parameter(ml.MockParameter(gain=0.001))
    assert nn.Linear(4, 8).num_sends == 16


def test_hardware_arguments_are_forwarded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bss2.ml import _ops
    calls = []
    original = _ops._MatMul.apply

    def spy(*args):  # type: ignore[no-untyped-def]
        calls.append(args[4:])
        return original(*args)

    monkeypatch.setattr(_ops._MatMul, "apply", spy)
    nn.Linear(3, 2, num_sends=2, wait_between_events=7, mock=True)(random_inputs(1, 3))
    nn.Conv1d(1, 2, 2, num_sends=3, wait_between_events=9)(random_inputs(1, 1, 4))
    nn.Conv2d(1, 2, 2, num_sends=4, wait_between_events=1, mock=True)(random_inputs(1, 1, 4, 4))
    nn.ExpandedConv1d(1, 2, 2, num_sends=5, wait_between_events=2, num_expansions=2)(random_inputs(1, 1, 6))
    assert calls == [(2, 7, True), (3, 9, False), (4, 1, True), (5, 2, False)]


def test_linear_equals_functional_matmul() -> None:
    layer = nn.Linear(10, 4, num_sends=2)
    with torch.no_grad():
        layer.weight.copy_(random_weights(4, 10))
    x = random_inputs(3, 10)
    torch.testing.assert_close(layer(x), ml.matmul(x, layer.weight.t(), num_sends=2) + layer.bias)


def test_avg_repeats_each_output_and_averages() -> None:
    layer = nn.Linear(10, 3, bias=False, avg=4, mock=True)
    with torch.no_grad():
        layer.weight.copy_(random_weights(3, 10))
    ml.set_mock_parameter(ml.MockParameter(noise_std=0.0))
    x = random_inputs(5, 10)
    torch.testing.assert_close(layer(x), ml.matmul(x, layer.weight.t(), num_sends=layer.num_sends, mock=True))
    ml.set_mock_parameter(ml.MockParameter(noise_std=4.0))
    spread = torch.stack([layer(x) for _ in range(50)]).std(0).mean()
    assert spread < 4.0 / 4 ** 0.5 * 1.3  # averaging over 4 neurons halves the noise


def test_weight_transform_clamps_in_place_by_default() -> None:
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(100.0)
    layer(torch.ones(1, 2))
    assert layer.weight.max() == 63


def test_input_transform_and_no_weight_transform() -> None:
    layer = nn.Linear(2, 1, bias=False, input_transform=nn.scale_input, weight_transform=None)
    with torch.no_grad():
        layer.weight.fill_(10.0)
    assert layer(torch.tensor([[0.5, 1.0]])).shape == (1, 1)  # scaled to [15.5, 31]
    with torch.no_grad():
        layer.weight.fill_(100.0)
    with pytest.raises(OverflowError):
        layer(torch.tensor([[0.5, 1.0]]))


def test_scale_helpers() -> None:
    assert nn.scale_input(torch.tensor([1.0, 2.0, 4.0])).tolist() == [7.75, 15.5, 31.0]
    assert nn.scale_weight(torch.tensor([-2.0, 1.0])).tolist() == [-63.0, 31.5]
    w = torch.tensor([-70.0, 70.0, 5.0])
    assert nn.clamp_weight_(w) is w and w.tolist() == [-63, 63, 5]


def test_layer_gradients_reach_the_parameters() -> None:
    layer = nn.Linear(6, 2, mock=True)
    with torch.no_grad():
        layer.weight.copy_(random_weights(2, 6))
    layer(random_inputs(4, 6)).sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_set_mock_switches_every_layer() -> None:
    model = torch.nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2, mock=True))
    nn.set_mock(model, True)
    assert model[0].mock and model[2].mock
    nn.set_mock(model, False)
    assert not model[0].mock and not model[2].mock


def test_unsupported_torch_arguments_raise() -> None:
    with pytest.raises(ValueError, match="padding"):
        nn.Conv1d(1, 2, 3, padding=1)
    with pytest.raises(ValueError, match="avg must be >= 1"):
        nn.Linear(2, 2, avg=0)


def test_repr_shows_hardware_arguments() -> None:
    text = repr(nn.Linear(4, 2, num_sends=3, avg=2))
    assert "num_sends=3" in text and "avg=2" in text and "mock=False" in text
