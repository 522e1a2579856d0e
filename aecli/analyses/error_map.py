"""The reconstruction-error map of a 2-D run (the nonlinear_2d study's figure), an analysis like the
studies' own: conf/config.yaml names it for every run, and it draws only where the data is 2-D
and the data set gives a window (`dataset.grid_extent`).

error_map.png shows ||x_hat - x|| over a resolution x resolution grid of the window, beside the
region where it is below `threshold` (the study's thresholded map); the number it reports,
`error_map_share_below_threshold`, is that region's share of the window.
"""

from __future__ import annotations

import logging

from aecli.analyses import RunContext, error_grid
from aecli.errors import ConfigError

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
    if ctx.cfg.plots.enabled:
        from aecli.reporting import plots

        plots.error_map(err, data.grid_extent, threshold, ctx.title, ctx.run_dir / "error_map.png", ctx.dpi)
    return {"error_map_share_below_threshold": float((err < threshold).mean())}
