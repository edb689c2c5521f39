"""Pharmacogenomics: star-allele diplotypes or a germline VCF to phenotypes and CPIC
recommendations, from the CPIC-derived tables packaged with pypgx (tables.py), as text, JSON or
FHIR R4 (fhir.py). Imports only `iatros.errors`."""
