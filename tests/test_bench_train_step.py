"""bench/bench_train_step.py: what its memory method measures under gradient accumulation and compiled towers."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
from accelerate import Accelerator

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_step", ROOT / "bench" / "bench_train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _held_and_peak(bench, pairs: int, accumulate: int, **overrides) -> tuple[int, int]:
    args = argparse.Namespace(overrides=overrides, mixed_precision="no")
    accelerator = Accelerator(gradient_accumulation_steps=accumulate)
    step = bench.build_steps(args, "tiny", accelerator, ["ours"], depth=(1, 1))["ours"]
    inputs = bench.step_inputs("tiny", pairs, accelerator.device)
    if overrides.get("compile_towers"):
        towers = (step.model.vision_model, step.model.text_model)
        assert all(tower._compiled_call_impl is not None for tower in towers)  # compiled in place, as the trainer
        step.forward_backward(*inputs)
    return bench.step_memory(step, inputs)


def test_an_accumulated_step_holds_one_micro_batch_of_activations(bench):
    """4 pairs in 2 micro-batches hold, at the first backward, what a 2-pair step holds; the peak of the
    accumulated step is above the 2-pair one (the first micro-batch's gradients stay for the second)."""
    held_2, peak_2 = _held_and_peak(bench, 2, 1)
    held_4, _ = _held_and_peak(bench, 4, 1)
    held_4_in_2, peak_4_in_2 = _held_and_peak(bench, 4, 2)
    assert held_4 > 1.5 * held_2  # activations grow with the pairs
    assert held_4_in_2 == pytest.approx(held_2, rel=0.02)
    assert peak_4_in_2 > peak_2


def test_compiled_towers_are_measured_after_they_compiled(bench):
    """``--set compile_towers=true``: the bench compiles the towers where the trainer does and profiles a
    call after the one that compiled them; what it holds stays of the eager step's order."""
    held, peak = _held_and_peak(bench, 2, 1, compile_towers=True, compile_backend="aot_eager")
    eager_held, _ = _held_and_peak(bench, 2, 1)
    assert 0 < held <= peak and 0.5 * eager_held < held < 2 * eager_held
