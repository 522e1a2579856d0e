"""Vectorized sweeps: train K compatible jobs as one stacked model in one process.

    from aecli.vectorized import TrainRequest, bytes_per_member, fit_group, stack_key

    key, reason = stack_key(request)       # equal non-None keys: may train as one group
    results = fit_group([r1, r2, ...])     # what fit(r1...), fit(r2...), ... would return, with their side effects
    bytes_per_member(request)              # memory one more member costs a group

A TrainRequest holds exactly fit's arguments. Members may differ in seed, data values, activation,
bias on/off, learning rate (and its schedule), betas, eps, weight decay, momentum, regularizer
weights (weight_l2, activation_l1/l2), mask rate and dropout rates. Without dropout or masking
noise a member follows the job run alone up to float reordering; with them, each site's noise is
one draw of torch's global generator for all members, so members are statistically, not
bitwise, the job run alone (stacked_model.py).

Modules, one concern each: members.py (a job's request and the bookkeeping fit keeps for it),
stacked_model.py (the stacked MLP: parameters, forward, write-back), stacked_terms.py (loss terms
and penalties, batched evaluation), stacked_optim.py (Adam and SGD over the stack), group.py (the
members still training, one epoch of steps), engine.py (stack_key, fit_group, bytes_per_member).
"""

from aecli.vectorized.engine import bytes_per_member, fit_group, stack_key
from aecli.vectorized.members import TrainRequest

__all__ = ["TrainRequest", "bytes_per_member", "fit_group", "stack_key"]
