"""Numbers that must not move: the default run and two nonlinear_2d jobs, pinned with a tolerance that
survives another CPU, and bit for bit within this machine.

These are the full-length runs behind the README (60 epochs, the study's settings). Any change to the
data, the model, the loop, the loss terms or the order of random draws moves them by far more than the
tolerance; a deliberate change must update them here and say why. Another CPU rounds differently (a
second 2-core x86_64 machine ended the default run at 0.009079286 against this one's 0.009079282), so
across machines the pins hold to 1e-3 of the loss and 0.005 of the map's share; on one machine a rerun
gives the very same bits (the last test), as resume does (tests/test_resume.py).
"""

from __future__ import annotations

import pytest

PINNED = {
    # overrides: (final_val_loss, share of the error map below 0.1)
    (): (0.009079282283782958, 0.096204),  # `aecli`: polynomial / tanh
    ("dataset=polynomial", "model=relu"): (0.032497793833414716, 0.020164),
    ("dataset=spiral", "model=tanh"): (0.04045711835225423, 0.079344),
}
LOSS_TOLERANCE = 1e-3  # relative: float rounding of another CPU after 60 epochs moved the 7th digit
SHARE_TOLERANCE = 0.005  # absolute: a few grid points of the 500 x 500 map on the threshold's edge


@pytest.mark.parametrize("overrides", list(PINNED), ids=["default", "polynomial-relu", "spiral-tanh"])
def test_pinned_numbers_do_not_move(run_in_process, overrides):
    summary, _ = run_in_process(*overrides)  # plots off: the error map's number is still computed
    val_loss, share = PINNED[overrides]
    assert summary["epochs"] == 60 and summary["status"] == "completed"
    assert summary["final_val_loss"] == pytest.approx(val_loss, rel=LOSS_TOLERANCE)
    assert summary["metrics"]["error_map_share_below_threshold"] == pytest.approx(share, abs=SHARE_TOLERANCE)


def test_a_rerun_on_this_machine_gives_the_same_bits(run_in_process):
    first, _ = run_in_process("trainer.epochs=20")
    second, _ = run_in_process("trainer.epochs=20")
    assert first["final_val_loss"] == second["final_val_loss"] and first["metrics"] == second["metrics"]
