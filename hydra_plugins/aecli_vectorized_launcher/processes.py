"""hydra.launcher.processes=N: the sweep's jobs shared out over N worker processes, each one a
vectorized launcher over its share (grouping, stacked training, figures, as in one process).

Why: a stacked step is arithmetic once the stack is large (64 rectangle `big` nets: 1.6 ms of
batched matmuls per step on one core), and one process uses one core; torch's own threads do not
help at these sizes, and Python threads share one interpreter lock. Worker processes do use the
cores: two processes stacking 32 nets each train about twice the member-steps per second of one
stacking 64 (this 2-core machine).

Jobs are dealt round-robin (job i to process i mod N), so the compatible jobs of a sweep (usually
spread evenly over it) form a group in each process. Each process gets its jobs' configs as
Hydra's batch check composed them, Hydra's state (as Hydra's joblib launcher hands it over), and
the launcher's settings; its figures are drawn in the process itself unless
hydra.launcher.figure_workers says otherwise (the processes already use the cores). Workers are
spawned, never forked, and answer stop signals as aecli does while they run jobs (an idle worker
ignores them): a Ctrl-C reaches every process of the terminal's group, and a signal sent to this
process alone writes the sweep's stop file, which every job watches. A worker that dies (killed,
out of memory) costs its jobs only: they are logged and return NaN, as a failed job does, and the
sweep report says what their folders say. Each worker is a pool of its own: a pool whose worker
dies terminates its other workers.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import importlib
import inspect
import logging
import math
import multiprocessing
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig
from omegaconf.basecontainer import BaseContainer

from aecli import signals

if TYPE_CHECKING:
    from .vectorized_launcher import Job, VectorizedLauncher

log = logging.getLogger(__name__)
Outcome = tuple[str, Any, Optional[str], Optional[str]]  # a job's status name, return value, folder, task name
POLL_S = 0.2  # the launching process waits in steps this long, so its signal handlers run


def launch_in_processes(launcher: VectorizedLauncher, jobs: Sequence[Job]) -> list[JobReturn]:
    """Every job, shared out over the launcher's worker processes; JobReturns in the jobs' order."""
    assert launcher.config is not None and launcher.hydra_context is not None and launcher.task_function
    n = min(launcher.processes, len(jobs))
    loader = launcher.loader()
    shares = [
        [(idx, overrides, loader.take_sweep_config(launcher.config, overrides)) for idx, overrides, _ in jobs[p::n]]
        for p in range(n)
    ]
    context = HydraContext(config_loader=loader.inner, callbacks=launcher.hydra_context.callbacks)
    task = (launcher.task_function.__module__, launcher.task_function.__qualname__)
    # Hydra's singletons (its config store, the HydraConfig); OmegaConf's resolvers are closures that
    # only cloudpickle could send: each worker registers its own, and the jobs' configs carry the
    # values cached here (the sweep folder's ${now:} and ${aecli_pid:}), as for Hydra's joblib launcher
    args = (launcher.settings(), launcher.config, context, task, Singleton.get_state()["instances"])
    returns: dict[int, JobReturn] = {}
    launcher.workers = [w if not w._broken else start_workers(1)[0] for w in launcher.workers or start_workers(n)]
    log.info(
        f"Launching {len(jobs)} jobs in {n} of the {len(launcher.workers or [])} worker processes, compatible ones "
        f"stacked in each (hydra/launcher=vectorized)"
    )
    futures = [worker.submit(run_share, *args, share) for worker, share in zip(launcher.workers, shares)]
    stop_file = Path(str(launcher.config.hydra.sweep.dir)) / signals.STOP_FILE
    try:
        with signals.watch_file(stop_file):  # a stop file stops this process's sweep too, as in one process
            for share, future in zip(shares, futures):
                returns.update(collect(future, share))
    except BaseException:  # a second Ctrl-C: the workers got it too (a terminal's signal reaches them all)
        for future in futures:
            future.cancel()
        raise
    return [returns[idx] for idx, _, _ in jobs]


def start_workers(n: int) -> list[cf.ProcessPoolExecutor]:
    """n worker processes, started now: each imports torch and aecli (about 2.5 s) while the
    launching process composes the sweep's configs. One pool each: a pool whose worker dies
    terminates its other workers, and a death must cost that worker's jobs only. They are stopped
    when this process ends."""
    log.info(f"vectorized: starting {n} worker processes (hydra.launcher.processes)")
    context = multiprocessing.get_context("spawn")
    workers = [cf.ProcessPoolExecutor(1, mp_context=context, initializer=_start_worker) for _ in range(n)]
    for worker in workers:
        worker.submit(int)  # its process starts now (pools spawn on demand)
    atexit.register(_stop_workers, workers)  # before the pools' own exit handler, which would wait for them
    return workers


def _start_worker() -> None:
    """A worker's start: the imports every job needs. Stop signals are ignored while it waits for its
    jobs (run_share answers them while they run): an idle worker has nothing to stop."""
    signals.ignore()
    import torch._dynamo  # noqa: F401  (what a job's first torch optimizer imports: about 0.9 s)

    import aecli.pipeline  # noqa: F401  (torch, matplotlib)
    import aecli.vectorized  # noqa: F401


def _stop_workers(pools: Sequence[cf.ProcessPoolExecutor], grace_s: float = 10.0) -> None:
    """At this process's exit: an idle worker ends at once, those still importing or ending their jobs
    (after a second Ctrl-C) get `grace_s` in all, together, then are killed."""
    processes = [process for pool in pools for process in (pool._processes or {}).values()]
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()


def collect(future: cf.Future[list[Outcome]], share: Sequence[Job]) -> dict[int, JobReturn]:
    """A worker's JobReturns, or NaN for each of its jobs where the worker died."""
    try:
        outcomes = signals.wait_for(future, POLL_S)
    except (cf.process.BrokenProcessPool, cf.CancelledError) as err:
        numbers = ", ".join(str(idx) for idx, _, _ in share)
        log.error("vectorized: the process running jobs %s ended before they did (%s)", numbers, err)
        return {idx: lost(overrides, config) for idx, overrides, config in share}
    return {idx: job_return(outcome, overrides, config) for (idx, overrides, config), outcome in zip(share, outcomes)}


def job_return(outcome: Outcome, overrides: list[str], config: Optional[DictConfig]) -> JobReturn:
    """A worker's job as Hydra's JobReturn, with this process's copy of its config (a config made in the
    worker names the launcher's config class as the worker imported it, which pickle cannot send back)."""
    status, value, working_dir, task_name = outcome
    ret = JobReturn(overrides=overrides, cfg=config, working_dir=working_dir, task_name=task_name)
    ret.status, ret._return_value = JobStatus[status], value
    return ret


def lost(overrides: list[str], config: Any) -> JobReturn:
    """A job whose worker died: NaN, as aecli returns for a failed job (Hydra would re-raise an error)."""
    return JobReturn(overrides=overrides, cfg=config, status=JobStatus.COMPLETED, _return_value=math.nan)


def run_share(
    settings: dict[str, Any],
    config: DictConfig,
    context: HydraContext,
    task: tuple[str, str],
    instances: Any,
    share: Sequence[Job],
) -> list[Outcome]:
    """A worker process's jobs, with a vectorized launcher of its own (drawing its own figures)."""
    from .vectorized_launcher import VectorizedLauncher

    module, name = task
    function = inspect.unwrap(getattr(importlib.import_module(module), name))  # under Hydra's decorator
    setup_globals()  # with the task's module, every resolver the configs name is registered here
    Singleton.set_state({"instances": instances, "omegaconf_resolvers": BaseContainer._resolvers})
    settings = {**settings, "figure_workers": settings["figure_workers"] or 0}
    launcher = VectorizedLauncher(**settings)
    launcher.setup(hydra_context=context, task_function=function, config=config)
    with signals.handling():  # a Ctrl-C (it reaches every process of the terminal's group) stops these jobs
        return [outcome(ret) for ret in launcher.run_jobs(share)]


def outcome(ret: JobReturn) -> Outcome:
    """What the launching process needs of a job's JobReturn: picklable, without its configs."""
    value = ret._return_value
    if isinstance(value, BaseException):  # a failed job: its error, as text where pickle cannot send it
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001
            value = RuntimeError(f"{type(value).__name__}: {value}")
    return ret.status.name, value, ret.working_dir, ret.task_name
