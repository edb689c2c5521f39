"""Figures and a clinician-readable model card (``report.html``) for a finished run folder."""

from iatros.report.figures import write_figures
from iatros.report.model_card import write_report

__all__ = ["write_figures", "write_report"]
