"""Self-training (``peft-hub self-train``, or a recipe's ``self_train`` section): a teacher trained on the labelled data labels an
unlabelled pool; the confident pseudo-labels join the labelled data to train a student, which is
the next round's teacher (noisy student when the recipe also augments: dropout is always on).

    OUT/round-0   the teacher, on the labelled data alone (a normal adapt run)
    OUT/round-1   a student on labelled + round-0's confident pseudo-labels
    ...           every round is a normal run directory (peft-hub report OUT/round-*)
    OUT/pseudo-N.jsonl  the pseudo-labels round N trained on, with their confidence

An interrupted self-training continues at the round it was in: finished rounds are kept, and the
round that was training resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .text import read_unlabeled
from .errors import DataError, PeftHubError
from .rundir import Echo


def select(scored: list[tuple[Any, float, str | None]], threshold: float, balance: bool) -> list[tuple[Any, float]]:
    """The confident pseudo-labels, the most confident first; with ``balance``, each class kept to
    the count of the rarest class that has any."""
    kept = sorted(((e, c, k) for e, c, k in scored if c >= threshold), key=lambda x: -x[1])
    by_class = defaultdict(list)
    for example, confidence, kind in kept:
        by_class[kind].append((example, confidence))
    if balance and len(by_class) > 1 and None not in by_class:
        cap = min(len(v) for v in by_class.values())
        return sorted((x for v in by_class.values() for x in v[:cap]), key=lambda x: -x[1])
    return [(e, c) for e, c, _ in kept]


def run(resolved: Any, *, quiet: bool = False, echo: Echo = print) -> list[tuple[Path, dict]]:
    """Every round of a recipe whose ``self_train.unlabeled`` is set, in order; returns (run
    directory, metrics) of each."""
    from . import adapt, recipes
    from .tasks import Task

    config = resolved.recipe.self_train
    task = resolved.task
    if type(task).pseudo_label is Task.pseudo_label:  # said before any training
        raise PeftHubError(f"The {task.name!r} task cannot label examples for self-training (it has no pseudo_label).")
    out = Path(resolved.recipe.output.dir or f"runs/self-train-{task.name}")
    results, pseudo = [], None
    for round_ in range(config.rounds + 1):
        directory = out / f"round-{round_}"
        metrics_path = directory / "metrics.json"
        if (directory / "run.json").exists():
            echo(f"== round {round_}: finished earlier ({directory}) ==")
            results.append((directory, json.loads(metrics_path.read_text(encoding="utf-8"))))
        else:
            if round_ > 0:
                pseudo = _pseudo_labels(results[-1][0], config, task, resolved.task_options, out / f"pseudo-{round_}.jsonl", echo)
            echo(f"== round {round_}: {'teacher on the labelled data' if round_ == 0 else f'student with {len(pseudo):,} pseudo-labels'} ==")
            data = resolved.to_dict()
            data["self_train"] = {}  # each round is a plain adapt run
            if round_ and config.student_epochs is not None:
                data["training"]["epochs"] = config.student_epochs
            data["output"] = {"dir": str(directory), "overwrite": resolved.recipe.output.overwrite,
                              "resume": (directory / "checkpoints").is_dir()}
            stage = recipes.validate(data, f"self-training round {round_}")
            trained = adapt.run(stage, quiet=quiet, echo=echo, extra_train=[e for e, _ in pseudo] if round_ else None)
            results.append((trained.directory, trained.metrics))
    return results


def _pseudo_labels(teacher_dir: Path, config: Any, task: Any, options: Any, record: Path, echo: Echo) -> list:
    from .finished import load_run

    teacher = load_run(teacher_dir)
    pool = read_unlabeled(config.unlabeled, task, teacher.labels, options, text_field=config.text_field,
                          skip=config.skip_unlabeled, limit=config.max_unlabeled)
    scored = task.pseudo_label(teacher.model, teacher.tokenizer, pool, teacher.labels, options)
    kept = select(scored, config.threshold, config.balance)
    if not kept:  # a student would only repeat its teacher
        best = max((c for _, c, _ in scored), default=0.0)
        raise DataError(f"No pseudo-label from {teacher_dir} reaches confidence {config.threshold:g} (the most confident of "
                        f"{len(pool):,} pool examples: {best:.3f}). Lower self_train.threshold (e.g. "
                        f"self_train.threshold={max(best - 0.05, 0):.2f}), or train a stronger round 0 (more epochs or "
                        "labels). Finished rounds are kept.")
    echo(f"Pseudo-labels from {teacher_dir}: {len(kept):,} of {len(pool):,} pool examples at confidence >= {config.threshold:g}"
         + (" (classes balanced)" if config.balance else ""))
    record.parent.mkdir(parents=True, exist_ok=True)
    with record.open("w", encoding="utf-8") as stream:
        for example, confidence in kept:
            stream.write(json.dumps({"confidence": round(confidence, 4), **dataclasses.asdict(example)}, ensure_ascii=False) + "\n")
    return kept
