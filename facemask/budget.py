"""Training to a time budget (``train.py --minutes N``): the schedule keeps its shape (its stages,
their epochs, where the learning rate steps down) and the steps per epoch are scaled so that
training and the final evaluation end within N minutes, from step times measured on this machine.

Pure arithmetic on measured seconds; :func:`plan_budget` is tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: Fewer steps than this per epoch is not a sensible run (an epoch would be mostly validation).
MIN_STEPS_PER_EPOCH = 5
#: The share of the time left for the epochs that their steps are planned to fill: step times on a
#: shared machine drift by several percent, and the budget is a limit, not a target.
MARGIN = 0.92


class BudgetTooSmall(ValueError):
    """The budget cannot fit the schedule at MIN_STEPS_PER_EPOCH; ``minimum_minutes`` would."""

    def __init__(self, message: str, minimum_minutes: float):
        super().__init__(message)
        self.minimum_minutes = minimum_minutes


@dataclass(frozen=True)
class StepTimes:
    """Measured seconds of one stage's layers: a train step, a val step, a checkpoint write, and the
    tracing of the step functions that each stage's start pays."""

    train_step: float
    val_step: float = 0.0
    checkpoint: float = 0.0
    trace: float = 0.0


@dataclass
class BudgetPlan:
    """What ``--minutes`` decided, and what it assumed (kept in the run's ``run.json``)."""

    minutes: float
    steps_per_epoch: int
    planned_train_s: float  # the remaining epochs at that many steps, with their val passes and checkpoints
    eval_reserve_s: float  # the final (and periodic) evaluations
    spent_s: float  # before training starts: start-up, data, model, the step-time probe (and earlier sessions)
    step_times: dict = field(default_factory=dict)  # layers -> StepTimes as a dict
    train_seconds_before: float = 0.0  # the run's epoch seconds (state.json) when this plan was made

    @property
    def planned_total_s(self) -> float:
        return self.spent_s + self.planned_train_s + self.eval_reserve_s

    def describe(self) -> str:
        steps = ", ".join(f"{layers} {t['train_step']:.2f} s" for layers, t in self.step_times.items())
        return (
            f"Time budget {self.minutes:g} min: measured train steps {steps}; {self.steps_per_epoch} steps per "
            f"epoch plans {self.spent_s / 60:.1f} min spent + {self.planned_train_s / 60:.1f} min training + "
            f"{self.eval_reserve_s / 60:.1f} min evaluation = {self.planned_total_s / 60:.1f} min"
        )

    def to_record(self) -> dict:
        return asdict(self)


def remaining_epochs(stages, start_epoch: int) -> list[tuple[str, int]]:
    """[(layers, epochs still to train)] of ``LAYERS:LR:EPOCH`` stages from ``start_epoch`` on."""
    out, previous_end = [], 0
    for layers, _lr, end in stages:
        begin = max(start_epoch, previous_end)
        out.append((layers, max(0, int(end) - begin)))
        previous_end = max(previous_end, int(end))
    return out


def plan_budget(
    minutes: float,
    stages,
    start_epoch: int,
    step_times: dict[str, StepTimes],
    val_steps: int,
    eval_reserve_s: float,
    spent_s: float,
) -> BudgetPlan:
    """The steps per epoch that make ``spent + epochs x (steps x train step + val + checkpoint) + a
    trace per stage + eval`` fit ``minutes`` (the epochs' part planned at MARGIN of the time left). Raises :class:`BudgetTooSmall` (with the minimum) when fewer than
    MIN_STEPS_PER_EPOCH would."""
    epochs = [(layers, n) for layers, n in remaining_epochs(stages, start_epoch) if n > 0]
    if not epochs:
        raise ValueError("the run has no epochs left to train: nothing to fit into a time budget")
    per_step = sum(n * step_times[layers].train_step for layers, n in epochs)
    fixed = sum(
        n * (val_steps * step_times[layers].val_step + step_times[layers].checkpoint) + step_times[layers].trace
        for layers, n in epochs
    )
    available = MARGIN * (minutes * 60.0 - spent_s - eval_reserve_s) - fixed
    steps = math.floor(available / per_step) if per_step > 0 else 0
    if steps < MIN_STEPS_PER_EPOCH:
        minimum = (spent_s + eval_reserve_s + (fixed + MIN_STEPS_PER_EPOCH * per_step) / MARGIN) / 60.0
        total = sum(n for _, n in epochs)
        raise BudgetTooSmall(
            f"{minutes:g} min is too short for {total} epochs here: {spent_s / 60:.1f} min are spent before "
            f"training and a train step takes {per_step / total:.2f} s, so the schedule would get "
            f"{max(steps, 0)} steps an epoch; the minimum is {math.ceil(minimum * 10) / 10:g} min "
            f"({MIN_STEPS_PER_EPOCH} steps an epoch), or fewer epochs",
            minimum,
        )
    return BudgetPlan(
        minutes,
        steps,
        steps * per_step + fixed,
        eval_reserve_s,
        spent_s,
        {layers: asdict(t) for layers, t in step_times.items()},
    )


def evaluation_seconds(
    val_step: float, batch_size: int, images: int, build_s: float, periodic_passes: int = 0
) -> float:
    """The final evaluation (building the inference model, then detect() on ``images``: about a val
    step's forward pass per image, plus pasting and metrics) and ``periodic_passes`` more of them."""
    per_image = 1.5 * val_step / max(1, batch_size) + 0.05
    return build_s + (1 + periodic_passes) * images * per_image
