"""Adam and SGD over the stacked parameter buffer, with each member's own hyperparameters.

Adam runs torch's own fused kernel where the device has one: members are grouped by equal
settings and one call updates each group's rows (the whole buffer when all share every setting),
so a step costs one pass over the parameters, not one per formula step. Elsewhere (and for SGD)
the update is torch's single-tensor formula, in its order of operations, on the whole [K, P]
buffer: a hyperparameter all members share is a Python number, as in torch; one they differ in is
a [K, 1] column; Adam's bias corrections are computed in float64, as torch computes them.

Each member's plain optimizer stays the source of truth between epochs: the stack reads its
hyperparameters (and the lr its schedule set) and `write_back` leaves its state in torch's own
state_dict format (state[p] = {"step", "exp_avg", "exp_avg_sq"} or {"momentum_buffer"}), so a
checkpoint of a member resumes with a plain run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch

from aecli.vectorized.stacked_model import StackedMLP, WriteBack, member_views

Hyper = Union[float, torch.Tensor]  # shared by every member, or a [K, 1] column


def unsupported_optimizer(optimizer: torch.optim.Optimizer) -> tuple[Optional[tuple[object, ...]], str]:
    """(what members must share to step together, "") or (None, why this optimizer trains alone)."""
    if len(optimizer.param_groups) != 1:
        return None, "optimizers with several parameter groups are not stacked"
    g = optimizer.param_groups[0]
    if type(optimizer) is torch.optim.Adam:
        if g.get("amsgrad") or g.get("maximize") or g.get("decoupled_weight_decay"):
            return None, "Adam with amsgrad, maximize or decoupled weight decay is not stacked"
        return ("adam",), ""
    if type(optimizer) is torch.optim.SGD:
        if g.get("maximize") or g.get("dampening", 0) != 0:
            return None, "SGD with maximize or dampening is not stacked"
        return ("sgd", bool(g.get("nesterov"))), ""
    return None, f"optimizer {type(optimizer).__name__} is not stacked"


def column(values: Sequence[float], ref: torch.Tensor) -> Hyper:
    """One hyperparameter of every member: a number when they share it, else a [K, 1] column."""
    if all(v == values[0] for v in values):
        return float(values[0])
    return torch.tensor(values, device=ref.device, dtype=ref.dtype).view(-1, 1)


FUSED = True  # use torch's fused Adam kernel where the device has one (tests switch it off to check the formula)


class StackedOptimizer:
    """What both optimizers share: the members' plain optimizers, the lr column, the step count."""

    def __init__(self, stack: StackedMLP, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self.stack, self.optimizers = stack, list(optimizers)
        self.groups = [o.param_groups[0] for o in optimizers]
        self.params = member_views(stack, stack.flat)[0]  # every member's plain parameters, member by member
        self.owners = [o for o, slots in zip(self.optimizers, stack.slots) for _ in slots]
        self.lr: Hyper = 0.0
        self.steps = 0
        self.refresh_lr()

    def setting(self, key: str) -> list[float]:
        return [float(g[key]) for g in self.groups]

    def refresh_lr(self) -> None:
        """Read each member's lr (a schedule changes it between epochs)."""
        self.lr = column(self.setting("lr"), self.stack.flat)

    def load(self, buffer: torch.Tensor, key: str) -> list[int]:
        """Copy one kind of the plain optimizers' saved state into a [K, P] buffer (a group rebuilt after a
        divergence has some); return the step counts it finds ("step" of Adam's state, 0 without state)."""
        steps = []
        for row, optimizer, slots in zip(buffer, self.optimizers, self.stack.slots):
            for slot in slots:
                state = optimizer.state.get(slot.param) or {}
                if state.get(key) is not None:
                    slot.stacked(row).copy_(state[key])
                steps.append(int(state["step"]) if "step" in state else 0)
        return steps

    def zero_grad(self) -> None:
        self.stack.grad.zero_()

    def step(self) -> None:
        raise NotImplementedError

    def write_back(self) -> None:
        raise NotImplementedError


class StackedAdam(StackedOptimizer):
    """torch.optim.Adam (no amsgrad) for every member at once."""

    def __init__(self, stack: StackedMLP, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        super().__init__(stack, optimizers)
        ref = stack.flat
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(ref), torch.zeros_like(ref)
        steps = set(self.load(self.exp_avg, "exp_avg")) | set(self.load(self.exp_avg_sq, "exp_avg_sq"))
        if len(steps) > 1:
            raise ValueError(f"stacked members must have taken the same number of steps, not {sorted(steps)}")
        self.steps = steps.pop() if steps else 0
        self.step_t = torch.full((), float(self.steps), device=ref.device, dtype=torch.float32)
        self.beta1, self.beta2 = (column([g["betas"][i] for g in self.groups], ref) for i in (0, 1))
        self.betas64 = torch.tensor([g["betas"] for g in self.groups], dtype=torch.float64)  # for bias corrections
        self.eps, self.weight_decay = column(self.setting("eps"), ref), column(self.setting("weight_decay"), ref)
        self.fused = FUSED and ref.device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_")
        self.plain_state: Optional[list[dict[str, torch.Tensor]]] = None
        self.refresh_lr()

    def refresh_lr(self) -> None:
        """The lr column, and the members grouped by equal settings: each group is one fused-kernel call."""
        super().refresh_lr()
        settings = [(g["lr"], *g["betas"], g["weight_decay"], g["eps"]) for g in self.groups]
        self.calls: list[tuple[tuple[float, ...], list[list[torch.Tensor]]]] = []
        if not hasattr(self, "exp_avg"):  # the base class's first call, before the buffers exist
            return
        buffers = (self.stack.flat, self.stack.grad, self.exp_avg, self.exp_avg_sq)
        for setting in dict.fromkeys(settings):
            rows = [k for k, s in enumerate(settings) if s == setting]
            every = len(rows) == len(settings)
            self.calls.append((setting, [[b] if every else [b[k] for k in rows] for b in buffers]))

    def step(self) -> None:  # no autograd to switch off: the buffers are plain tensors, the leaves only view them
        """One Adam step of every member: torch's fused kernel per group of equal settings, else the
        single-tensor formula on the whole buffer."""
        self.steps += 1
        if not self.fused:
            return self.formula_step()
        self.step_t.add_(1)
        for (lr, beta1, beta2, weight_decay, eps), (params, grads, avgs, avgs_sq) in self.calls:
            torch._fused_adam_(
                params,
                grads,
                avgs,
                avgs_sq,
                [],
                [self.step_t] * len(params),
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=weight_decay,
                eps=eps,
                amsgrad=False,
                maximize=False,
            )

    def formula_step(self) -> None:
        """torch's _single_tensor_adam, in its order of operations, with [K, 1] columns where members differ."""
        param, grad, exp_avg, exp_avg_sq = self.stack.flat, self.stack.grad, self.exp_avg, self.exp_avg_sq
        wd = self.weight_decay
        if not isinstance(wd, float):
            grad = grad.addcmul(param, wd)
        elif wd != 0:
            grad = grad.add(param, alpha=wd)
        exp_avg.lerp_(grad, 1 - self.beta1)
        if isinstance(self.beta2, float):
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        else:
            exp_avg_sq.mul_(self.beta2).addcmul_(grad * (1 - self.beta2), grad)
        step_size, bias_correction2_sqrt = self._corrections()
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        if isinstance(step_size, float):
            param.addcdiv_(exp_avg, denom, value=-step_size)
        else:
            param.sub_(torch.div(exp_avg, denom).mul_(step_size))

    def _corrections(self) -> tuple[Hyper, Hyper]:
        """lr / (1 - beta1^t) and sqrt(1 - beta2^t), in float64 like torch's Python floats."""
        if isinstance(self.beta1, float) and isinstance(self.beta2, float) and isinstance(self.lr, float):
            return self.lr / (1 - self.beta1**self.steps), (1 - self.beta2**self.steps) ** 0.5
        lr = torch.tensor(self.setting("lr"), dtype=torch.float64)
        bc1, bc2 = (1 - self.betas64**self.steps).unbind(1)
        ref = self.stack.flat
        return (lr / bc1).to(ref.device, ref.dtype).view(-1, 1), bc2.sqrt().to(ref.device, ref.dtype).view(-1, 1)

    @torch.no_grad()
    def write_back(self) -> None:
        """Each member's plain Adam state as torch keeps it (made at the first step, as torch makes it)."""
        if self.steps == 0:
            return
        if self.plain_state is None:
            self.plain_state = plain = [self._plain_state(p, o) for p, o in zip(self.params, self.owners)]
            self.copies = [
                WriteBack(self.stack, buffer, [s[key] for s in plain])
                for key, buffer in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq))
            ]
            self.step_buffers = self._step_buffers(plain)
        for copy in self.copies:
            copy()
        torch._foreach_zero_(self.step_buffers)
        torch._foreach_add_(self.step_buffers, float(self.steps))

    def _step_buffers(self, plain: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Each member's step tensors (one per parameter, as torch keeps them) made views of one small
        buffer of its own, so setting every step count is one foreach call over K buffers."""
        buffers, i = [], 0
        for slots in self.stack.slots:
            steps = [plain[i + j]["step"] for j in range(len(slots))]
            own = torch.stack([s.detach() for s in steps])
            for j, step in enumerate(steps):
                step.data = own[j]
            buffers.append(own)
            i += len(slots)
        return buffers

    @staticmethod
    def _plain_state(param: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        state = optimizer.state[param]
        if not state:  # torch keeps step on the parameter's device only for fused or capturable Adam
            group = optimizer.param_groups[0]
            device = param.device if group.get("fused") or group.get("capturable") else torch.device("cpu")
            state["step"] = torch.zeros((), dtype=torch.float32, device=device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state


class StackedSGD(StackedOptimizer):
    """torch.optim.SGD (momentum, nesterov, weight decay; no dampening) for every member at once."""

    def __init__(self, stack: StackedMLP, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        super().__init__(stack, optimizers)
        ref = stack.flat
        self.momentum, self.weight_decay = (
            column(self.setting("momentum"), ref),
            column(self.setting("weight_decay"), ref),
        )
        self.nesterov = bool(self.groups[0].get("nesterov"))
        self.buffer = torch.zeros_like(ref) if any(g["momentum"] != 0 for g in self.groups) else None
        if self.buffer is not None:  # a zero buffer's first update is torch's clone of the gradient (no dampening)
            self.load(self.buffer, "momentum_buffer")

    def step(self) -> None:  # no autograd to switch off: the buffers are plain tensors, the leaves only view them
        """torch's _single_tensor_sgd, in its order of operations, with [K, 1] columns where members differ."""
        self.steps += 1
        param, grad, wd, momentum = self.stack.flat, self.stack.grad, self.weight_decay, self.momentum
        if not isinstance(wd, float):
            grad = grad.addcmul(param, wd)
        elif wd != 0:
            grad = grad.add(param, alpha=wd)
        if self.buffer is not None:
            self.buffer.mul_(momentum).add_(grad)
            if not self.nesterov:
                grad = self.buffer
            else:
                grad = (
                    grad.add(self.buffer, alpha=momentum)
                    if isinstance(momentum, float)
                    else grad.addcmul(self.buffer, momentum)
                )
        if isinstance(self.lr, float):
            param.add_(grad, alpha=-self.lr)
        else:
            param.sub_(grad * self.lr)

    @torch.no_grad()
    def write_back(self) -> None:
        """Members with momentum get torch's {"momentum_buffer": ...}; the others keep no state, as torch does."""
        if self.buffer is None or self.steps == 0:
            return
        for slots, row, optimizer in zip(self.stack.slots, self.buffer, self.optimizers):
            if optimizer.param_groups[0]["momentum"] == 0:
                continue
            for slot in slots:
                state = optimizer.state[slot.param]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = slot.stacked(row).clone(memory_format=torch.contiguous_format)
                else:
                    state["momentum_buffer"].copy_(slot.stacked(row))


def build_optimizer(stack: StackedMLP, optimizers: Sequence[torch.optim.Optimizer]) -> StackedOptimizer:
    return (
        StackedAdam(stack, optimizers) if isinstance(optimizers[0], torch.optim.Adam) else StackedSGD(stack, optimizers)
    )
