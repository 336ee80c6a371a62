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


# ----------------------------------------------------------------------------------------------------------------------
# batch-1 replays: the executor's lean path (programs prepared once, weights kept on the chip)


def _traced(build, shape, tmp_path: Path, name: str = "model.npz"):  # type: ignore[no-untyped-def]
    model = build()
    tracer = ml.InferenceTracer(tmp_path / name).start()
    model(random_inputs(1, *shape))
    return model, tracer.stop()


def _lean_levels(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per matmul level of every run, whether the executor's lean path ran it."""
    from bss2.exec import JITExecutor

    taken: list[bool] = []
    original = JITExecutor._run_lean_level

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        taken.append(original(self, *args, **kwargs))
        return taken[-1]

    monkeypatch.setattr(JITExecutor, "_run_lean_level", counting)
    return taken


def test_batch_one_replays_equal_the_live_model_and_send_no_weights(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    model, trace = _traced(har_model, (9, 122), tmp_path)
    taken = _lean_levels(monkeypatch)
    x = random_inputs(12, 9, 122)
    x[3] = 0  # a sample without a single input event
    x[4, :, ::2] = 0  # a sparse one
    executor = ml._hardware.executor()
    # the live model runs layer by layer on the same chip (overwriting the replay's weights): first all of it
    expected = [model(x[i : i + 1]).detach().numpy() for i in range(x.shape[0])]
    taken.clear()
    for i in range(x.shape[0]):
        replayed = ml.replay(trace, x[i : i + 1].numpy())
        assert np.array_equal(replayed, expected[i]), i
        if i:
            assert executor.last_info.config_words == 0  # every weight of the model stays on the chip
    assert taken == [True] * 3 * x.shape[0]  # three layers, each one lean program per replay
    assert np.array_equal(ml.replay(trace, x.numpy()), model(x).detach().numpy())  # and a batch of 12


def test_replay_after_other_graphs_on_the_same_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, trace = _traced(har_model, (9, 122), tmp_path)
    other_model, other_trace = _traced(bias_free_expanded_model, (3, 30), tmp_path, "other.npz")
    taken = _lean_levels(monkeypatch)
    executor = ml._hardware.executor()
    x = random_inputs(1, 9, 122)
    expected = model(x).detach().numpy()
    assert np.array_equal(ml.replay(trace, x.numpy()), expected)
    between = [
        lambda: ml.matmul(random_inputs(3, 256), random_weights(256, 256)),  # overwrites both synrams
        lambda: ml.matmul(random_inputs(1, 20), random_weights(20, 7)),  # a few columns of one synram
        lambda: ml.replay(other_trace, random_inputs(1, 3, 30).numpy()),  # another placed graph
    ]
    for run_other in between:
        run_other()
        assert np.array_equal(ml.replay(trace, x.numpy()), expected)
        assert executor.last_info.config_words > 0  # the overwritten weights are sent again
        assert np.array_equal(ml.replay(trace, x.numpy()), expected)
        assert executor.last_info.config_words == 0
    y = random_inputs(2, 3, 30)
    assert np.array_equal(ml.replay(other_trace, y.numpy()), other_model(y).detach().numpy())
    assert all(taken)


def test_replay_on_several_chips_equals_the_live_model(tmp_path: Path) -> None:
    from bss2.comm import EmulatorConnection
    from bss2.hal.emulator import EmulatorConfig

    model, trace = _traced(har_model, (9, 122), tmp_path)
    x = random_inputs(3, 9, 122)
    expected = model(x).detach().numpy()
    for chips in (2, 3):
        ml.init_hardware([EmulatorConnection(seed=i, config=EmulatorConfig.ideal()) for i in range(chips)])
        executor = ml._hardware.executor()
        for i in range(3):
            assert np.array_equal(ml.replay(trace, x[i : i + 1].numpy()), expected[i : i + 1])
        assert {r.chip for r in executor.last_info.records if r.chip is not None} == set(range(chips))
        assert executor.last_info.config_words == 0
        ml.release_hardware()


def test_replay_rejects_bad_inputs_and_stays_usable(tmp_path: Path) -> None:
    model, trace = _traced(har_model, (9, 122), tmp_path)
    x = random_inputs(1, 9, 122)
    expected = model(x).detach().numpy()
    assert np.array_equal(ml.replay(trace, x.numpy()), expected)
    executor = ml._hardware.executor()
    connection = executor.connections[0]
    calls: list[int] = []
    original = connection.execute
    connection.execute = lambda words: calls.append(1) or original(words)  # type: ignore[method-assign]
    for value in (np.nan, 32.0, 31.6, -0.6, np.inf):
        bad = x.numpy().copy()
        bad[0, 4, 17] = value
        with pytest.raises(OverflowError, match="0..31"):
            ml.replay(trace, bad)
    with pytest.raises(ValueError, match="per-sample shape"):
        ml.replay(trace, x.numpy()[:, :, :121])
    with pytest.raises(ValueError, match="per-sample shape"):
        ml.replay(trace, x.numpy()[0])
    assert not calls  # nothing reached the chip
    assert np.array_equal(ml.replay(trace, x.numpy()), expected) and executor.last_info.config_words == 0
    rounded = x.numpy().copy()
    rounded[0, 4, 17] = 31.4  # rounds to 31, as the live ops do
    assert np.array_equal(ml.replay(trace, rounded), model(torch.from_numpy(rounded)).detach().numpy())
    assert ml.replay(trace, x.numpy()[:0]).shape == (0, 6)
