"""Prompt families: how a prompt is written for a model and how its answer is parsed."""
