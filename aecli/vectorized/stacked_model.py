"""K plain MLP autoencoders as one stacked model: batched matmuls over a leading member dimension.

Every member's parameters live in one member-major buffer `flat` [K, P] (row k: member k's
weights and biases, layer by layer), so the optimizer updates all members with one kernel and
per-member hyperparameters broadcast as [K, 1] columns. The layers are views of that buffer
(autograd leaves); their gradients are views of `grad` [K, P], accumulated in place. A layer's
weight is stored transposed ([K, in, out], what `h @ W^T` multiplies by): the weight gradient
autograd makes then has the buffer's own layout, and accumulating it is a plain vectorized add
(a transposed add costs more than the matmul). Handing the weights back (`WriteBack`) puts the
rows in plain layout in a mirror buffer with one transposing copy per layer, then copies each
member's row into one buffer of its own whose views its plain parameters have become.

Members may differ in activation (members are sorted so each activation runs on a contiguous
slice of the stack), bias on/off (a frozen zero bias: the bias is multiplied by a 0/1 mask, so
its gradient and its Adam/SGD update are exactly 0) and dropout rate.

Random numbers (dropout here, masking noise in stacked_terms.py) come from torch's global
generator as one draw of shape [K, ...] per site and step: each member's noise has the
distribution it has when the job runs alone, but not the same values, so such members are
statistically, not bitwise, equal to the job run alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from aecli.models.layers import is_activation
from aecli.models.mlp import MLPAutoencoder

# The layers' gradients are views of one [K, P] buffer, strided by P: torch warns (once per process) that
# this is not its preferred layout for a parameter that is itself such a view; accumulating into it is in
# place and correct. The first backward pass runs with that warning filtered; later ones need no filter,
# which would cost more than a small net's whole backward pass.
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"
_layout_warned = [False]


def backward(objective: torch.Tensor) -> None:
    """objective.backward(), without torch's warning about the stacked gradients' layout."""
    if _layout_warned[0]:
        objective.backward()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
        objective.backward()
    _layout_warned[0] = True


@dataclass
class Stage:
    """One Linear layer of a member: the dropout on its input, the layer, the activation after it."""

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    dropout: float = 0.0
    activation: Optional[nn.Module] = None
    hidden: bool = False  # the activation is one of model.hidden_activations (what activation penalties read)


@dataclass
class Slot:
    """Where one plain parameter of a member sits in a row of the stacked buffer (a weight transposed)."""

    param: torch.Tensor
    offset: int

    def view(self, row: torch.Tensor) -> torch.Tensor:
        """This parameter in a row of plain layout (a mirror's row, a member's own buffer), in its shape."""
        return row[self.offset : self.offset + self.param.numel()].view(self.param.shape)

    def stacked(self, row: torch.Tensor) -> torch.Tensor:
        """This parameter in a row of stacked layout (weights transposed), in its plain shape."""
        part = row[self.offset : self.offset + self.param.numel()]
        return part.view(self.param.shape[1], self.param.shape[0]).t() if self.param.dim() == 2 else part


def member_stages(model: nn.Module) -> tuple[list[Stage], str]:
    """The member's layers in order, or ([], why they cannot be stacked)."""
    if type(model) is not MLPAutoencoder:
        return [], f"model {type(model).__name__} is not a plain MLP autoencoder"
    stages: list[Stage] = []
    hidden = [id(m) for m in model.hidden_activations]
    pending = 0.0
    for module in [*model.encoder, *model.decoder]:
        if isinstance(module, nn.Linear):
            stages.append(Stage(module.weight, module.bias, dropout=pending))
            pending = 0.0
        elif isinstance(module, nn.Dropout):
            if not stages or pending:
                return [], "dropout before the first layer or twice in a row is not stacked"
            pending = float(module.p)
        elif _is_plain_activation(module) and stages and stages[-1].activation is None:
            stages[-1].activation, stages[-1].hidden = module, id(module) in hidden
        else:
            return [], f"{type(module).__name__} layers are not stacked"
    return stages, ""


def _is_plain_activation(module: nn.Module) -> bool:
    """An activation the stack can run as a fresh module of its class: default settings, no parameters."""
    return is_activation(module) and not list(module.parameters()) and repr(type(module)()) == repr(module)


def structure(stages: Sequence[Stage]) -> tuple[tuple[int, ...], ...]:
    """What members of one stack must share: each layer's shape, and where the hidden activations are."""
    return tuple((*s.weight.shape, int(s.activation is not None), int(s.hidden)) for s in stages)


def activation_signature(stages: Sequence[Stage]) -> tuple[str, ...]:
    """The member's activations in order: members are sorted by it, so equal ones sit side by side."""
    return tuple(type(s.activation).__name__ if s.activation is not None else "" for s in stages)


@dataclass
class StackedLayer:
    """One layer of the stack: weight and bias views, dropout rates, activation runs over the stack."""

    weight: torch.Tensor  # [K, in, out]: the plain weights, transposed
    bias: Optional[torch.Tensor]  # [K, 1, out] (None: no member has one)
    keep: Optional[torch.Tensor]  # [K, 1, 1] probability to keep an input value (None: no member drops)
    runs: list[tuple[int, int, Optional[nn.Module]]]  # (first, end, activation) slices of the stack
    hidden: bool  # its activations are hidden activations (what activation penalties read)


@dataclass
class StackedMLP:
    """The K members' layers over one parameter buffer; `slots[k]` maps member k's plain parameters."""

    flat: torch.Tensor
    grad: torch.Tensor
    layers: list[StackedLayer]
    slots: list[list[Slot]]
    bias_mask: Optional[torch.Tensor]  # [K, 1, 1]: 1 for members with biases, when some have none
    params: list[torch.Tensor] = field(default_factory=list)  # the autograd leaves (views of flat)

    @property
    def k(self) -> int:
        return self.flat.shape[0]

    def leaf(self, offset: int, shape: tuple[int, ...]) -> torch.Tensor:
        """An autograd leaf viewing columns [offset, offset + numel) of every row; its gradient a view of `grad`."""
        n = 1
        for size in shape:
            n *= size
        leaf = torch.empty(0, device=self.flat.device, dtype=self.flat.dtype).requires_grad_(True)
        leaf.data = self.flat[:, offset : offset + n].view(self.k, *shape)
        leaf.grad = self.grad[:, offset : offset + n].view(self.k, *shape)
        self.params.append(leaf)
        return leaf


def build_stack(models: Sequence[nn.Module]) -> StackedMLP:
    """Copy the members' current weights into one stacked model (members already in stack order)."""
    per_member = [member_stages(m)[0] for m in models]
    first, k = per_member[0], len(models)
    with_bias = any(s.bias is not None for stages in per_member for s in stages)
    sizes = [s.weight.numel() + (s.weight.shape[0] if with_bias else 0) for s in first]
    ref = first[0].weight
    flat = torch.zeros(k, sum(sizes), device=ref.device, dtype=ref.dtype)
    grad = torch.zeros_like(flat)
    slots = [_member_slots(flat[i], stages, with_bias) for i, stages in enumerate(per_member)]
    stack = StackedMLP(flat, grad, [], slots, _bias_mask(per_member, with_bias))
    offset = 0
    for j, stage in enumerate(first):
        out, inp = stage.weight.shape
        weight = stack.leaf(offset, (inp, out))
        bias = stack.leaf(offset + out * inp, (1, out)) if with_bias else None
        layer_stages = [stages[j] for stages in per_member]
        stack.layers.append(StackedLayer(weight, bias, _keep(layer_stages), _runs(layer_stages), stage.hidden))
        offset += sizes[j]
    return stack


def _member_slots(row: torch.Tensor, stages: Sequence[Stage], with_bias: bool) -> list[Slot]:
    """Copy one member's parameters into its row; return where each one went. Each layer takes
    out*in columns for its weight, then `out` for its bias when any member has biases."""
    slots, offset = [], 0
    for stage in stages:
        out = stage.weight.shape[0]
        parts = [(stage.weight, stage.weight.numel())] + ([(stage.bias, out)] if with_bias else [])
        for param, width in parts:
            if param is not None:
                slot = Slot(param, offset)
                slot.stacked(row).copy_(param.detach())
                slots.append(slot)
            offset += width
    return slots


def _bias_mask(per_member: Sequence[Sequence[Stage]], with_bias: bool) -> Optional[torch.Tensor]:
    has = [stages[0].bias is not None for stages in per_member]
    if not with_bias or all(has):
        return None
    ref = per_member[0][0].weight
    return torch.tensor(has, device=ref.device, dtype=ref.dtype).view(-1, 1, 1)


def _keep(stages: Sequence[Stage]) -> Optional[torch.Tensor]:
    rates = [s.dropout for s in stages]
    if not any(rates):
        return None
    ref = stages[0].weight
    return torch.tensor([1.0 - r for r in rates], device=ref.device, dtype=ref.dtype).view(-1, 1, 1)


def _runs(stages: Sequence[Stage]) -> list[tuple[int, int, Optional[nn.Module]]]:
    """Contiguous slices of the stack with one activation each, as fresh modules (never a member's
    own, whose forward hooks belong to that member's regularizers)."""
    kinds = [type(s.activation) if s.activation is not None else None for s in stages]
    runs: list[tuple[int, int, Optional[nn.Module]]] = []
    start = 0
    for i in range(1, len(kinds) + 1):
        if i == len(kinds) or kinds[i] is not kinds[start]:
            kind = kinds[start]
            runs.append((start, i, kind() if kind is not None else None))
            start = i
    return runs


def forward(stack: StackedMLP, x: torch.Tensor, training: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The reconstruction of x [K, B, D], and the hidden activations [K, B, width] (before dropout)
    the penalties read."""
    hidden: list[torch.Tensor] = []
    h = x
    for layer in stack.layers:
        if training and layer.keep is not None:
            noise = torch.rand(h.shape, device=h.device, dtype=h.dtype)
            h = h * (noise < layer.keep) / layer.keep
        if layer.bias is None:
            h = torch.bmm(h, layer.weight)
        else:
            bias = layer.bias if stack.bias_mask is None else layer.bias * stack.bias_mask
            h = torch.baddbmm(bias, h, layer.weight)
        h = _activate(h, layer.runs)
        if layer.hidden:
            hidden.append(h)
    return h, hidden


def _activate(h: torch.Tensor, runs: Sequence[tuple[int, int, Optional[nn.Module]]]) -> torch.Tensor:
    """Each run's activation on its slice (`forward` directly: these fresh modules have no hooks, and
    nn.Module.__call__ costs more than a tanh of this size)."""
    if len(runs) == 1:
        act = runs[0][2]
        return h if act is None else act.forward(h)
    return torch.cat([h[a:b] if act is None else act.forward(h[a:b]) for a, b, act in runs])


def member_views(stack: StackedMLP, buffer: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(every member's plain parameters, the matching views of a [K, P] buffer in plain layout), member by member."""
    params, views = [], []
    for row, slots in zip(buffer, stack.slots):
        for slot in slots:
            params.append(slot.param)
            views.append(slot.view(row))
    return params, views


def member_buffers(stack: StackedMLP, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One buffer of its own per member, in plain layout, with `tensors` (one per member slot, member
    by member) made views of it, their values and identities kept. A member's checkpoint then saves
    only its own buffer, and a [K, P] mirror is handed back with one copy per member."""
    buffers, i = [], 0
    for slots in stack.slots:
        own = torch.zeros(stack.flat.shape[1], device=stack.flat.device, dtype=stack.flat.dtype)
        for slot in slots:
            slot.view(own).copy_(tensors[i].detach())
            tensors[i].data = slot.view(own)
            i += 1
        buffers.append(own)
    return buffers


class WriteBack:
    """Copies [K, P] buffers in stacked layout into tensors of the members (parameters, optimizer state)
    that `member_buffers` made views of one buffer per member: one transposing copy per layer into a
    mirror in plain layout, then K row copies in one foreach call."""

    def __init__(self, stack: StackedMLP, source: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
        self.stack, self.source = stack, source
        self.mirror = torch.zeros_like(source)
        self.buffers, self.rows = member_buffers(stack, tensors), list(self.mirror.unbind(0))

    @torch.no_grad()
    def __call__(self) -> None:
        k = self.stack.k
        for layer in self.stack.layers:
            for part in (layer.weight, layer.bias):
                if part is not None:
                    start = part.data.storage_offset() - self.stack.flat.storage_offset()
                    n = part.shape[1] * part.shape[2]
                    source = self.source[:, start : start + n].view(k, part.shape[1], part.shape[2])
                    self.mirror[:, start : start + n].view(k, part.shape[2], part.shape[1]).copy_(
                        source.transpose(1, 2)
                    )
        torch._foreach_copy_(self.buffers, self.rows)
