"""The reconstruction-error map of a 2-D run (the nonlinear_2d study's figure), an analysis like the
studies' own: conf/config.yaml names it for every run, and it works only where the data is 2-D
and the data set gives a window (`dataset.grid_extent`).

error_map.png shows ||x_hat - x|| over a resolution x resolution grid of the window (log colour
scale, training data on top), beside the region where it is below `threshold` (the study's
thresholded map); the number it reports, `error_map_share_below_threshold`, is that region's share
of the window, and `error_at_origin` the error at (0, 0) (where a net without biases maps 0 to 0).
error_map.npz keeps the grid, the window, the threshold and (a sample of) the
training data: the sweep report draws every job's map from it on one colour scale.
"""

from __future__ import annotations

import logging

import numpy as np

from aecli.analyses import RunContext, encode_reconstruct, error_grid
from aecli.errors import ConfigError
from aecli.reporting.comparison import ERROR_MAP_DATA, MAX_MAP_POINTS, write_error_map_data

log = logging.getLogger("aecli")


def error_map(ctx: RunContext, resolution: int = 500, threshold: float = 0.1) -> dict[str, float]:
    data = ctx.data
    if data.dim != 2 or data.grid_extent is None:
        log.info(
            "error_map.png skipped: the error map needs 2-D data with a dataset.grid_extent, %s is %d-D",
            data.name,
            data.dim,
        )
        return {}
    if not (resolution >= 2 and threshold > 0):
        raise ConfigError(
            f"analyses.error_map: resolution={resolution}, threshold={threshold} is not allowed: use >= 2 and > 0"
        )
    err = error_grid(ctx.model, data.grid_extent, ctx.size(resolution, 50), ctx.device)
    train = data.train.double().cpu().numpy()
    if len(train) > MAX_MAP_POINTS:  # a seeded sample: the map shows where the data lies, not every point
        train = train[np.sort(np.random.default_rng(0).choice(len(train), MAX_MAP_POINTS, replace=False))]
    write_error_map_data(ctx.run_dir / ERROR_MAP_DATA, err, data.grid_extent, threshold, train)
    if ctx.draw:
        from aecli.reporting import plots

        path = ctx.run_dir / "error_map.png"
        plots.error_map(err, data.grid_extent, threshold, ctx.title, path, ctx.dpi, data=train)
    _, origin = encode_reconstruct(ctx.model, ctx.tensor(np.zeros((1, 2))))
    return {
        "error_map_share_below_threshold": float((err < threshold).mean()),
        "error_at_origin": float(np.linalg.norm(origin[0])),  # ||x_hat(0) - 0||: does the low-error region reach it?
    }
