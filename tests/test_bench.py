"""The benchmark's sides train the same thing: aecli's loop ends on the weights of a bare loop and
of the studies' DataLoader loop (same seed, same batch order). Correctness only: no timing here."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from aecli import bench


@pytest.mark.parametrize(
    "name, n, steps", [("rectangle_big", 100, 240), ("beta_bs1", 64, 128), ("mnist_sized", 600, 6)]
)
def test_aecli_loop_matches_bare_and_dataloader_loops(name, n, steps):
    workload = replace(bench.WORKLOADS[name], n=n, steps=steps)
    problem = bench.make_problem(workload, torch.device("cpu"), steps_scale=1.0)
    results = {side: bench.SIDES[side](problem, torch.device("cpu")) for side in ("aecli", "bare", "dataloader")}
    assert {side: s for side, (s, _) in results.items()} == dict.fromkeys(
        results, problem.epochs * problem.steps_per_epoch
    )
    reference = results["aecli"][1].state_dict()
    start = problem.initial.state_dict()
    assert any(not torch.equal(reference[k], start[k]) for k in reference)  # it did train
    for side in ("bare", "dataloader"):
        weights = results[side][1].state_dict()
        for key in reference:
            torch.testing.assert_close(weights[key], reference[key], rtol=1e-5, atol=1e-6, msg=f"{side} {key}")
