"""Model zoo: networks and classical baselines per modality, listed in one registry."""

from iatros.models.registry import ModelSpec, get_model_spec, list_models, register_model

__all__ = ["ModelSpec", "get_model_spec", "list_models", "register_model"]
