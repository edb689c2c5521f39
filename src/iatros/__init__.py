"""iatros: deep learning in medicine, from a clinical dataset to an honestly evaluated model."""

__version__ = "0.1.0"
