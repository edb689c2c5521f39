"""Imaging tasks on MedMNIST (pneumonia, breast ultrasound, retinopathy, lung nodules, any set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iatros.data.sources.medmnist import MedMNISTInfo, dataset_info, load_medmnist
from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.settings import get_settings
from iatros.tasks.base import Task, TaskData
from iatros.tasks.outcomes import class_labels, encode_target, infer_kind, survival_targets
from iatros.tasks.registry import register_family, register_task

IMAGE_MODELS = ("resnet18", "resnet50", "densenet121")
MEDMNIST_LIMITATIONS = (
    "MedMNIST images are downsampled to a few dozen pixels: fine findings visible at full "
    "resolution are lost, so numbers do not transfer to full-size images without retraining.",
    "MedMNIST ships no patient identifiers or demographics; its official splits were made by the "
    "dataset authors, and no subgroup audit is possible.",
)
# Chest X-rays and ultrasound keep their orientation; fundus and CT crops may be mirrored.
NO_FLIP = {"hflip": False, "vflip": False, "rotate_degrees": 10.0, "scale": 0.1, "translate": 0.08,
           "contrast": 0.2}
FLIPS = {"hflip": True, "vflip": True, "rotate_degrees": 15.0, "scale": 0.1, "translate": 0.08,
         "contrast": 0.2}


def _medmnist_loader(name: str, size: int, positive_first: bool) -> Any:
    def load(root: Path) -> TaskData:
        # images are memory-mapped from the workspace cache: an archive larger than memory trains
        arrays = load_medmnist(name, root, size, store=get_settings().cache_dir / "arrays")
        images, labels, split = arrays.stacked()
        if positive_first:  # datasets that code the finding as class 0 (BreastMNIST: malignant)
            labels = 1 - labels
        ids = np.array([f"{name}-{s}-{i:05d}" for s, i in zip(split, _index_within(split),
                                                                   strict=True)])
        mismatch = "; ".join(f"{s}: {found} of {official} official images"
                             for s, (found, official) in arrays.count_mismatches.items())
        return TaskData(inputs=images, targets=labels, patient_ids=ids,
                        attributes=pd.DataFrame(index=range(len(labels))), split=split,
                        source=f"medmnist:{arrays.path}" + (f" ({mismatch})" if mismatch else ""))
    return load


def _index_within(split: np.ndarray) -> np.ndarray:
    out = np.zeros(len(split), dtype=np.int64)
    for s in np.unique(split):
        rows = np.flatnonzero(split == s)
        out[rows] = np.arange(len(rows))
    return out


def medmnist_task(name: str, *, size: int = 28, task_name: str | None = None,
                  description: str | None = None, classes: tuple[str, ...] | None = None,
                  positive_first: bool = False, augment: dict[str, Any] | None = None,
                  train_params: dict[str, Any] | None = None, intended_use: str = "",
                  limitations: tuple[str, ...] = ()) -> Task:
    """A task on one MedMNIST dataset at one published size, with the official splits."""
    info: MedMNISTInfo = dataset_info(name)
    if size not in info.sizes:
        raise ConfigError(f"{info.name} is published at sizes {list(info.sizes)}, not {size}")
    kind = info.kind
    three_d = info.dims == 3
    model_params = {"spatial_dims": info.dims, "in_channels": info.n_channels, "size": size,
                    "augment": augment or (FLIPS if three_d else NO_FLIP)}
    if three_d:  # the 3x3x3 stride-1 stem is too slow on CPUs; downsample first, half width
        model_params.update(stem="standard", widen_factor=0.5)
    return Task(
        name=task_name or f"medmnist:{info.name}" + (f"@{size}" if size != 28 else ""),
        description=description or f"{info.name} ({info.task}), {size}px: {info.source}",
        modality=Modality.IMAGE, target=kind, loader=_medmnist_loader(info.name, size, positive_first),
        classes=classes or info.labels,
        primary_metric="auroc",
        default_model="resnet18", models=IMAGE_MODELS,
        split_by="image (official MedMNIST split)",
        source=f"MedMNIST v2/v3 {info.name} ({info.licence}): {info.source}",
        intended_use=intended_use or "Research and benchmarking on MedMNIST; not a diagnostic device.",
        limitations=(*limitations, *MEDMNIST_LIMITATIONS),
        model_params=model_params,
        # bf16 autocast is used for 2D only: 3D convolutions in bf16 are less proven on CPUs
        train_params={"batch_size": 64 if three_d else 128, **({"amp": False} if three_d else {}),
                      **(train_params or {})},
        extra={"medmnist": info.name, "size": size, "dims": info.dims},
    )


def _family(argument: str, options: dict[str, Any]) -> Task:
    """`medmnist:NAME` or `medmnist:NAME@SIZE` (e.g. medmnist:dermamnist@64)."""
    name, _, size = argument.partition("@")
    size_value = options.get("size") or (int(size) if size.isdigit() else 28)
    return medmnist_task(name, size=int(size_value))


register_family("medmnist", _family)

PNEUMONIA_CXR = register_task(medmnist_task(
    "pneumoniamnist", task_name="pneumonia-cxr",
    description="Pneumonia vs normal on paediatric chest X-rays (PneumoniaMNIST, 28px)",
    train_params={"balance": True, "epochs": 12},
    intended_use="Research: triage-style pneumonia detection on paediatric chest X-rays.",
    limitations=("Paediatric patients (1-5 years) from one centre in Guangzhou; adult X-rays differ.",),
))
BREAST_ULTRASOUND = register_task(medmnist_task(
    "breastmnist", task_name="breast-ultrasound",
    description="Malignant vs benign or normal breast ultrasound (BreastMNIST, 28px)",
    classes=("benign or normal", "malignant"), positive_first=True,
    train_params={"epochs": 40, "patience": 15, "batch_size": 64},
    intended_use="Research: malignancy risk from a breast ultrasound image.",
    limitations=("780 images from one Cairo hospital (BUSI); small test set (156 images).",),
))
RETINOPATHY_GRADE = register_task(medmnist_task(
    "retinamnist", task_name="retinopathy-grade",
    description="Diabetic retinopathy grade 0-4 from a fundus photograph (RetinaMNIST, 28px)",
    augment=FLIPS, train_params={"epochs": 30, "patience": 12, "batch_size": 64},
    intended_use="Research: five-grade diabetic retinopathy severity (ordinal).",
    limitations=("1600 fundus images (DeepDRiD); grades 3-4 are rare, so their per-class "
                 "performance is uncertain.",),
))
NODULE_CT = register_task(medmnist_task(
    "nodulemnist3d", task_name="nodule-ct",
    description="Malignant vs benign lung nodule on a 28^3 chest CT crop (NoduleMNIST3D)",
    train_params={"epochs": 20},
    intended_use="Research: nodule malignancy from a CT crop.",
    limitations=("LIDC-IDRI radiologists' malignancy ratings, not pathology, are the reference.",),
))


FOLDER_METRIC = {TargetKind.SURVIVAL: "c_index"}  # classes of any kind: AUROC


def _folder_loader(folder: Path, options: dict[str, Any]) -> Any:
    def load(root: Path) -> TaskData:
        data = _read_folder(folder, options, root)
        if options.get("event"):
            if options["event"] not in data.attributes.columns:
                raise ConfigError(f"{data.csv_path}: event column {options['event']!r} not found")
            targets = survival_targets(data.labels, data.attributes[options["event"]].to_numpy(),
                                       str(data.csv_path))
        else:
            targets = encode_target(data.labels, TargetKind(options["kind"]),
                                    tuple(options["classes"]), data.csv_path)
        attrs = data.attributes[list(options.get("attributes", ()))].astype(str).reset_index(drop=True)
        return TaskData(inputs=np.array([str(p) for p in data.paths], dtype=object),
                        targets=targets, patient_ids=data.patient_ids, attributes=attrs,
                        split=data.splits, source=f"images:{data.folder}")
    return load


def _read_folder(folder: Path, options: dict[str, Any], root: Path) -> Any:
    from iatros.data.sources.image_folder import load_image_folder

    base = folder if folder.is_absolute() or folder.is_dir() else Path(root) / folder
    return load_image_folder(base, options.get("labels") or "labels.csv",
                             image_column=options.get("image_column", "image"),
                             label_column=options.get("target") or "label",
                             patient_column=options.get("patient_id", "patient_id"),
                             split_column=options.get("split_column"))


def images_task(argument: str, options: dict[str, Any]) -> Task:
    """`images:FOLDER`: a user's own images with a CSV of labels and patient ids.

    Options: labels (CSV, default FOLDER/labels.csv), target (label column, default "label"),
    patient_id (default "patient_id"), size (default 64), channels (1 or 3), dims (2 or 3),
    kind and positive (as for csv:PATH), attributes (audited CSV columns).
    """
    resolved = dict(options)
    root = Path(resolved.pop("data_root", "."))
    folder = Path(argument).expanduser()
    if resolved.get("time") or resolved.get("event"):
        if not (resolved.get("time") and resolved.get("event")):
            raise ConfigError(f"images:{argument} survival tasks need both --time and --event")
        resolved.update(target=resolved["time"], kind=TargetKind.SURVIVAL.value, classes=[])
    if "kind" not in resolved or "classes" not in resolved:
        data = _read_folder(folder, resolved, root)
        kind = (TargetKind(resolved["kind"]) if resolved.get("kind")
                else infer_kind(data.labels, str(data.csv_path)))
        if not kind.stratified:
            raise ConfigError(f"image folder tasks support binary, multiclass or ordinal labels; "
                              f"{data.csv_path} looks like {kind.value}: pass --kind")
        resolved["kind"] = kind.value
        resolved["classes"] = list(class_labels(data.labels, kind, resolved.get("positive"),
                                                str(data.csv_path)))
    dims = int(resolved.get("dims", 2))
    size = int(resolved.get("size", 64 if dims == 2 else 28))
    kind = TargetKind(resolved["kind"])
    model_params = {"spatial_dims": dims, "in_channels": int(resolved.get("channels", 1)),
                    "size": size, "augment": NO_FLIP if dims == 2 else FLIPS}
    if dims == 3:
        model_params.update(stem="standard", widen_factor=0.5)
    return Task(
        name=f"images:{argument}", description=f"{resolved.get('target') or 'label'} from the images in "
                                               f"{folder.name}",
        modality=Modality.IMAGE, target=kind, loader=_folder_loader(folder, resolved),
        classes=tuple(resolved["classes"]), sensitive_attributes=tuple(resolved.get("attributes", ())),
        primary_metric=FOLDER_METRIC.get(kind, "auroc"),
        default_model="resnet18", models=IMAGE_MODELS, source=f"user image folder {argument}",
        intended_use="Defined by the user who supplied the images.",
        limitations=("User-supplied images: acquisition, labelling and cohort are not checked by "
                     "iatros.",),
        model_params=model_params, train_params={"batch_size": 64, **({"amp": False} if dims == 3 else {})},
        extra={"options": resolved},
    )


register_family("images", images_task)
