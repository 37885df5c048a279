"""Download the Dolma Jigsaw fastText classifiers (NSFW, hate speech): needs internet.

Then point the classifiers at them with --nsfw-model/--toxic-model or
$CS336_NSFW_MODEL / $CS336_TOXIC_MODEL. Without them, offline defaults are used.

example: cs336-data models download --out models/"""

import argparse
from pathlib import Path

from cs336_data.commands._common import expected_errors

BASE = "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
FILES = {
    "nsfw": "jigsaw_fasttext_bigrams_nsfw_final.bin",
    "toxic": "jigsaw_fasttext_bigrams_hatespeech_final.bin",
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    d = sub.add_parser("download", help="download the Dolma Jigsaw models", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    d.add_argument("--out", required=True, type=Path, help="directory for the model files")


def run(args) -> int:
    import urllib.error
    import urllib.request

    from cs336_common.checks import check_output
    from cs336_common.io import atomic_path

    def go():
        check_output(args.out, directory=True)
        for kind, name in FILES.items():
            dst = args.out / name
            if dst.is_file():
                print(f"{kind}: {dst} (already there)")
                continue
            try:
                with urllib.request.urlopen(BASE + name, timeout=30) as r, atomic_path(dst) as tmp:
                    tmp.write_bytes(r.read())
            except (urllib.error.URLError, TimeoutError) as e:
                raise ValueError(f"cannot download {BASE + name}: {e}") from None
            print(f"{kind}: {dst}")
        print(f"export CS336_NSFW_MODEL={args.out / FILES['nsfw']}")
        print(f"export CS336_TOXIC_MODEL={args.out / FILES['toxic']}")

    expected_errors(go)
    return 0
