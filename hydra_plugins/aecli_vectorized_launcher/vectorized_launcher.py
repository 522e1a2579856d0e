"""The vectorized launcher: every job of a sweep in this process, compatible jobs trained as one stacked model.

Each job runs as with Hydra's basic launcher, through `hydra.core.utils.run_job` (its folder, .hydra
files, aecli.log, JobReturn), but in a thread of its own that stops at the run's train step
(aecli.grouped) and hands its TrainRequest to the launcher. Only one thread runs at a time: the
launcher starts a job, waits until it reaches its train step (or ends, e.g. on a bad value), and
goes on with the next. Requests with the same aecli.vectorized.stack_key form a group (at most
`max_members`); a group trains at once with fit_group, in this thread; then each member in turn
goes on to its analyses and pauses once its figures are sent to the worker processes
(aecli.reporting.drawing; `figure_workers`), and when all have, each in turn waits for its
figures and ends (summary). A request without a key, or alone in
its group, trains alone with plain fit. Meanwhile every waiting job's folder stays locked and its
summary.json says "running"; a stop request (signal or the sweep's stop file) ends the group's
training for every member, each folder then "interrupted" in phase train and resumable.

With `processes` > 1 the jobs are dealt over that many worker processes, each running this
launcher over its share (processes.py). Each job's config is composed once: the one Hydra's
sweeper composed to check the batch (RememberingLoader).

Only Hydra and the standard library are imported at module level: Hydra imports every plugin
module at start-up, `aecli --help` included.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Optional, cast

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)
Job = tuple[int, list[str], Optional[DictConfig]]  # its number, its overrides, its config where already composed
POLL_S = 0.2  # waits in the launching thread wake this often, so signal handlers run (a second Ctrl-C)


class VectorizedLauncher(Launcher):
    def __init__(
        self, max_members: int = 64, max_waiting: int = 256, figure_workers: Optional[int] = None, processes: int = 1
    ) -> None:
        from aecli.errors import ConfigError, fail

        for key, value in (("max_members", max_members), ("max_waiting", max_waiting), ("processes", processes)):
            if value < 1:  # one sentence and exit 2, before any job runs (Hydra would wrap a raised error)
                fail(ConfigError(f"hydra.launcher.{key}={value} is not allowed: use an integer >= 1"))
        if figure_workers is not None and figure_workers < 0:
            fail(ConfigError(f"hydra.launcher.figure_workers={figure_workers} is not allowed: use null, 0 or more"))
        self.max_members, self.max_waiting, self.figure_workers = max_members, max_waiting, figure_workers
        self.processes = processes
        self.workers: Any = None  # the worker processes, with processes > 1

    def settings(self) -> dict[str, Any]:
        """What a launcher in a worker process is built with (processes.py)."""
        keys = ("max_members", "max_waiting", "figure_workers")
        return {key: getattr(self, key) for key in keys}
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from aecli.reporting import drawing

        drawing.close_pool()  # one an earlier sweep of this process left open (it ended before its report)
        if not isinstance(hydra_context.config_loader, RememberingLoader):
            hydra_context.config_loader = cast(Any, RememberingLoader(hydra_context.config_loader))
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        if self.processes > 1 and self.workers is None:  # their start-up overlaps Hydra's composing of the jobs
            from .processes import start_workers

            self.workers = start_workers(self.processes)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run every job, grouped where they can be; their JobReturns in the jobs' order. With
        hydra.launcher.processes > 1 the jobs are shared out over that many worker processes (processes.py)."""
        from aecli.reporting import drawing

        setup_globals()
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs: list[Job] = [(idx, list(o), None) for idx, o in enumerate(job_overrides, start=initial_job_idx)]
        # open until the sweep report (aecli.hydra_hooks.SweepComparison) has drawn its figures with it; with
        # worker processes (which draw their jobs' figures themselves) its workers start at the report
        drawing.open_pool(self.figure_workers, warm=self.draws() and self.processes == 1)
        if self.processes > 1 and len(jobs) > 1:
            from .processes import launch_in_processes

            return launch_in_processes(self, jobs)
        log.info(f"Launching {len(jobs)} jobs locally, compatible ones stacked (hydra/launcher=vectorized)")
        return self.run_jobs(jobs)

    def run_jobs(self, jobs: Sequence[Job]) -> list[JobReturn]:
        """Every job in this process, their JobReturns in the jobs' order. A second Ctrl-C aborts:
        every job still waiting ends "interrupted", then KeyboardInterrupt goes on up."""
        from aecli.reporting.drawing import figure_pool

        assert self.config is not None
        members: list[Member] = []
        hydra_cfg = HydraConfig.instance().cfg
        try:
            with figure_pool(self.figure_workers, warm=self.draws()):  # members' figures (kept if launch opened it)
                self.run_all(jobs, members)
        except BaseException:
            abort(members)
            raise
        finally:
            HydraConfig.instance().cfg = hydra_cfg
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [cast_return(m) for m in members]

    def draws(self) -> bool:
        """Whether the sweep's runs draw figures (plots.enabled): else the figure workers start at a first figure."""
        assert self.config is not None
        return bool(OmegaConf.select(self.config, "plots.enabled", default=True))

    def run_all(self, jobs: Sequence[Job], members: list[Member]) -> None:
        """Start the jobs in order; train each group when it is full, the rest at the end."""
        from aecli.vectorized import stack_key

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        chdir = bool(self.config.hydra.job.chdir)  # one working directory per job: jobs cannot wait side by side
        groups: dict[Hashable, list[Member]] = {}
        for idx, overrides, composed in jobs:
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            config = composed if composed is not None else self.loader().take_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            member = Member(idx, config, self.hydra_context, self.task_function)
            members.append(member)
            member.start()
            self.finished(member)  # the launcher's own logging again, as after each job of the basic launcher
            if member.request is None:  # ended before its train step: a bad value, a stopped sweep
                continue
            if chdir:
                key, reason = None, "hydra.job.chdir=true gives each job its own working directory"
            else:
                key, reason = stack_key(member.request)
            if key is None:
                log.info("vectorized: job %d trains alone: %s", idx, reason)
                self.finish(member, "alone")
                continue
            groups.setdefault(key, []).append(member)
            if len(groups[key]) >= self.max_members:
                self.train(groups.pop(key))
            elif sum(len(g) for g in groups.values()) >= self.max_waiting:
                self.train(groups.pop(max(groups, key=lambda k: len(groups[k]))))
        for key in list(groups):
            self.train(groups.pop(key))

    def loader(self) -> RememberingLoader:
        """The sweep's config loader, as `setup` wrapped it."""
        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        assert isinstance(loader, RememberingLoader)
        return loader

    def train(self, group: list[Member]) -> None:
        """One group's training at once, then each member's finish (figures, analyses, summary)."""
        from aecli import signals
        from aecli.vectorized import fit_group

        assert self.config is not None
        if len(group) == 1:
            log.info("vectorized: job %d trains alone: no other job can share its stack", group[0].idx)
            self.finish(group[0], "alone")
            return
        requests = [m.own_log_request() for m in group]
        log.info(
            "vectorized: jobs %s train as one group of %d (%s)",
            *(spans([m.idx for m in group]), len(group), describe(requests[0])),
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        try:
            outcomes: list[tuple[str, Any]] = [
                ("result", r) for r in fit_group(requests, stop_requested=signals.requested)
            ]
        except Exception as err:  # a fault of the group's training: every member fails with it, truthfully
            log.error("vectorized: the group of jobs %s failed: %s", spans([m.idx for m in group]), err)
            outcomes = [("error", err)] * len(group)
        finally:
            for member in group:
                member.close_log()
        for member, (kind, value) in zip(group, outcomes):
            member.pending = (kind, value, len(group))  # what an abort from here on still hands it
        for member in group:  # each to its pause: the workers draw its figures while the next one goes on
            self.go_on(member, *member.pending)
        for member in group:
            self.end(member)

    def finish(self, member: Member, kind: str, value: Any = None, group_size: Optional[int] = None) -> None:
        """Let a waiting job go on to its end."""
        self.go_on(member, kind, value, group_size)
        self.end(member)

    def go_on(self, member: Member, kind: str, value: Any = None, group_size: Optional[int] = None) -> None:
        """Let a waiting job go on to its pause (its figures sent) or its end, with its own Hydra config
        and log file around it."""
        self.own_globals(member)
        member.go_on(kind, value, group_size)

    def end(self, member: Member) -> None:
        """Let a paused job wait for its figures and end, with its own Hydra config and log file around it again."""
        self.own_globals(member)
        member.resume()
        self.finished(member)

    def own_globals(self, member: Member) -> None:
        HydraConfig.instance().set_config(member.config)
        configure_log(member.config.hydra.job_logging, member.config.hydra.verbose)

    def finished(self, member: Member) -> None:
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if member.error is not None:  # not an error of the run (run_job keeps those): e.g. an abort
            raise member.error


class Member:
    """One job: a thread running Hydra's run_job on aecli's task, which stops at the run's train
    step (aecli.grouped calls `hand_over`) until the launcher lets it go on, and again once its
    figures are sent to the figure workers (`pause`) until the launcher lets it end. Only one job
    thread runs at a time, so Hydra's global config and logging are always the running job's."""

    def __init__(self, idx: int, config: DictConfig, context: HydraContext, task: TaskFunction) -> None:
        self.idx, self.config = idx, config
        self.request: Any = None  # the TrainRequest while the job waits at its train step
        self.group_size: Optional[int] = None
        self.job_return: Optional[JobReturn] = None
        self.error: Optional[BaseException] = None
        self.handlers: list[logging.Handler] = []  # the job's log handlers (console, aecli.log)
        self.waiting = False  # at its train step
        self.paused = False  # at its pause, its figures on their way
        self.pending: tuple[str, Any, Optional[int]] = ("abort", KeyboardInterrupt(), None)  # its group's outcome
        self._ready, self._go = threading.Event(), threading.Event()  # at the train step (or ended); go on
        self._at_pause, self._resume = threading.Event(), threading.Event()  # at its pause (or ended); end
        self._outcome: tuple[str, Any] = ("alone", None)
        self._thread = threading.Thread(target=self._run, args=(context, task), name=f"aecli-job-{idx}", daemon=True)

    # ------------------------------------------------------------------ the job's thread
    def _run(self, context: HydraContext, task: TaskFunction) -> None:
        from aecli import grouped

        grouped.bind(self)
        try:
            self.job_return = run_job(
                hydra_context=context,
                task_function=task,
                config=self.config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        except BaseException as err:  # an abort (KeyboardInterrupt): the run wrote its summary on the way out
            self.error = err
        finally:
            grouped.bind(None)
            self.request = None
            self._ready.set()
            self._at_pause.set()

    def hand_over(self, request: Any, stop_requested: Any) -> Any:
        """aecli.grouped's hand-over point: wait with the request until the launcher says how it trained."""
        from aecli.grouped import plain_fit

        self.request, self.handlers = request, list(logging.getLogger().handlers)
        self.waiting = True
        self._ready.set()
        self._go.wait()
        self.waiting, self.request = False, None
        kind, value = self._outcome
        if kind == "alone":
            return plain_fit(request, stop_requested)
        if kind == "result":
            return value
        raise value

    def pause(self) -> None:
        """aecli.grouped's pause (the run's figures are sent): wait until the launcher lets it end. A run
        that never handed over a request (e.g. it ended before its train step) has nobody to wait for."""
        if not self._go.is_set():
            return
        self.paused = True
        self._at_pause.set()
        self._resume.wait()
        self.paused = False

    # ------------------------------------------------------------------ the launcher's side
    def start(self) -> None:
        """Run the job up to its train step, or to its end."""
        self._thread.start()
        while not self._ready.wait(POLL_S):
            pass

    def go_on(self, kind: str, value: Any = None, group_size: Optional[int] = None) -> None:
        """Let the waiting job go on ("alone": it trains itself; "result": its share of the group's
        training; "error"/"abort": that exception at its train step) and wait for its pause or end."""
        self.group_size = group_size if kind == "result" else None
        self._outcome = (kind, value)
        self._go.set()
        while not self._at_pause.wait(POLL_S):
            pass

    def resume(self) -> None:
        """Let the job go on from its pause (if it paused) and wait for its end."""
        self._resume.set()
        while self._thread.is_alive():
            self._thread.join(POLL_S)

    def own_log_request(self) -> Any:
        """The request with each callback's log lines going to this job's own handlers (aecli.log)."""
        import dataclasses

        callbacks = [OwnLog(c, self.handlers) for c in self.request.callbacks]
        return dataclasses.replace(self.request, callbacks=callbacks)

    def close_log(self) -> None:
        for handler in self.handlers:  # a log file reopened by a callback's line during the group's training
            handler.close()


class RememberingLoader:
    """Hydra's config loader, remembering the job configs it composed for this launcher.

    Before handing a batch of jobs to the launcher, Hydra's sweepers compose every job's config to
    check the batch (`Sweeper.validate_batch_is_legal`) and throw the configs away; a launcher in
    another process has to compose them again, one in this process need not. Installed in the
    sweep's shared HydraContext by `VectorizedLauncher.setup`, this loader keeps each composed
    config until the launcher takes it (once): a nonlinear_2d job's composition takes about 0.28 s.
    Everything else is the wrapped loader's own."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.made: dict[tuple[int, tuple[str, ...]], list[DictConfig]] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config = self.inner.load_sweep_config(master_config, sweep_overrides)
        self.made.setdefault((id(master_config), tuple(sweep_overrides)), []).append(config)
        return config

    def take_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        """The job's config as it was composed for the sweeper's check (composed now if it was not)."""
        made = self.made.get((id(master_config), tuple(sweep_overrides)))
        if not made:
            return self.inner.load_sweep_config(master_config, sweep_overrides)
        config = made.pop()
        if not made:
            del self.made[(id(master_config), tuple(sweep_overrides))]
        return config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def abort(members: list[Member]) -> None:
    """After a second Ctrl-C (or a fault) in the launcher: every waiting job ends "interrupted" at its
    train step (with its share of its group's training, where that had ended); a job that was running
    stops at its next safe point (the stop flag is set)."""
    for member in members:
        while member._thread.is_alive():
            try:
                if member.waiting:
                    member.go_on(*member.pending)
                elif member.paused:
                    member.resume()
                member._thread.join(POLL_S)
            except KeyboardInterrupt:  # yet another signal: keep ending them
                continue


def cast_return(member: Member) -> JobReturn:
    assert member.job_return is not None, f"job {member.idx} has no result"
    return member.job_return


class OwnLog:
    """A member's callback whose log lines (e.g. "epoch 6/60 ...") go to that member's aecli.log and
    the console, as in a run of its own, while the group trains in the launcher's thread."""

    def __init__(self, inner: Any, handlers: list[logging.Handler]) -> None:
        self.inner, self.handlers = inner, handlers

    def _call(self, hook: str, *args: Any) -> None:
        root = logging.getLogger()
        saved, root.handlers = root.handlers, self.handlers
        try:
            getattr(self.inner, hook)(*args)
        finally:
            root.handlers = saved

    def on_epoch_end(self, record: Any, state: Any) -> None:
        self._call("on_epoch_end", record, state)

    def on_step_losses(self, epoch: int, losses: Any) -> None:
        self._call("on_step_losses", epoch, losses)

    def on_fit_end(self, result: Any) -> None:
        self._call("on_fit_end", result)

    def needs_optimizer_state(self, epoch: int) -> bool:
        return bool(self.inner.needs_optimizer_state(epoch))


def spans(ids: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    parts: list[list[int]] = []
    for i in sorted(ids):
        if parts and i == parts[-1][-1] + 1:
            parts[-1].append(i)
        else:
            parts.append([i])
    return ",".join(str(p[0]) if len(p) == 1 else f"{p[0]}-{p[-1]}" for p in parts)


def describe(request: Any) -> str:
    """What a group shares, for the log: e.g. "2-3-2 MLP, batch 32, 60 epochs, 1700 points, 75 kB per member"."""
    from torch import nn

    from aecli.vectorized import bytes_per_member

    model = request.training.model
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shape = "-".join(str(n) for n in [linear[0].in_features, *(m.out_features for m in linear)]) if linear else ""
    kind = f"{shape} MLP" if linear else type(model).__name__
    size = f"{bytes_per_member(request) / 1e3:.0f} kB per member"
    return f"{kind}, batch {request.cfg.batch_size}, {request.cfg.epochs} epochs, {len(request.train)} points, {size}"
