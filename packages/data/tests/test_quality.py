"""Training a quality classifier survives fastText diverging at a high learning rate."""


def test_diverged_fasttext_training_retries_at_half_the_rate():
    from cs336_data.quality import _train_supervised

    rates = []

    class DivergesTwice:
        @staticmethod
        def train_supervised(path, lr, **kwargs):
            rates.append(lr)
            if len(rates) < 3:
                raise RuntimeError("Encountered NaN.")
            return "model"

    assert _train_supervised(DivergesTwice, "train.txt", lr=0.5, epoch=1) == "model"
    assert rates == [0.5, 0.25, 0.125]
