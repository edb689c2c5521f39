"""Transforms and augmentation per modality."""
