"""bf16 working copies of the weights that bf16 autocast would cast in every forward pass.

Under bf16 autocast each convolution and linear layer casts its fp32 weight and bias to bf16 in every
forward pass (a copy and an autograd node) and casts their gradients back in the backward pass: about
200 small operator calls per `small` step, whose cost is mostly per call. For the length of an epoch,
the parts of the model that compute under autocast (HandPoseModel.autocast_parts) hold bf16 copies of
their parameters instead: refreshed from the fp32 masters, which the optimizer keeps and updates, in
one call per step, and their gradients copied back to the masters in one call. The numbers are the same
bit for bit: autocast rounds the same fp32 weights to the same bf16 values, and within one autocast
region it casts a weight once and sums that cast's gradients in bf16 before casting them back, as the
gradient of a bf16 parameter is summed (tests/test_train.py).
"""

import contextlib

import torch
from torch import nn


class WorkingWeights:
    """While alive, every parameter of `parts` is replaced in its module by a bf16 copy; `restore` puts back the
    fp32 masters (the tensors the optimizer holds), which are all a checkpoint or an evaluation sees."""

    def __init__(self, parts: list[nn.Module]):
        self._slots = [
            (module, name, p) for part in parts for module in part.modules() for name, p in module._parameters.items() if p is not None
        ]
        self.masters = [p for _, _, p in self._slots]
        # empty_like keeps each master's strides (channels-last convolution weights), as autocast's casts do
        self.working = [nn.Parameter(torch.empty_like(p, dtype=torch.bfloat16), requires_grad=p.requires_grad) for p in self.masters]
        self._grads = [torch.empty_like(p) for p in self.masters]  # the masters' gradients, reused every step
        for (module, name, _), w in zip(self._slots, self.working):
            module._parameters[name] = w
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """The working copies from the masters (after every optimizer step)."""
        torch._foreach_copy_(self.working, self.masters)

    def gradients_to_masters(self) -> None:
        """After backward: each working copy's gradient becomes its master's (fp32), and the copy's is cleared."""
        have = [i for i, w in enumerate(self.working) if w.grad is not None]
        if have:
            torch._foreach_copy_([self._grads[i] for i in have], [self.working[i].grad for i in have])
        for i in have:
            self.masters[i].grad = self._grads[i]
            self.working[i].grad = None

    def restore(self) -> None:
        for module, name, master in self._slots:
            module._parameters[name] = master


class _Unchanged:
    """The step with autocast's own casts: nothing to copy."""

    def refresh(self) -> None:
        pass

    def gradients_to_masters(self) -> None:
        pass


@contextlib.contextmanager
def working_weights(model, bf16: bool):
    """bf16 working weights for `model`'s autocast parts while the block runs (`bf16`: the step computes in
    bf16 autocast), else nothing changes."""
    if not bf16:
        yield _Unchanged()
        return
    weights = WorkingWeights(model.autocast_parts())
    try:
        yield weights
    finally:
        weights.restore()
