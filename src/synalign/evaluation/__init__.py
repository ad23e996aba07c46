"""Evaluation: methods, downstream classifiers, metrics and the multi-seed runner."""
