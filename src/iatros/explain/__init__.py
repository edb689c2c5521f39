"""Explanations: what in the input drove a prediction (Grad-CAM for images)."""
