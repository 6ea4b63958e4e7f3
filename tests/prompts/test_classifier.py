"""TaskClassifier: the reference's layers, cross-entropy on logits, the training helper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mio_strategies.prompts import TaskClassifier, classifier_accuracy, train_task_classifier
from mio_strategies.tasks import NUM_TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic_batches(generator: torch.Generator, n: int, batch: int = 14, size: int = 18):
    """Simple in-file degradations, one per task id (the real ones live in mio_strategies.degradations)."""
    for _ in range(n):
        clean = torch.rand(batch, 1, size, size, generator=generator).expand(-1, 3, -1, -1) * 0.5 + 0.25
        ids = torch.arange(batch) % NUM_TASKS
        out = clean.clone()
        for i, t in enumerate(ids.tolist()):
            img = clean[i]
            if t == 0:  # "sr": blocky
                img = F.interpolate(img[None, :, ::2, ::2], scale_factor=2, mode="nearest")[0]
            elif t == 1:  # "blur"
                img = F.avg_pool2d(img[None], 5, stride=1, padding=2, count_include_pad=False)[0]
            elif t == 2:  # "noise"
                img = img + 0.2 * torch.randn(img.shape, generator=generator)
            elif t == 3:  # "jpeg": 8-level quantisation
                img = torch.round(img * 4) / 4
            elif t == 4:  # "rain": bright streaks
                img = img.clone()
                img[:, :, ::4] = 1.0
            elif t == 5:  # "haze"
                img = 0.4 * img + 0.6
            else:  # "lowlight"
                img = img**3
            out[i] = img
        yield out.clamp(0, 1), ids


def test_architecture_follows_the_reference():
    clf = TaskClassifier()
    convs = [m for m in clf.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 128, (3, 3), (3, 3)),
        (128, 128, (3, 3), (3, 3)),
        (128, 128, (1, 1), (1, 1)),
        (128, 128, (1, 1), (1, 1)),
        (128, 32, (1, 1), (1, 1)),
    ]
    assert (clf.head.in_features, clf.head.out_features) == (32, NUM_TASKS)
    logits = clf(torch.rand(2, 3, 27, 31))
    assert logits.shape == (2, NUM_TASKS)
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))  # logits, not probabilities


def test_seeded_initialisation_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = TaskClassifier(generator=torch.Generator().manual_seed(3))
    b = TaskClassifier(generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_training_uses_cross_entropy_on_logits():
    clf = TaskClassifier(width=8)
    images = torch.rand(4, 3, 18, 18, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([0, 1, 5, 6])
    expected = F.cross_entropy(clf(images), ids).item()
    hist = train_task_classifier(clf, [(images, ids)], optimizer=torch.optim.SGD(clf.parameters(), lr=0.0))
    assert hist.losses == [pytest.approx(expected)]


def test_training_helper_learns_synthetic_degradations(generator):
    clf = TaskClassifier(width=16, generator=torch.Generator().manual_seed(0))
    hist = train_task_classifier(clf, synthetic_batches(generator, 60), lr=5e-3)
    assert hist.steps == 60
    assert sum(hist.losses[-10:]) / 10 < 0.75 * sum(hist.losses[:10]) / 10
    acc, confusion = classifier_accuracy(clf, synthetic_batches(torch.Generator().manual_seed(99), 4))
    assert confusion.sum() == 4 * 14 and acc > 0.4  # chance is 1/7


def test_training_helper_accepts_a_dataloader_and_stops_after_steps(generator):
    data = next(iter(synthetic_batches(generator, 1, batch=21)))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=7)
    clf = TaskClassifier(width=8)
    seen = []
    hist = train_task_classifier(clf, loader, steps=2, callback=lambda s, loss, acc: seen.append(s))
    assert hist.steps == 2 and seen == [0, 1]
    assert clf.training  # mode restored


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        ((torch.rand(2, 3, 18, 18), torch.tensor([0, 7])), ValueError, r"task ids must lie in 0\.\.6, got \[0, 7\]"),
        ((torch.rand(2, 3, 18, 18), torch.tensor([0.0, 1.0])), ValueError, r"task_ids must be 2 integer ids"),
        (torch.rand(2, 3, 18, 18), TypeError, r"expected \(images, task_ids\)"),
    ],
)
def test_training_helper_rejects_bad_batches_before_stepping(batch, error, message):
    clf = TaskClassifier(width=8)
    before = [p.clone() for p in clf.parameters()]
    with pytest.raises(error, match=message):
        train_task_classifier(clf, [batch])
    assert all(torch.equal(p, q) for p, q in zip(before, clf.parameters()))


def test_classifier_rejects_wrong_images():
    clf = TaskClassifier(width=8)
    with pytest.raises(ValueError, match=r"expects images \(B, 3, H, W\), got shape \(2, 1, 18, 18\)"):
        clf(torch.rand(2, 1, 18, 18))
    with pytest.raises(ValueError, match=r"at least 9x9 pixels"):
        clf(torch.rand(2, 3, 6, 18))
