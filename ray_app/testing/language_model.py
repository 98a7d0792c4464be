"""An untrained GPT-2 for machines that cannot download ``gpt2``: real GPT-2 architecture, random weights.

The tokenizer is a byte-level BPE (GPT-2's algorithm) trained here on sentences like the Recommender's prompts;
the model is ``GPT2LMHeadModel`` with random weights, ``tiny`` (2 layers, fast for tests) or ``gpt2`` (the
124M shape: 12 layers, 768 wide, 50,257 vocabulary, for timing). Both are saved to a folder that
``from_pretrained(folder)`` loads, the same path ``gpt2`` takes. ``config.json`` carries a mark so every answer
from it says that the model is untrained.

    python -m ray_app.testing.language_model FOLDER [tiny|gpt2]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from serve_deployments.language_model import TEST_MODEL_MARK

Shape = Literal["tiny", "gpt2"]
END = "<|endoftext|>"
GPT2_VOCABULARY = 50_257
SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 256},
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024, "vocab_size": GPT2_VOCABULARY},
}
WORDS_TEXT = (
    "market report price change volatility forecast close range signal buy hold sell sentiment bullish bearish "
    "neutral analyst comment the stock crypto trend goes up down flat in a of to and with shares traders volume "
    "week day hour risk support resistance momentum rally selloff investors expect further gains losses"
)


def _corpus(lines: int = 400) -> list[str]:
    import random

    rng = random.Random(0)
    corpus = []
    for i in range(lines):
        numbers = f"{rng.uniform(1, 90000):.2f} {rng.uniform(-9, 9):+.2f}% {rng.uniform(0, 5):.2f}%"
        corpus.append(
            f"Market report for AAPL BTC/USD at 2026-11-{1 + i % 28:02d} {i % 24:02d}:00 UTC. {numbers} "
            + " ".join(rng.choice(WORDS_TEXT.split()) for _ in range(12))
            + "."
        )
    return corpus


def build_test_model(folder: Path | str, shape: Shape = "tiny", seed: int = 0) -> Path:
    """Write an untrained GPT-2 (and its tokenizer) to `folder`; returns the folder."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=2000, min_frequency=1, special_tokens=[END], show_progress=False)
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=END, eos_token=END, unk_token=END)
    tokenizer.model_max_length = SHAPES[shape]["n_positions"]
    end_id = tokenizer.convert_tokens_to_ids(END)
    dimensions = {"vocab_size": len(tokenizer), **SHAPES[shape]}
    config = GPT2Config(**dimensions, bos_token_id=end_id, eos_token_id=end_id, **{TEST_MODEL_MARK: True})
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(
        f"Untrained GPT-2 ({shape} shape, random weights, seed {seed}) built by ray_app/testing/language_model.py "
        "for tests and offline demos. Its text is noise.\n"
    )
    return folder


if __name__ == "__main__":
    print(build_test_model(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tiny"))  # type: ignore[arg-type]
