"""The speed-ups change how much work a step does, never what it computes: the sparse MLM head gives
the dense head's loss and gradients; fast dropout keeps the drop probability and the scaling."""

from __future__ import annotations

import pytest
import torch

from peft_hub import registry
from peft_hub.fast import FastDropout, use_fast_dropout


def _mlm_batch(vocab: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (3, 11), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0  # one padded row
    labels = torch.where(torch.rand(input_ids.shape, generator=generator) < 0.3, input_ids, -100)
    labels[1, 7:] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_sparse_head_gives_the_dense_loss_and_gradients(tiny_model, method):
    objective = registry.get_objective("mlm")
    options = objective.Options()
    model, _ = objective.build_model(str(tiny_model))
    if method == "lora":
        m = registry.get_method("lora")
        model = m.apply(model, m.Options(), objective)
    model.eval()  # no dropout: both passes see the same network
    batch = _mlm_batch(model.config.vocab_size)
    dense_loss, dense_grads = _loss_and_grads(model, batch)

    sparse = objective.prepare_training(model, options)
    assert sparse is not None
    rewritten = sparse(batch)
    assert rewritten["labels"].shape == ((batch["labels"] != -100).sum(),)
    sparse_loss, sparse_grads = _loss_and_grads(model, rewritten)

    assert sparse_loss.item() == pytest.approx(dense_loss.item(), rel=1e-6)
    assert dense_grads.keys() == sparse_grads.keys() and dense_grads
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    # a batch without labels (prediction) runs the head everywhere
    assert model(**sparse({k: v for k, v in batch.items() if k != "labels"})).logits.shape[:2] == batch["input_ids"].shape
    assert objective.prepare_training(model, objective.Options(sparse_head=False)) is None


def test_fast_dropout_keeps_probability_and_scale():
    torch.manual_seed(0)
    x = torch.ones(400_000)
    for p in (0.1, 0.5):
        out = FastDropout(p)(x)
        assert (out == 0).float().mean().item() == pytest.approx(p, abs=0.003)
        assert out.mean().item() == pytest.approx(1.0, abs=0.01)  # kept values are scaled by 1 / (1 - p)
        assert out.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)])
    layer = FastDropout(0.3).eval()
    assert layer(x) is x
    torch.manual_seed(1)
    first = FastDropout(0.3)(x)
    torch.manual_seed(1)
    assert torch.equal(FastDropout(0.3)(x), first)  # masks come from the seeded global generator
    y = torch.randn(8, 5, requires_grad=True)
    out = FastDropout(0.5)(y)
    out.sum().backward()
    assert torch.equal(y.grad == 0, out == 0)  # the gradient flows through the kept elements only


def test_fast_dropout_swaps_every_dropout_and_keeps_weights(tiny_model):
    task, method = registry.get_task("ner"), registry.get_method("lora")
    model = method.apply(task.build_model(str(tiny_model), ["O", "B-X", "I-X"]), method.Options(), task)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = sum(type(m) is torch.nn.Dropout and m.p > 0 for m in model.modules())
    assert use_fast_dropout(model) == plain > 0
    assert not any(type(m) is torch.nn.Dropout and m.p > 0 for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


def test_length_buckets_cover_every_example_in_random_order():
    from peft_hub.batching import LengthBucketSampler

    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=3, window=10)
    order = list(sampler)
    assert sorted(order) == list(range(1000)) and len(sampler) == 1000
    batches = [order[i : i + 16] for i in range(0, 1000, 16)]
    padded = sum(16 * max(lengths[i] for i in b) for b in batches[:-1])
    assert 1 - sum(lengths[i] for b in batches[:-1] for i in b) / padded < 0.1  # random batches: ~50%
    assert len(batches[-1]) == 1000 % 16  # the incomplete batch comes last
    longest = [max(lengths[i] for i in b) for b in batches[:-1]]
    assert longest != sorted(longest, reverse=True)  # no long-to-short curriculum
    assert list(LengthBucketSampler(lengths, 16, seed=3, window=10)) == order  # resumable: same order
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_token_weighted_loss_and_gradient_accumulation(tiny_model, tmp_path):
    from peft_hub import recipes
    from peft_hub.train import FeatureDataset, build_trainer

    task = registry.get_task("ner")
    model = task.build_model(str(tiny_model), ["O", "B-X", "I-X"])
    features = [{"input_ids": [2] + [5] * n + [3], "attention_mask": [1] * (n + 2), "labels": [-100] + [1] * n + [-100]}
                for n in (1, 3, 5, 7)]
    from peft_hub.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    for loss, grad_accum, factor in (("token", 1, 1 / 2), ("token", 2, 1 / 4), ("batch", 2, 1 / 2)):
        training = recipes.TrainingConfig(batch_size=2, grad_accum=grad_accum, loss=loss)
        trainer = build_trainer(training, 1e-3, model, tokenizer, FeatureDataset(features), None, tmp_path,
                                collator=task.collator(tokenizer), quiet=True)
        for module in model.modules():  # no dropout: both forward passes compute the same
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        batch = task.collator(tokenizer)(features[:2])  # 1 + 3 labelled tokens; the average batch has 8
        model.eval()
        mean = model(**batch).loss
        assert trainer.compute_loss(model, batch).item() == pytest.approx(mean.item())  # evaluation: the plain mean
        model.train()
        assert trainer.compute_loss(model, batch).item() == pytest.approx(mean.item() * factor, rel=1e-5), loss
