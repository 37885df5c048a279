"""Real training: the trainer on the shipped token file, and the service running it."""

import math

import pytest

from cs336_scaling.client import ScalingClient
from cs336_scaling.settings import ServiceSettings
from cs336_scaling.trainer import default_token_file, train_run

TINY = {
    "d_model": [16, 32],
    "num_layers": [2, 3],
    "num_heads": [2, 4],
    "train_flops": [1e9, 3e9],
    "context_length": 32,
    "eval_tokens": 2048,
}
CONFIG = dict(
    d_model=16, num_layers=2, num_heads=2, batch_size=128, learning_rate=1e-3, train_flops=1e9
)


@pytest.fixture(scope="module")
def settings():
    return ServiceSettings.from_dict(TINY).to_dict()


@pytest.fixture(scope="module")
def short(settings):
    return train_run(CONFIG, settings)


def test_more_compute_gives_lower_loss(settings, short):
    longer = train_run({**CONFIG, "train_flops": 3e9}, settings)
    assert math.log(2048) * 0.9 < short < math.log(2048) * 1.1  # ~uniform after 7 steps
    assert longer < short - 0.01


def test_the_service_answers_what_the_trainer_computes(short, svc, tmp_path):
    state = tmp_path / "state"
    key = svc.create_key(state, "real")
    server = svc.Server(state, TINY)
    try:
        answer = ScalingClient(server.url, key).loss(**CONFIG)
    finally:
        server.stop()
    assert answer["loss"] == pytest.approx(short, rel=1e-5)  # seeded: the same run
    assert answer["total_flops_used"] == 1e9


def test_shipped_token_file_is_readable():
    from cs336_common.train.token_file import open_token_file, token_file_vocab_size

    tokens = open_token_file(default_token_file())
    assert len(tokens) == 929_775 and token_file_vocab_size(default_token_file()) == 2048
    assert int(tokens.max()) < 2048
