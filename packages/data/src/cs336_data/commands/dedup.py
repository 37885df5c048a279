"""Deduplicate document shards across all inputs: exact lines or MinHash near-duplicates.

exact: drop every line that occurs more than once in the whole collection (and documents
left empty). minhash: word n-gram MinHash + LSH bands, true Jaccard on candidates,
clusters by union-find; the first document of each cluster in input order is kept.

example: cs336-data dedup gopher/ -o dedup/ --method minhash --threshold 0.8"""

from cs336_common.cli import positive_int, probability
from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)
    a = parser.add_argument
    a("--method", choices=("exact", "minhash"), default="minhash", help="(minhash)")
    a("--num-hashes", type=positive_int, default=128, help="MinHash signature length (128)")
    a("--num-bands", type=positive_int, default=16, help="LSH bands; must divide --num-hashes (16)")
    a("--ngrams", type=positive_int, default=5, help="word n-gram length (5)")
    a("--threshold", type=probability, default=0.8, help="Jaccard similarity of duplicates (0.8)")


def run(args) -> int:
    import dataclasses

    from cs336_data.config import MinHashConfig
    from cs336_data.stages import exact_dedup_stage, minhash_stage

    if args.method == "exact":
        return run_stage(args, exact_dedup_stage)
    mh = MinHashConfig(args.num_hashes, args.num_bands, args.ngrams, args.threshold)

    def stage(inputs, out, cfg):
        mh.check()
        return minhash_stage(inputs, out, cfg, dataclasses.asdict(mh))

    return run_stage(args, stage)
