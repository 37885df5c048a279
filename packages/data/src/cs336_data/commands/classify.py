"""Score documents with the harmful-content and quality classifiers and drop the bad ones.

Adds `nsfw`, `toxic` (probabilities) and `quality_wiki` (probability of reference-like
text) to the metadata. Offline defaults: alt-profanity-check's model for NSFW/toxic and
the shipped fastText quality model; --nsfw-model/--toxic-model (or $CS336_NSFW_MODEL,
$CS336_TOXIC_MODEL) name the Dolma Jigsaw fastText models (`cs336-data models download`).

example: cs336-data classify en/ -o clean/ --min-wiki 0.3"""

from cs336_common.cli import fraction
from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)
    a = parser.add_argument
    a("--nsfw-threshold", type=fraction, default=0.5, help="drop when P(nsfw) >= this (0.5)")
    a("--toxic-threshold", type=fraction, default=0.5, help="drop when P(toxic) >= this (0.5)")
    a("--min-wiki", type=fraction, default=0.5, help="drop when P(wiki) < this (0.5; 0 keeps all)")
    a("--nsfw-model", help="fastText NSFW model (Dolma Jigsaw)")
    a("--toxic-model", help="fastText toxic-speech model (Dolma Jigsaw)")
    a("--quality-model", help="fastText quality model (default: the shipped one)")
    a("--no-harmful", action="store_true", help="skip the NSFW/toxic classifiers")
    a("--no-quality", action="store_true", help="skip the quality classifier")


def run(args) -> int:
    from cs336_common.errors import UsageError
    from cs336_data.stages import filter_stage

    if args.no_harmful and args.no_quality:
        raise UsageError("--no-harmful and --no-quality leave nothing to classify")
    steps = []
    if not args.no_harmful:
        steps.append(("harmful", {"nsfw_threshold": args.nsfw_threshold,
                                  "toxic_threshold": args.toxic_threshold,
                                  "nsfw_model": args.nsfw_model, "toxic_model": args.toxic_model}))  # fmt: skip
    if not args.no_quality:
        steps.append(("quality", {"min_wiki": args.min_wiki, "model": args.quality_model}))
    return run_stage(args, lambda i, o, c: filter_stage(i, o, steps, c))
