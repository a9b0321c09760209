"""Class-conditional image metrics, registered by name (they need the samples' classes, so they
apply to a class-conditional generator's samples only):

    intra_fid       FID between the generated and the real images of each class, in the
                    run's feature space, averaged over the classes (Miyato and Koyama 2018)
    class_accuracy  the share of samples of each class that the dataset's own classifier
                    (the feature network, e.g. the shipped Fashion-MNIST one) assigns to
                    that class, averaged over the classes; class_accuracy_min: the worst
                    class. None when the feature network is not a classifier of the dataset.

The real side is the reference split's images (eval.reference_split, the first
eval.reference_num_samples) and their labels; evaluation sample i is of class i mod classes.
"""

from __future__ import annotations

import numpy as np

from gan_jax import evaluators
from gan_jax.evaluators import EvalInputs, Measured
from gan_jax.metrics.distances import feature_statistics, frechet_distance_from_statistics
from gan_jax.metrics.image import is_image_data, quietly


def _intra_fid(inputs: EvalInputs) -> Measured:
    fake, _ = inputs.fake_features()
    real, real_labels = inputs.features.reference.features, inputs.features.reference_labels
    labels = np.asarray(inputs.labels)
    distances = []
    for label in np.unique(labels):
        real_of_class = real[real_labels == label]
        if len(real_of_class) < 2:
            continue  # no reference images of this class in the reference split's first N
        mu, sigma = feature_statistics(fake[labels == label])
        real_mu, real_sigma = feature_statistics(real_of_class)
        distances.append(frechet_distance_from_statistics(mu, sigma, real_mu, real_sigma))
    return Measured({"intra_fid": float(np.mean(distances)) if distances else None})


def _class_accuracy(inputs: EvalInputs) -> Measured:
    _, logits = inputs.fake_features()
    if not inputs.features.classifies_dataset or logits is None:
        return Measured({"class_accuracy": None, "class_accuracy_min": None})
    labels = np.asarray(inputs.labels)
    correct = np.argmax(logits, axis=-1) == labels
    per_class = [float(correct[labels == label].mean()) for label in np.unique(labels)]
    return Measured({"class_accuracy": float(np.mean(per_class)), "class_accuracy_min": float(np.min(per_class))})


for _name, _compute, _directions in (
    ("intra_fid", _intra_fid, {"intra_fid": "min"}),
    ("class_accuracy", _class_accuracy, {"class_accuracy": "max", "class_accuracy_min": "max"}),
):
    evaluators.register(
        evaluators.Metric(
            _name,
            applies=is_image_data,
            compute=quietly(_compute),
            directions=_directions,
            needs_features=True,
            needs_labels=True,
        )
    )
