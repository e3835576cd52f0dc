"""Generation: summarization and translation, on an encoder warm-started into an encoder-decoder.

No sequence-to-sequence checkpoint is needed: an encoder's checkpoint becomes both halves of a
transformers ``EncoderDecoderModel`` (BERT2BERT: Rothe, Narayan and Severyn 2020). The decoder's
cross-attention does not exist in an encoder checkpoint: it starts random, so it is part of the
task's head (it trains with every method, in full, and is saved with the run), together with the
language-model head's transform when the checkpoint lacks it. A base that already is an
encoder-decoder (T5, BART, Marian, or a merged generation run) is used as it is.

Training learns the reference with teacher forcing (cross-entropy per target token); evaluation
generates (beam search: ``num_beams``, ``max_new_tokens``, ``length_penalty``) and scores the texts:
ROUGE-1/2/L (the ``rouge-score`` package, against every reference, the best one counting) for
``summarize``; sacreBLEU and chrF (the ``sacrebleu`` package) for ``translate``. Generation on a CPU
is slow: during training only the first ``eval_examples`` of dev are scored; dev and test are
scored whole at the end, with a progress bar.

Data:

- ``summarize``: JSON Lines split files (``source`` and ``target``: a text or a list: a list of
  sentences for the source, of references for the target, as SciTLDR stores them), or TSV with a
  source and a target column.
- ``translate``: line-aligned plain text split files named by split and language (``train.de``,
  ``train.en``, ``val.de.gz`` ...); ``source_lang`` and ``target_lang`` choose the pair.

The outputs are written with the base's tokenizer, or with one of their own (``target_tokenizer``:
a byte-level BPE vocabulary learned from the training targets, or a tokenizer directory) for a
language the base cannot write: English -> German on an uncased English encoder. The decoder's
embeddings and output layer then start fresh for that vocabulary (part of the head), and the
tokenizer is saved with the run (``tokenizer/target/``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import peft_hub
from peft_hub import (DataError, ModelError, load_pretrained, load_tokenizer, option, read_jsonl, read_lines, set_target_tokenizer,
                      special_tokens, split_files, target_tokenizer)

PEFT_HUB_API = 2  # the plugin API this module is written for (peft_hub.PLUGIN_API)

log = logging.getLogger("peft_hub.seq2seq")

@dataclass
class Seq2SeqExample:
    source: str
    #: one or more references (SciTLDR's dev and test papers have several)
    targets: list[str]
    line: int = 0


@dataclass
class Seq2SeqOptions(peft_hub.Options):
    decoder: Literal["warm", "shared", "random"] = option(
        "warm", "warm: an encoder base becomes encoder and decoder (BERT2BERT); shared: warm, and the decoder's "
        "weights that the encoder also has (self-attention, feed-forward, embeddings) are the encoder's own, one copy "
        "for both halves; random: the same shape with every weight random (a baseline). A base that is an "
        "encoder-decoder is always used as it is.")
    decoder_layers: int = option(0, "Layers of the decoder (0: as many as the encoder); a warm one takes the "
                                 "checkpoint's first ones.", low=0)
    random_seed: int = option(0, "Seed of the random weights of decoder=random (the same base on every reload).")
    target_tokenizer: str = option(
        "", "The tokenizer of the outputs. Empty: the base model's. 'train': a byte-level BPE vocabulary learned from "
        "the training targets (for a language the base's vocabulary cannot write, e.g. German on an uncased English "
        "model). Or a tokenizer directory. Either is saved with the run; the decoder's embeddings and output layer "
        "start fresh for it and train in full.")
    target_vocab_size: int = option(8000, "target_tokenizer=train: the most tokens of the learned vocabulary (the 256 "
                                    "bytes, then the most frequent merges).", low=512)
    max_source_length: int = option(256, "Most sub-tokens of a source; longer ones are cut (and counted).", low=8)
    max_target_length: int = option(64, "Most sub-tokens of a training target; longer ones are cut (and counted).", low=2)
    max_new_tokens: int = option(64, "Most tokens generated per text.", low=1)
    num_beams: int = option(4, "Beam width of generation (1: greedy).", low=1)
    length_penalty: float = option(1.0, "Beam search's length penalty (> 1: longer outputs).")
    no_repeat_ngram_size: int = option(0, "Never repeat an n-gram of this size in an output (0: off).", low=0)
    eval_examples: int = option(200, "Dev examples generated at each evaluation during training (dev and test are "
                                "scored whole at the end); 0: all.", low=0)
    batch_size: int = option(32, "Texts per generation pass.", low=1)
    source_field: str = option("source", "JSONL key (or TSV column header) of the source text.")
    target_field: str = option("target", "JSONL key (or TSV column header) of the reference(s).")
    source_lang: str = option("de", "translate: the language suffix of the source files (train.de).")
    target_lang: str = option("en", "translate: the language suffix of the target files (train.en).")
    lowercase: bool | None = option(None, "translate: score BLEU and chrF lowercased (sacreBLEU -lc). Unset: when the "
                                    "tokenizer lowercases (an uncased model cannot write capitals).")


class Seq2SeqTask(peft_hub.Task):
    """What summarization and translation share: the model, encoding, generation."""

    Options = Seq2SeqOptions
    peft_task_type = "SEQ_2_SEQ_LM"
    encoder_decoder = True
    # never quantized (transformers reads these as patterns of module names): the decoder's fresh
    # cross-attention and its language-model head, whatever the family calls it
    keep_full_precision = [r".*\.crossattention\..*", r"cls\..*", r"lm_head(\..*)?", r"generator_.*"]
    auto_class = "AutoModelForSeq2SeqLM"
    display = "generated"

    def head_modules(self, model):
        """A warm start's fresh parts: every decoder layer's cross-attention and the LM head's
        transform if the checkpoint had none. A base that already is an encoder-decoder: none."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        return list(getattr(inner, "peft_hub_fresh", None) or [])

    def teacher_refusal(self, options):
        return "a generation task learns from reference texts; it has no per-label scores for a teacher's soft targets"

    # -- the model --------------------------------------------------------------------------------

    def prepare_tokenizer(self, tokenizer, options, train=None):
        """Attach the tokenizer of the outputs that ``target_tokenizer`` names (learned from ``train``'s targets)."""
        if not options.target_tokenizer:
            return
        if options.target_tokenizer == "train":
            if not train:
                raise DataError("task.options.target_tokenizer=train learns the vocabulary from the training targets: "
                                "give training data.")
            target = learn_tokenizer([t for e in train for t in e.targets], options.target_vocab_size)
            log.warning("Target tokenizer: a byte-level BPE vocabulary of %d tokens learned from %d training targets",
                        len(target), sum(len(e.targets) for e in train))
        else:
            if not Path(options.target_tokenizer).is_dir():
                raise DataError(f"task.options.target_tokenizer={options.target_tokenizer!r} is not a directory. Give a "
                                "tokenizer directory (tokenizer.json), 'train' to learn one from the targets, or nothing.")
            target = load_tokenizer(options.target_tokenizer)
        set_target_tokenizer(tokenizer, target)

    def build_model(self, model_path, labels, options=None, tokenizer=None, **load_kwargs):
        from transformers import AutoConfig, AutoModelForSeq2SeqLM

        options = options or self.Options()
        target = target_tokenizer(tokenizer) if tokenizer is not None else None
        vocab = len(target) if target is not None and target is not tokenizer else None  # the outputs' own vocabulary
        try:
            config = AutoConfig.from_pretrained(model_path, trust_remote_code=load_kwargs.get("trust_remote_code", False))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_path}: no model configuration could be read ({str(exc)[:200]}).") from None
        if getattr(config, "is_encoder_decoder", False):
            model = load_pretrained(AutoModelForSeq2SeqLM, model_path, **_without(load_kwargs, "ignore_mismatched_sizes"))
            own = target_tokenizer(load_tokenizer(model_path)) if vocab is not None else None
            if own is not None and own.get_vocab() != target.get_vocab():  # (not only its size: the same ids)
                raise ModelError(f"{model_path} is an encoder-decoder that writes with a vocabulary of its own ({len(own)} "
                                 f"tokens); the run's target tokenizer ({vocab} tokens) is another. A target tokenizer "
                                 "(task.options.target_tokenizer) is for a decoder warm-started from an encoder: leave it "
                                 "unset for a sequence-to-sequence base.")
            model.peft_hub_fresh = None
            return model
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise ModelError(f"{model_path} is a {config.model_type} model, which transformers cannot run as a decoder "
                             "(the family has no causal-LM class to take cross-attention). Warm-start from a BERT, "
                             "RoBERTa, XLM-R or ELECTRA checkpoint, or give a sequence-to-sequence base (T5, BART).")
        model = self._encoder_decoder(model_path, config, options, load_kwargs, vocab)
        _set_special_tokens(model, model_path, target)
        return model

    def _encoder_decoder(self, model_path: str, config: Any, options: Any, load_kwargs: dict, vocab: int | None) -> Any:
        import warnings

        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, EncoderDecoderConfig, EncoderDecoderModel

        # transformers warns at every step that it shifts the labels itself since v4.12: as intended here
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way", category=FutureWarning)
        shape: dict[str, Any] = {"is_decoder": True, "add_cross_attention": True}
        if options.decoder_layers:
            layers = getattr(config, "num_hidden_layers", None)
            if options.decoder != "random" and isinstance(layers, int) and options.decoder_layers > layers:
                raise ModelError(f"task.options.decoder_layers={options.decoder_layers}, but {model_path} has {layers} layers "
                                 f"to warm-start a decoder from. Give at most {layers}, or decoder=random.")
            shape["num_hidden_layers"] = options.decoder_layers
        if vocab is not None:  # a vocabulary of the outputs' own: fresh embeddings and output layer, not tied
            shape.update(vocab_size=vocab, tie_word_embeddings=False)
        if options.decoder == "random":
            decoder = AutoConfig.from_pretrained(model_path, **shape)
            both = EncoderDecoderConfig.from_encoder_decoder_configs(config, decoder)
            with torch.random.fork_rng():
                torch.manual_seed(options.random_seed)
                model = EncoderDecoderModel(config=both)
            model.peft_hub_fresh = None  # nothing is pretrained: no part is fresh *beside* the rest
            return model
        kwargs = _without(load_kwargs, "ignore_mismatched_sizes")
        if options.decoder == "shared" and kwargs.get("quantization_config") is not None:
            raise ModelError("task.options.decoder=shared gives both halves one copy of their weights, which an 8-bit/"
                             "4-bit base cannot share: use decoder=warm, or model.quantization=none.")
        try:
            encoder = load_pretrained(AutoModel, model_path, **kwargs)
            decoder, info = load_pretrained(AutoModelForCausalLM, model_path, **shape, output_loading_info=True,
                                            ignore_mismatched_sizes=vocab is not None, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{model_path} cannot be warm-started into an encoder-decoder: {str(exc)[:300]}") from None
        fresh = set(info["missing_keys"]) | {key[0] for key in info.get("mismatched_keys", [])}
        if options.decoder == "shared":
            _share(encoder, decoder)
        model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
        model.peft_hub_fresh = tuple(f"decoder.{name}" for name in _fresh_modules(decoder, fresh))
        return model

    def collator(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)

    # -- data -------------------------------------------------------------------------------------

    def labels(self, splits, data=None):
        return []

    def encode(self, examples, tokenizer, labels, options):
        if not examples:  # (transformers' tokenizer fails on an empty batch)
            return []
        target = target_tokenizer(tokenizer)
        _check_writable(target, [t for e in examples[:500] for t in e.targets[:1]])
        source_cap = min(options.max_source_length, tokenizer.model_max_length)
        sources = tokenizer([e.source for e in examples], truncation=True, max_length=source_cap)
        features, cut_sources, cut_targets = [], 0, 0
        start = len(special_tokens(target)[0])  # the decoder is given these first: not labels
        for i, example in enumerate(examples):
            cut_sources += len(sources["input_ids"][i]) >= source_cap
            for text in example.targets:
                ids = _target_ids(target, text, options.max_target_length, start)
                cut_targets += ids[1]
                features.append({"input_ids": sources["input_ids"][i], "attention_mask": sources["attention_mask"][i],
                                 "labels": ids[0]})
        if cut_sources or cut_targets:
            log.warning("%d of %d source(s) cut to max_source_length=%d sub-tokens, %d target(s) to max_target_length=%d",
                        cut_sources, len(examples), source_cap, cut_targets, options.max_target_length)
        return features

    def sample_data(self):
        return Path(__file__).parent / "samples" / self.name

    # -- generation and scoring -------------------------------------------------------------------

    def generate(self, model, tokenizer, sources: list[str], options: Any, quiet: bool = True) -> list[str]:
        """The generated text of each source, in order (beam search as the options say)."""
        import torch

        if not sources:
            return []
        device = next(model.parameters()).device
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # similar lengths share a batch
        chunks = [order[b : b + options.batch_size] for b in range(0, len(order), options.batch_size)]
        out: list[str] = [""] * len(sources)
        model.eval()
        for chunk in peft_hub.track(chunks, "Generating", total=len(chunks), quiet=quiet, unit="batch"):
            batch = tokenizer([sources[i] for i in chunk], truncation=True, padding=True, return_tensors="pt",
                              max_length=min(options.max_source_length, tokenizer.model_max_length))
            with torch.no_grad():
                ids = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                                     max_new_tokens=options.max_new_tokens, num_beams=options.num_beams,
                                     length_penalty=options.length_penalty, early_stopping=options.num_beams > 1,
                                     no_repeat_ngram_size=options.no_repeat_ngram_size, do_sample=False)
            for i, text in zip(chunk, target_tokenizer(tokenizer).batch_decode(ids, skip_special_tokens=True)):
                out[i] = text.strip()
        return out

    def evaluate_split(self, model, tokenizer, features, examples, labels, options):
        generated = self.generate(model, tokenizer, [e.source for e in examples], options, quiet=False)
        scores = self.score(generated, [e.targets for e in examples], tokenizer, options)
        target = target_tokenizer(tokenizer)
        scores["generated_tokens"] = round(sum(len(target(t, add_special_tokens=False)["input_ids"]) for t in generated)
                                           / max(1, len(generated)), 2)
        scores["examples"] = float(len(examples))
        return scores

    def evaluation_cap(self, options):
        return options.eval_examples or None

    def score(self, generated: list[str], references: list[list[str]], tokenizer: Any, options: Any) -> dict[str, float]:
        raise NotImplementedError

    def predict(self, model, tokenizer, inputs, labels, options):
        texts = self.generate(model, tokenizer, [i["text"] for i in inputs], options)
        return [{**given, "generated": text} for given, text in zip(inputs, texts)]

    def format_prediction(self, inputs, prediction):
        return prediction["generated"]


class Summarize(Seq2SeqTask):
    name = "summarize"
    description = "Summarization (a text -> a short one), generated by an encoder-decoder; ROUGE-1/2/L."
    primary_metric = "rougeL"
    summary_metrics = ("rouge1", "rouge2", "rougeL")

    def sample_inputs(self):
        return [{"text": "we train a small model on few labels . it learns the task well ."},
                {"text": "the new method is fast . it uses less memory than the old one ."}]

    def read_data(self, data, options):
        splits = {}
        for split, path in split_files(data).items():
            rows = _read_table(path, data.encoding, options)
            if not rows:
                raise DataError(f"{path}: the {split} split holds no examples. Remove the file or fill it.")
            splits[split] = rows
        return splits

    def score(self, generated, references, tokenizer, options):
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
        for text, refs in zip(generated, references):
            best = scorer.score_multi(refs, text)  # the reference that scores best, per measure
            for key in totals:
                totals[key] += best[key].fmeasure
        return {key: round(value / max(1, len(generated)), 4) for key, value in totals.items()}


class Translate(Seq2SeqTask):
    name = "translate"
    description = "Translation (source_lang -> target_lang), generated by an encoder-decoder; sacreBLEU and chrF."
    primary_metric = "bleu"
    summary_metrics = ("bleu", "chrf")

    def sample_inputs(self):
        return [{"text": "ein hund läuft im park ."}, {"text": "eine frau liest ein buch ."}]

    def read_data(self, data, options):
        return _read_parallel(data, options.source_lang, options.target_lang)

    def score(self, generated, references, tokenizer, options):
        from sacrebleu.metrics import BLEU, CHRF

        lowercase = options.lowercase if options.lowercase is not None else _uncased(target_tokenizer(tokenizer))
        width = max(len(r) for r in references)
        # sacreBLEU takes one stream per reference position; a missing reference is None
        streams = [[r[k] if k < len(r) else None for r in references] for k in range(width)]
        bleu = BLEU(lowercase=lowercase).corpus_score(generated, streams)
        chrf = CHRF(lowercase=lowercase).corpus_score(generated, streams)
        return {"bleu": round(bleu.score, 2), "chrf": round(chrf.score, 2), "lowercased": float(lowercase)}

    def score_notes(self, scores):
        return ["BLEU and chrF lowercased (sacreBLEU -lc): the model's vocabulary is uncased"] if scores.get("lowercased") else []


# -- helpers -----------------------------------------------------------------------------------------

def _without(kwargs: dict, *keys: str) -> dict:
    return {k: v for k, v in kwargs.items() if k not in keys}


def _fresh_modules(decoder: Any, missing: set[str]) -> list[str]:
    """The modules of a warm-started decoder that the checkpoint had no weights for (its
    cross-attention; the language-model head's transform in a checkpoint without one), each as
    the largest module whose parameters are all new. A new parameter of a module that also holds
    loaded or tied ones (the output bias beside the tied embeddings) starts at zero and stays
    out: it is the same on every load."""
    new = {name for name, _ in decoder.named_parameters(remove_duplicate=False) if name in missing}
    owners = set()
    for name in new:
        owner = name.rsplit(".", 1)[0]
        while "." in owner:
            parent = owner.rsplit(".", 1)[0]
            if not all(f"{parent}.{p}" in new for p, _ in decoder.get_submodule(parent).named_parameters(remove_duplicate=False)):
                break
            owner = parent
        if all(f"{owner}.{p}" in new for p, _ in decoder.get_submodule(owner).named_parameters(remove_duplicate=False)):
            owners.add(owner)
    return sorted(o for o in owners if not any(o.startswith(other + ".") for other in owners))


def _share(encoder: Any, decoder: Any) -> None:
    """Make every weight of the decoder's base that the encoder has too (by name and shape: the
    embeddings, each layer's self-attention and feed-forward) the encoder's own parameter. The
    cross-attention, which only the decoder has, stays its own; an output layer tied to the
    decoder's embeddings follows them."""
    base, own = decoder.base_model, dict(encoder.named_parameters())
    output, embeddings = decoder.get_output_embeddings(), decoder.get_input_embeddings()
    tied = output is not None and output.weight is embeddings.weight
    for name, parameter in list(base.named_parameters()):
        twin = own.get(name)
        if twin is not None and twin.shape == parameter.shape:
            owner, _, attribute = name.rpartition(".")
            setattr(base.get_submodule(owner), attribute, twin)
    if tied:
        output.weight = decoder.get_input_embeddings().weight


def learn_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (RoBERTa's kind: the ``tokenizers`` library) learned from ``texts``,
    as a transformers fast tokenizer: it writes any text back exactly (case, accents, any script),
    and learning it is deterministic (its alphabet is the 256 bytes, so every process of a run and
    every resumed run learns the same vocabulary; a WordPiece trainer breaks ties differently on
    each run)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    learned = Tokenizer(models.BPE())
    learned.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    learned.decoder = decoders.ByteLevel()
    learned.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    learned.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>",
        special_tokens=[("<s>", learned.token_to_id("<s>")), ("</s>", learned.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=learned, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   clean_up_tokenization_spaces=False)


def _set_special_tokens(model: Any, model_path: str, tokenizer: Any = None) -> None:
    """A warm-started model starts each output with the [CLS] (<s>) of the tokenizer that writes the
    outputs (``tokenizer``, else the base's) and stops at its [SEP] (</s>)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_path} has no tokenizer to take the decoder's start and end tokens from "
                         f"({str(exc)[:200]}). Copy the model's tokenizer files beside its weights.") from None
    before, after = special_tokens(tokenizer)
    start, end = (before or [None])[0], (after or [None])[-1]
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise ModelError(f"The tokenizer of {model_path} has no start ([CLS] or <s>), end ([SEP] or </s>) or padding "
                         "token: a decoder warm-started from it could not begin or stop a text.")
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id, config.eos_token_id, config.pad_token_id = start, end, tokenizer.pad_token_id


#: the share of targets a tokenizer may fail to write back before the run is refused
UNWRITABLE_SHARE = 0.1


def _uncased(tokenizer: Any) -> bool:
    """Whether the tokenizer lowercases (an uncased model cannot write capitals)."""
    return bool(getattr(tokenizer, "do_lower_case", False)) or tokenizer("A")["input_ids"] == tokenizer("a")["input_ids"]


def _check_writable(tokenizer: Any, targets: list[str]) -> None:
    """Refuse targets the tokenizer cannot write: the decoder writes only what its tokens spell, so
    a target that does not come back from encoding and decoding (accents an uncased vocabulary
    strips: "Männer" -> "manner"; characters it does not know) could never be generated. Case and
    spacing do not count (an uncased model is scored lowercased)."""
    lower = _uncased(tokenizer)

    def canonical(text: str) -> str:
        return "".join((text.lower() if lower else text).split())

    lost = [t for t in targets if canonical(tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"])) != canonical(t)]
    if targets and len(lost) > UNWRITABLE_SHARE * len(targets):
        back = tokenizer.decode(tokenizer(lost[0], add_special_tokens=False)["input_ids"])
        raise DataError(f"The tokenizer cannot write {len(lost)} of the first {len(targets)} targets as they are (e.g. "
                        f"{lost[0][:60]!r} comes back as {back[:60]!r}): the model could never generate them. Learn a "
                        "vocabulary of the targets (task.options.target_tokenizer=train), use a model whose vocabulary "
                        "covers the target language (an uncased vocabulary strips accents), or translate into the "
                        "language it can write (task.options.source_lang / target_lang).")


def _target_ids(tokenizer: Any, text: str, cap: int, start: int) -> tuple[list[int], bool]:
    """The labels of one target and whether it was cut: its tokens and the end token, without the
    ``start`` tokens the tokenizer puts first, which the decoder is given ([CLS], <s>)."""
    ids = tokenizer(text, truncation=True, max_length=cap + 1 + start)["input_ids"][start:]
    cut = len(ids) > cap
    if cut:
        ids = ids[: cap - 1] + ids[-1:]
    return ids, cut


def _texts(value: Any, what: str, where: str) -> list[str]:
    """A field holding a text or a list of texts, as a list of non-empty texts."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise DataError(f"{where}: {what} must be a text or a list of texts, got {type(value).__name__}.")
    texts = [v.strip() for v in values if v.strip()]
    if not texts:
        raise DataError(f"{where}: the {what} is empty. Every example needs a source and at least one target text.")
    return texts


def _read_table(path: Path, encoding: str, options: Any) -> list[Seq2SeqExample]:
    """Source and reference(s) from JSON Lines (a text or a list each) or a TSV with a header."""
    src, tgt = options.source_field, options.target_field
    examples = []
    if path.suffix in (".jsonl", ".json") or path.name.endswith((".jsonl.gz", ".json.gz")):
        for line, obj in read_jsonl(path, encoding):
            where = f"{path}, line {line}"
            if src not in obj or tgt not in obj:
                raise DataError(f"{where}: no {src!r} or {tgt!r} key (it has {', '.join(sorted(obj)) or 'none'}). Name the keys "
                                "with task.options.source_field / target_field.")
            source = " ".join(_texts(obj[src], "source", where))  # SciTLDR: the abstract's sentences
            examples.append(Seq2SeqExample(source, _texts(obj[tgt], "target", where), line))
        return examples
    lines = read_lines(path, encoding)
    header = lines[0].split("\t") if lines else []
    if src not in header or tgt not in header:
        raise DataError(f"{path}: a TSV needs a header naming the {src!r} and {tgt!r} columns (it has {header[:5]}). Name "
                        "them with task.options.source_field / target_field, or use JSON Lines.")
    s, t = header.index(src), header.index(tgt)
    for number, row in enumerate(lines[1:], 2):
        if not row.strip():
            continue
        cells = row.split("\t")
        where = f"{path}, line {number}"
        if len(cells) <= max(s, t):
            raise DataError(f"{where}: {len(cells)} column(s), the header has {len(header)}.")
        examples.append(Seq2SeqExample(" ".join(_texts(cells[s], "source", where)), _texts(cells[t], "target", where), number))
    return examples


def _read_parallel(data: Any, source_lang: str, target_lang: str) -> dict[str, list[Seq2SeqExample]]:
    """Line-aligned files per split and language: ``<split>.<lang>`` (gzip'd or not) in ``data.path``."""
    if not data.path or not Path(data.path).is_dir():
        raise DataError(f"translate reads a directory of line-aligned files (train.{source_lang}, train.{target_lang}, "
                        f"val.{source_lang} ...): pass it with --data DIR (got {data.path!r}).")
    directory = Path(data.path)
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        parts = path.name.removesuffix(".gz").rsplit(".", 1)
        if path.is_file() and len(parts) == 2 and parts[1] in (source_lang, target_lang) and (split := peft_hub.split_of(parts[0])):
            if parts[1] in found.setdefault(split, {}):
                raise DataError(f"{directory}: several {split} files in {parts[1]!r} ({found[split][parts[1]].name}, {path.name}).")
            found[split][parts[1]] = path
    if "train" not in found:
        raise DataError(f"{directory}: no training files train.{source_lang} and train.{target_lang} (.gz or not).")
    splits = {}
    for split, files in found.items():
        missing = [lang for lang in (source_lang, target_lang) if lang not in files]
        if missing:
            raise DataError(f"{directory}: the {split} split has no {missing[0]!r} file beside {next(iter(files.values())).name}. "
                            f"Every split needs the same sentences in {source_lang!r} and {target_lang!r}.")
        sources, targets = (read_lines(files[lang], data.encoding) for lang in (source_lang, target_lang))
        if len(sources) != len(targets):
            raise DataError(f"{files[source_lang]} has {len(sources):,} lines and {files[target_lang]} {len(targets):,}: "
                            "line i of one must translate line i of the other.")
        examples = []
        for number, (source, target) in enumerate(zip(sources, targets), 1):
            if not source.strip() and not target.strip():
                continue
            if not source.strip() or not target.strip():
                empty = files[source_lang] if not source.strip() else files[target_lang]
                raise DataError(f"{empty}, line {number}: empty, but its counterpart is not. Remove the pair, or fill it.")
            examples.append(Seq2SeqExample(source.strip(), [target.strip()], number))
        splits[split] = examples
    return splits


@peft_hub.hookimpl
def register_tasks(register):
    register(Summarize())
    register(Translate())
