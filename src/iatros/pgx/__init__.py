"""Pharmacogenomics: star-allele diplotypes or a germline VCF to phenotypes and CPIC
recommendations, from the CPIC-derived tables packaged with pypgx (tables.py), warfarin's IWPC
dose (warfarin.py) and abacavir from HLA-B*57:01 typing (hla.py), as text, JSON or FHIR R4
(fhir.py). Imports only `iatros.errors`."""
