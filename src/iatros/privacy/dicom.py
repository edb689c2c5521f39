"""DICOM de-identification: dicognito (MIT; maintained) replaces names, ids, UIDs, dates and
institutions with consistent pseudonyms, seeded per patient from the caller's key so one
patient's files stay linked; on top of it private tags are removed, free-text attributes of
the PS3.15 basic profile that dicognito leaves are emptied, and the dataset is marked
(PatientIdentityRemoved, DeidentificationMethod and code 113100, Basic Application
Confidentiality Profile). Pixel data is not inspected: a file whose BurnedInAnnotation is not
"NO" gets a warning, since text burned into the image survives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from iatros.errors import CorruptDataError

# PS3.15 E.1-1 free-text attributes (action X or Z) that the anonymizer does not rewrite
FREE_TEXT = ("AdditionalPatientHistory", "PatientComments", "ImageComments", "StudyComments",
             "RequestedProcedureComments", "ImagingServiceRequestComments",
             "InterpretationText", "PerformedProcedureStepDescription", "RequestedProcedureDescription",
             "ReasonForTheRequestedProcedure", "ReasonForStudy", "DerivationDescription",
             "AdmittingDiagnosesDescription", "MedicalAlerts", "Allergies", "PatientState",
             "PregnancyStatus", "SpecialNeeds", "EthnicGroup", "ProtocolName", "SeriesDescription",
             "StudyDescription", "TextValue", "TextString", "VisitComments", "ServiceEpisodeDescription",
             "PatientSexNeutered", "PatientBirthName", "PatientMotherBirthName", "OtherPatientNames",
             "PersonName", "DeviceSerialNumber", "PlateID", "DetectorID", "GantryID", "CassetteID")
METHOD = "iatros: PS3.15 basic profile (dicognito pseudonyms, private tags removed, free text emptied)"
# the attributes whose change the report counts (names only, never values)
WATCHED = ("PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "OtherPatientIDs",
           "AccessionNumber", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
           "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "OperatorsName",
           "PerformingPhysicianName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
           "StationName", "StudyID")


class DicomDeidentifier:
    """One anonymizer per patient (seeded by `seed_for(patient id)`), reused across files."""

    def __init__(self, seed_for: Callable[[str], str]) -> None:
        self.seed_for = seed_for
        self._anonymizers: dict[str, Any] = {}

    def _anonymizer(self, patient: str) -> Any:
        from dicognito.anonymizer import Anonymizer

        if patient not in self._anonymizers:
            self._anonymizers[patient] = Anonymizer(seed=self.seed_for(patient))
        return self._anonymizers[patient]

    def file(self, src: Path, out_dir: Path, unique: Callable[[Path], Path] = lambda p: p
             ) -> dict[str, Any]:
        """De-identify `src` into out_dir/NEW_PATIENT_ID/NEW_SOP_INSTANCE_UID.dcm (written
        atomically); the report entry (attribute names changed or removed, never their
        values, and where it went) with warnings."""
        import pydicom
        from pydicom.dataset import Dataset
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(src)
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            raise CorruptDataError(f"{src}: not a readable DICOM file ({str(e).splitlines()[0][:160]})"
                                   ) from None
        before = {k: str(ds.get(k, "")) for k in WATCHED}
        patient = str(ds.get("PatientID", "") or "")
        self._anonymizer(patient).anonymize(ds)
        private = sum(1 for e in ds.iterall() if e.tag.is_private)
        ds.remove_private_tags()
        emptied = [k for k in FREE_TEXT if k in ds and str(ds[k].value or "")]
        for k in emptied:
            del ds[k]
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = [code]
        warnings = []
        burned = str(ds.get("BurnedInAnnotation", "") or "").upper()
        if burned != "NO" and "PixelData" in ds:
            warnings.append(f"BurnedInAnnotation is {burned or 'absent'}: text burned into the pixels "
                            f"(names, dates) is not removed; check the image or mask it")
        folder = "".join(c for c in str(ds.get("PatientID", "") or "unknown") if c.isalnum()) or "unknown"
        name = "".join(c for c in str(ds.get("SOPInstanceUID", "") or "image") if c.isalnum() or c == ".")
        dst = unique(out_dir / folder / f"{name}.dcm")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        try:
            ds.save_as(tmp, enforce_file_format=False)
            tmp.replace(dst)
        finally:
            tmp.unlink(missing_ok=True)
        changed = [k for k in WATCHED if before[k] and before[k] != str(ds.get(k, ""))]
        return {"output": str(dst), "changed": changed, "emptied": emptied,
                "private_tags_removed": private, "warnings": warnings}
