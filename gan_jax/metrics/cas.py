"""The classification accuracy score (Ravuri & Vinyals 2019, "Classification accuracy score for
conditional generative models"), registered as `cas` for class-conditional generators:

    cas       a classifier of the shipped architecture (gan_jax.metrics.classifier.Classifier, with
              the data's classes; images resized to 28x28) trained on the generated samples and the
              classes they were drawn for, tested on the real reference split
              (eval.reference_split): how much of each class the samples carry
    cas_real  the same training on as many real images of the training split, tested the same way:
              the ceiling (computed once per run and reference)
    gan_test  the accuracy of that real-trained classifier on the generated samples (GAN-test,
              Shmelkov et al. 2018): whether the samples look like their class

Training: CAS_EPOCHS and the rest (5 epochs, at least 200 steps, of Adam with cosine decay from
1e-3, batch 128, seed 0): a cheap
classifier, so the absolute numbers are this setting's, to be compared within it. It costs a
training per evaluation, so it runs only when eval.metrics names it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from gan_jax import evaluators
from gan_jax.evaluators import EvalInputs, Measured
from gan_jax.metrics import classifier
from gan_jax.metrics.feature_space import images_of
from gan_jax.metrics.image import is_image_data

CAS_EPOCHS, CAS_MIN_STEPS, CAS_BATCH_SIZE, CAS_LEARNING_RATE, CAS_SEED = 5, 200, 128, 1e-3, 0
_real_trained: dict[tuple, tuple[Any, float]] = {}  # (dataset, reference, N) -> (predict, cas_real)


def trained_on(images: np.ndarray, labels: np.ndarray, num_classes: int) -> Any:
    """A classifier trained on (images, labels): images [N, H, W, C] in [-1, 1] -> logits [N, classes]."""
    resized = np.asarray(classifier.to_input_size(jax.numpy.asarray(images)))
    batch_size = min(CAS_BATCH_SIZE, len(images))
    epochs = max(CAS_EPOCHS, math.ceil(CAS_MIN_STEPS / (len(images) // batch_size)))  # few images: more epochs
    params = classifier.fit(
        resized, np.asarray(labels, np.int32), num_classes, epochs, batch_size, CAS_LEARNING_RATE, CAS_SEED
    )
    model = classifier.Classifier(num_classes)
    apply = jax.jit(lambda x: model.apply({"params": params}, classifier.to_input_size(x))[1])
    return lambda x: np.concatenate([np.asarray(apply(x[i : i + 500])) for i in range(0, len(x), 500)])


def classification_accuracy_score(
    fake: np.ndarray, fake_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray, num_classes: int
) -> float:
    """Accuracy on the real (images, labels) of a classifier trained on the generated ones."""
    return classifier.accuracy(trained_on(fake, fake_labels, num_classes)(real), real_labels)


def _cas(inputs: EvalInputs) -> Measured:
    space, data = inputs.features, inputs.dataset
    num_classes = int(data.num_classes)
    real, labels_or_none = images_of(space.reference_source, space.reference.num)
    real_labels = np.asarray(labels_or_none)
    fake, fake_labels = inputs.samples, np.asarray(inputs.labels)
    key = (id(data), space.reference.images_sha256, len(fake))
    if key not in _real_trained:
        train_images, train_labels = data.examples(0, min(len(fake), data.num_examples), labels=True)
        predict = trained_on(train_images, np.asarray(train_labels), num_classes)
        _real_trained[key] = (predict, classifier.accuracy(predict(real), real_labels))
    predict_real, cas_real = _real_trained[key]
    return Measured(
        {
            "cas": classification_accuracy_score(fake, fake_labels, real, real_labels, num_classes),
            "cas_real": cas_real,
            "gan_test": classifier.accuracy(predict_real(fake), fake_labels),
        }
    )


def _takes(dataset: Any) -> bool:
    return is_image_data(dataset) and getattr(dataset, "num_classes", 0) > 0


evaluators.register(
    evaluators.Metric(
        "cas",
        applies=_takes,
        compute=_cas,
        directions={"cas": "max", "cas_real": "none", "gan_test": "max"},
        needs_features=True,  # for the reference split's images and the run's feature space
        needs_labels=True,
        by_default=False,
    )
)
