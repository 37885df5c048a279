"""Apply the Gopher quality rules: 50-100,000 words, mean word length 3-10, at most 30%
of lines ending in an ellipsis, at least 80% of words with a letter.

The report counts removals per rule (gopher_word_count, gopher_mean_word_length, ...).

example: cs336-data filter en/ -o gopher/"""

from cs336_data.commands._common import add_io_arguments, run_stage


def add_arguments(parser) -> None:
    add_io_arguments(parser)


def run(args) -> int:
    from cs336_data.stages import filter_stage

    return run_stage(args, lambda i, o, c: filter_stage(i, o, [("gopher", {})], c))
