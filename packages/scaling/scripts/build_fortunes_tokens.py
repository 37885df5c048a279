"""Build the package's default training data: the fortunes corpus that `cs336-basics
quickstart` ships, tokenized with the basics BPE tokenizer (vocab 2048, as the quickstart).

A build-time tool (it imports cs336_basics, which cs336_scaling itself never does); its
outputs are committed under src/cs336_scaling/data/fortunes/:

    uv run python packages/scaling/scripts/build_fortunes_tokens.py
"""

import lzma
import tempfile
from importlib import resources
from pathlib import Path

from cs336_basics.bpe import train_bpe
from cs336_common.tokenizer import Tokenizer
from cs336_common.train.token_file import save_token_file

EOS = "<|endoftext|>"
OUT = Path(__file__).resolve().parents[1] / "src" / "cs336_scaling" / "data" / "fortunes"


def main() -> None:
    corpus = resources.files("cs336_basics") / "corpus" / "fortunes.txt.xz"
    text = lzma.decompress(corpus.read_bytes()).decode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fortunes.txt"
        path.write_text(text, encoding="utf-8")
        vocab, merges = train_bpe(path, 2048, [EOS], progress=False)
    tokenizer = Tokenizer(vocab, merges, special_tokens=[EOS])
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer.save(OUT / "tokenizer")
    ids = tokenizer.encode(text)
    save_token_file(OUT / "tokens.bin", ids, tokenizer.vocab_size)
    print(
        f"{len(text):,} characters -> {len(ids):,} tokens (vocab {tokenizer.vocab_size}) in {OUT}"
    )


if __name__ == "__main__":
    main()
