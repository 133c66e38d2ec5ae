"""sadkit's own Adam and its step schedule (torch's ``Adam`` and ``MultiStepLR``, without their start-up cost).

Why not ``torch.optim``: in torch 2.13 ``Optimizer.add_param_group`` and ``Optimizer.step`` are wrapped by
``torch._disable_dynamo``, which imports ``torch._dynamo`` (1.3-2 s) the first time an optimiser is built,
in every process, whether or not anything is compiled. :class:`Adam` is the same algorithm written as the
same elementwise tensor operations, in the same order, as torch's single-tensor Adam
(``torch/optim/adam.py``, ``_single_tensor_adam``: L2 weight decay added to the gradient, optional
AMSGrad): on the CPU it gives bit-identical parameters to ``torch.optim.Adam(foreach=False)``, which is
what torch runs there by default (``tests/core/test_optim.py`` trains both ways and compares).

Per-model hyperparameters: ``lr``, ``weight_decay``, ``betas`` and ``eps`` may each be one value per
model, a 1-D sequence or tensor of length S, for parameters that stack S models along their first
dimension (S models of one architecture trained as one grouped network). Each model then gets its own
learning rate and its own moment estimates, and the update of model ``s`` is bit-identical (on the CPU)
to training it alone with the scalar values of index ``s``: the per-model coefficients are computed on
the host in Python floats, exactly as the scalar path computes them, and broadcast along the leading
dimension with operations that round like the scalar ones.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import torch

from .errors import InvalidInputError

#: a hyperparameter: one value for every model, or one value per stacked model
Hyper = float | Sequence[float] | torch.Tensor


def _values(value: Hyper, name: str) -> float | tuple[float, ...]:
    """A Python float, or a tuple of floats for a per-model value."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return float(value)
        if value.dim() != 1:
            raise InvalidInputError(f"{name} must be a number or one value per model, got shape {tuple(value.shape)}")
        return tuple(float(v) for v in value.tolist())
    if isinstance(value, (int, float)):
        return float(value)
    values = tuple(float(v) for v in value)
    if not values:
        raise InvalidInputError(f"{name} must be a number or one value per model, got an empty sequence")
    return values


def _each(value: float | tuple[float, ...], n: int) -> tuple[float, ...]:
    return value if isinstance(value, tuple) else (value,) * n


class Adam:
    """Adam (Kingma & Ba), with L2 weight decay added to the gradient and optional AMSGrad.

    Args:
        params: the tensors to optimise (``net.parameters()``).
        lr: learning rate; per model: one value per stacked model.
        betas: the decay rates of the first and second moment estimates; each may be per model.
        eps: added to the denominator; per model allowed.
        weight_decay: L2 penalty, added to the gradient (``grad + weight_decay * param``); per model allowed.
        amsgrad: normalise by the running maximum of the second moment (Reddi et al.).

    With any per-model value, every parameter must have the number of models as its first dimension;
    the other values are repeated for every model.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: Hyper = 1e-3,
        betas: tuple[Hyper, Hyper] = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        amsgrad: bool = False,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        hypers = {
            "lr": _values(lr, "lr"),
            "beta1": _values(betas[0], "betas[0]"),
            "beta2": _values(betas[1], "betas[1]"),
            "eps": _values(eps, "eps"),
            "weight_decay": _values(weight_decay, "weight_decay"),
        }
        sizes = {len(v) for v in hypers.values() if isinstance(v, tuple)}
        if len(sizes) > 1:
            raise InvalidInputError(f"per-model hyperparameters of different lengths: {sorted(sizes)}")
        self.n_models: int | None = sizes.pop() if sizes else None
        for name, value in hypers.items():
            for v in _each(value, self.n_models or 1):
                if v < 0 or (name.startswith("beta") and v >= 1):
                    raise InvalidInputError(f"invalid Adam {name}: {v}")
        if self.n_models is not None:
            for p in self.params:
                if p.dim() == 0 or p.shape[0] != self.n_models:
                    raise InvalidInputError(
                        f"per-model hyperparameters for {self.n_models} models need parameters stacked along their"
                        f" first dimension; got a parameter of shape {tuple(p.shape)}"
                    )
        self._lr = hypers["lr"]
        self.beta1, self.beta2 = hypers["beta1"], hypers["beta2"]
        self.eps, self.weight_decay = hypers["eps"], hypers["weight_decay"]
        self.amsgrad = bool(amsgrad)
        #: the number of steps taken (every parameter steps together)
        self.steps = 0
        #: per parameter: ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq`` with AMSGrad), created on its first step
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._coefficients: dict[tuple[torch.device, int, torch.dtype], dict[str, torch.Tensor]] = {}

    # ------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float | tuple[float, ...]:
        """The current learning rate (a tuple of one value per model for per-model rates)."""
        return self._lr

    @lr.setter
    def lr(self, value: Hyper) -> None:
        value = _values(value, "lr")
        if isinstance(value, tuple) != (self.n_models is not None) or (
            isinstance(value, tuple) and len(value) != self.n_models
        ):
            raise InvalidInputError(f"lr must keep its form: {self._lr!r} cannot become {value!r}")
        self._lr = value

    # ------------------------------------------------------------------ steps
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``None``, as torch does by default, or zeros)."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        self.steps += 1
        if self.n_models is None:
            self._scalar_step()
        else:
            self._per_model_step()

    def _moments(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:
            state = {
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
            if self.amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            self.state[p] = state
        return state

    def _scalar_step(self) -> None:
        # torch/optim/adam.py, _single_tensor_adam (capturable=False, differentiable=False), line for line
        lr, beta1, beta2, eps, weight_decay = self._lr, self.beta1, self.beta2, self.eps, self.weight_decay
        step = float(self.steps)  # torch keeps the step in a float32 tensor and reads it with .item()
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        for param, grad, state in self._with_grads():
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = self._denominator(state, bias_correction2_sqrt, eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)

    def _per_model_step(self) -> None:
        # The scalar step with one coefficient per model, broadcast along the first dimension. Each
        # operation is chosen to round exactly as its scalar form: grad.add(p, alpha=w) as
        # addcmul(grad, p, w); addcmul_(g, g, value=v) as addcmul_(g * v, g); addcdiv_(a, d, value=v)
        # as addcdiv_(a * v, d). The coefficients come from the same Python float arithmetic.
        n = self.n_models
        step = float(self.steps)
        beta1, beta2 = _each(self.beta1, n), _each(self.beta2, n)
        step_size = [lr / (1 - b1**step) for lr, b1 in zip(_each(self._lr, n), beta1, strict=True)]
        per_step = [[-s for s in step_size], [(1 - b2**step) ** 0.5 for b2 in beta2]]
        decays = _each(self.weight_decay, n)
        this_step: dict[tuple[torch.device, int, torch.dtype], list[torch.Tensor]] = {}
        for param, grad, state in self._with_grads():
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            k = self._constants(param)
            key = (param.device, param.dim(), param.dtype)
            if key not in this_step:
                this_step[key] = self._broadcast(per_step, param)
            neg_step_size, bias_correction2_sqrt = this_step[key]
            if any(d != 0 for d in decays):
                grad = torch.addcmul(grad, param, k["weight_decay"])
            exp_avg.lerp_(grad, k["one_minus_beta1"])
            exp_avg_sq.mul_(k["beta2"]).addcmul_(grad * k["one_minus_beta2"], grad)
            denom = self._denominator(state, bias_correction2_sqrt, k["eps"])
            param.addcdiv_(exp_avg * neg_step_size, denom)

    def _with_grads(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
        """``(param, grad, moments)`` of every parameter that has a gradient."""
        for param in self.params:
            if param.grad is not None:
                yield param, param.grad, self._moments(param)

    def _denominator(
        self, state: dict[str, torch.Tensor], bias_correction2_sqrt: float | torch.Tensor, eps: float | torch.Tensor
    ) -> torch.Tensor:
        """``sqrt(v) / sqrt(1 - beta2 ** t) + eps``, v the second moment (its running maximum with AMSGrad)."""
        second = state["exp_avg_sq"]
        if self.amsgrad:
            torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        return (second.sqrt() / bias_correction2_sqrt).add_(eps)

    def _broadcast(self, rows: list[list[float]], param: torch.Tensor) -> list[torch.Tensor]:
        """Per-model values as tensors of shape ``(S, 1, ..., 1)`` on ``param``'s device and dtype (one copy)."""
        shape = (len(rows), self.n_models) + (1,) * (param.dim() - 1)
        host = torch.tensor(rows, dtype=param.dtype).view(shape)
        return list(host.to(param.device, non_blocking=True).unbind(0))

    def _constants(self, param: torch.Tensor) -> dict[str, torch.Tensor]:
        """The coefficients that do not change from step to step, per device and rank (built once)."""
        found = self._coefficients.get(key := (param.device, param.dim(), param.dtype))
        if found is None:
            n = self.n_models
            names = ("one_minus_beta1", "beta2", "one_minus_beta2", "eps", "weight_decay")
            rows = [
                [1 - b for b in _each(self.beta1, n)],
                list(_each(self.beta2, n)),
                [1 - b for b in _each(self.beta2, n)],
                list(_each(self.eps, n)),
                list(_each(self.weight_decay, n)),
            ]
            found = dict(zip(names, self._broadcast(rows, param), strict=True))
            self._coefficients[key] = found
        return found


class StepSchedule:
    """The learning rate of each epoch: the initial rate times ``gamma`` for every milestone passed.

    torch's ``MultiStepLR``, computed the same way (the rate is multiplied by ``gamma ** count`` as each
    milestone is reached, so the floats are the same). Call :meth:`step` once per epoch: after the epoch
    as torch documents, or before it as the Deep SAD reference code does (each drop then comes one epoch
    early). Per-model rates are scaled alike.

    Args:
        optimizer: an :class:`Adam` (its ``lr`` is the initial rate).
        milestones: epoch indices at which the rate drops (a repeated milestone drops it repeatedly).
        gamma: the factor of each drop.
    """

    def __init__(self, optimizer: Adam, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self.optimizer = optimizer
        self.initial_lr = optimizer.lr
        self.drops = sorted(Counter(int(m) for m in milestones).items())
        self.gamma = float(gamma)
        self.last_epoch = 0
        self.optimizer.lr = self.lr_at(0)  # as torch: a milestone 0 drops the rate before the first epoch

    def lr_at(self, epoch: int) -> float | tuple[float, ...]:
        """The rate after ``epoch`` steps."""
        passed = bisect.bisect_right([m for m, _ in self.drops], epoch)

        def scaled(lr: float) -> float:
            for _, count in self.drops[:passed]:
                lr = lr * self.gamma**count
            return lr

        lr = self.initial_lr
        return tuple(scaled(v) for v in lr) if isinstance(lr, tuple) else scaled(lr)

    def step(self) -> None:
        """Advance one epoch and set the optimizer's rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
