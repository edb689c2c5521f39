"""De-identification beyond text: DICOM files (PS3.15 basic confidentiality profile) and FHIR
resources (identifiers to keyed pseudonyms, dates shifted per patient). Keys come from the
caller (`iatros.api.deid`), the same keys as `iatros nlp deid`."""
