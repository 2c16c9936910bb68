"""The model layer: features, training, registry, evaluation and the promotion gate."""
