"""The collapse guard: notice a run that has learned nothing and say what to try.

Two signs, both task-agnostic:

- **constant-prediction level**: every evaluation also scores the constant prediction (the task's
  ``constant_predictions``; by default the most common label of the evaluated data at every
  labelled position: the majority class, or ``O`` everywhere for NER; none for a regression or
  spans) with the task's own metric, as ``majority_<metric>``. A score that has not
  gone :data:`MARGIN` of the way from there to a perfect 1.0 means the model predicts (nearly)
  one label everywhere (on TREC's 50 labels a LoRA run that predicted 3 of them scored
  macro-F1 0.019 against the constant prediction's 0.007);
- **flat loss**: the mean logged training loss of the last half of the run is less than
  :data:`LOSS_DROP` below that of the first half, and no dev/test score shows learning (SST-2's
  loss plateaus within the first hundred steps of a run that reaches 0.80 accuracy).

The progress line marks such an evaluation, the final summary and ``metrics.json["warnings"]``
say it with what to try, and ``peft-hub report`` flags the run.
"""

from __future__ import annotations

#: A score that has covered less than this share of the way from the constant prediction's score
#: to 1.0 counts as "at its level".
MARGIN = 0.05
#: The mean logged loss of the last half of a run must be at least this share below the first half's.
LOSS_DROP = 0.05
#: Prefix of the constant prediction's score among an evaluation's metrics.
MAJORITY = "majority_"

ADVICE = ("Try more steps (--epochs, --max-steps), a faster head (training.head_learning_rate), "
          "a higher --lr, or --method full.")


def at_majority_level(scores: dict, metric: str) -> bool:
    """Whether ``scores[metric]`` is no better than its ``majority_`` counterpart."""
    value, floor = scores.get(metric), scores.get(MAJORITY + metric)
    return isinstance(value, (int, float)) and isinstance(floor, (int, float)) and value <= floor + MARGIN * (1 - floor)


def progress_note(scores: dict) -> str:
    """A short mark for a progress line whose scores sit at the constant prediction's level."""
    hits = [k for k in scores if not k.startswith(MAJORITY) and at_majority_level(scores, k)]
    return f"  << at the level of always predicting the most common label ({', '.join(hits)})" if hits else ""


def warnings(metrics: dict, metric: str) -> list[str]:
    """What a finished run's metrics say about collapse: one sentence each, with advice."""
    found: list[str] = []
    scored = [metrics[s] for s in ("dev", "test") if MAJORITY + metric in (metrics.get(s) or {})]
    learned = any(not at_majority_level(scores, metric) for scores in scored)
    for split in ("dev", "test"):
        scores = metrics.get(split) or {}
        if at_majority_level(scores, metric):
            found.append(
                f"{split} {metric} {scores[metric]:.4f} is at the level of always predicting the most common label "
                f"({scores[MAJORITY + metric]:.4f}): the model has learned (almost) nothing. {ADVICE}"
            )
            break  # dev and test say the same thing; once is enough
    losses = [e["loss"] for e in metrics.get("history", []) if "loss" in e]
    if not learned and len(losses) >= 4:  # halves, not single logs: one log's loss depends on its batches
        half = len(losses) // 2
        first, last = sum(losses[:half]) / half, sum(losses[-half:]) / half
        if last > (1 - LOSS_DROP) * first:
            found.append(
                f"the training loss barely moved (mean {first:.4f} over the first half of the logs, {last:.4f} over "
                f"the last half): the model is far from fitting the training data. {ADVICE}"
            )
    return found
