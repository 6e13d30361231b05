"""Evaluation: baselines, metrics and reports for trained models.

``tailorml.eval.classification`` holds the classification baselines and a
trained classifier's accuracy.
"""
