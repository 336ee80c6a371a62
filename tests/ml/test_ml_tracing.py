"""InferenceTracer: recording a forward pass and replaying it without the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import bss2.ml as ml
from bss2.ml import nn

from ml_testutil import random_inputs, random_weights


def _initialise(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
                layer.weight.uniform_(-25, 25)
                if layer.bias is not None:
                    layer.bias.uniform_(-3, 3)
    return model


def har_model() -> torch.nn.Module:
    return _initialise(torch.nn.Sequential(
        nn.Conv1d(9, 16, 32, stride=6, bias=False), nn.ConvertingReLU(shift=1), torch.nn.Flatten(),
        nn.Linear(256, 125, bias=False), nn.ConvertingReLU(shift=1), nn.Linear(125, 6, bias=False)))


def mixed_model() -> torch.nn.Module:
    return _initialise(torch.nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), nn.ConvertingReLU(), torch.nn.Flatten(), nn.Linear(144, 20, avg=3),
        nn.ReLU(), nn.ConvertingReLU(shift=0), nn.Linear(20, 5, bias=False)))


def expanded_model() -> torch.nn.Module:
    return _initialise(torch.nn.Sequential(
        nn.ExpandedConv1d(3, 4, 5, stride=2, num_expansions=3), nn.ConvertingReLU(), torch.nn.Flatten(),
        nn.Linear(4 * 13, 3)))


@pytest.mark.parametrize(("build", "shape"), [(har_model, (9, 122)), (mixed_model, (1, 14, 14)),
                                              (expanded_model, (3, 30))])
def test_replay_equals_the_live_forward(build, shape, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = build()
    x = random_inputs(7, *shape)
    tracer = ml.InferenceTracer(tmp_path / "model.npz").start()
    live = model(x)
    trace = tracer.stop()
    assert trace.input_shape == shape
    replayed = ml.inference_trace(x, tmp_path / "model.npz")
    assert isinstance(replayed, torch.Tensor)
    assert torch.equal(replayed, live)
    other = random_inputs(3, *shape)  # another batch size and data
    assert torch.equal(ml.inference_trace(other, tmp_path / "model.npz"), model(other))


def test_trace_records_the_op_sequence(tmp_path: Path) -> None:
    tracer = ml.InferenceTracer(tmp_path / "t.npz").start()
    mixed_model()(random_inputs(2, 1, 14, 14))
    trace = tracer.stop()
    assert [op.kind for op in trace.ops] == ["conv2d", "converting_relu", "matmul", "mean_groups", "bias", "relu",
                                            "converting_relu", "matmul"]
    matmul = trace.ops[2]
    assert matmul.arrays["weight"].shape == (144, 60) and matmul.arrays["weight"].dtype == np.int8
    assert matmul.input_shapes == ((144,),) and trace.ops[1].output_shape == (4, 6, 6)  # flatten implied
    assert matmul.params == {"num_sends": nn.default_num_sends(144), "wait_between_events": 5, "mock": False}


def test_trace_file_is_npz_with_a_json_header_and_no_pickle(tmp_path: Path) -> None:
    tracer = ml.InferenceTracer(tmp_path / "t.npz").start()
    har_model()(random_inputs(1, 9, 122))
    tracer.stop()
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        assert header["format"] == "bss2.ml.trace"
        assert [op["kind"] for op in header["ops"]] == ["conv1d", "converting_relu", "matmul", "converting_relu",
                                                         "matmul"]
        assert data["op0_weight"].shape == (288, 16)


def test_replay_argmax_and_add(tmp_path: Path) -> None:
    w1, w2 = random_weights(10, 4), random_weights(10, 4)
    x = random_inputs(5, 10)
    tracer = ml.InferenceTracer(tmp_path / "t.npz").start()
    a = ml.matmul(x, w1)
    b = ml.matmul(x, w2)
    live = ml.argmax(ml.add(a, b), dim=1)
    tracer.stop()
    assert torch.equal(ml.inference_trace(x, tmp_path / "t.npz"), live)


def test_untraceable_host_op_raises(tmp_path: Path) -> None:
    tracer = ml.InferenceTracer(tmp_path / "t.npz").start()
    try:
        out = ml.matmul(random_inputs(2, 4), random_weights(4, 3))
        with pytest.raises(RuntimeError, match="untraceable"):
            ml.relu(out * 2)
    finally:
        ml._tracing._active = None


def test_only_one_tracer_at_a_time(tmp_path: Path) -> None:
    first = ml.InferenceTracer(tmp_path / "a.npz").start()
    with pytest.raises(RuntimeError, match="already recording"):
        ml.InferenceTracer(tmp_path / "b.npz").start()
    ml.matmul(random_inputs(1, 2), random_weights(2, 1))
    first.stop()
    with pytest.raises(RuntimeError, match="not recording"):
        first.stop()


def test_replay_rejects_a_wrong_input_shape(tmp_path: Path) -> None:
    tracer = ml.InferenceTracer(tmp_path / "t.npz").start()
    ml.matmul(random_inputs(1, 4), random_weights(4, 2))
    trace = tracer.stop()
    with pytest.raises(ValueError, match="per-sample shape"):
        ml.replay(trace, np.zeros((1, 5), np.float32))


def bias_free_expanded_model() -> torch.nn.Module:
    return _initialise(torch.nn.Sequential(
        nn.ExpandedConv1d(3, 4, 5, stride=2, num_expansions=3, bias=False), nn.ConvertingReLU(), torch.nn.Flatten(),
        nn.Linear(4 * 13, 3, bias=False)))


@pytest.mark.parametrize(("build", "shape"), [(har_model, (9, 122)), (bias_free_expanded_model, (3, 30))])
def test_replay_is_one_executor_call(build, shape, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    model = build()
    x = random_inputs(5, *shape)
    tracer = ml.InferenceTracer(tmp_path / "model.npz").start()
    live = model(x)
    trace = tracer.stop()
    executor = ml._hardware.executor()
    calls = []
    original = executor.run
    monkeypatch.setattr(executor, "run", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    replayed = ml._tracing.replay(trace, x.numpy())
    assert len(calls) == 1  # every hardware op and the host ops between them in a single call
    assert np.array_equal(replayed, live.detach().numpy())
