"""`iatros pgx recommend|tables`: star-allele diplotypes or a VCF to CPIC recommendations."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from iatros.errors import ConfigError

pgx_app = typer.Typer(
    help="Pharmacogenomics: star-allele diplotypes or a germline VCF (GRCh37 or GRCh38) to "
         "phenotypes and CPIC recommendations, from the CPIC-derived tables packaged with pypgx "
         "(version cited in every answer). Anything the tables cannot answer is reported as "
         "indeterminate or not covered, with the reason.",
    no_args_is_help=True)


def _split(values: list[str] | None) -> list[str] | None:
    out = [x.strip() for v in values or [] for x in v.split(",") if x.strip()]
    return out or None


@pgx_app.command("recommend")
def recommend_cmd(
    diplotype: Annotated[list[str] | None, typer.Option(
        "--diplotype", help="GENE=ALLELE/ALLELE, e.g. CYP2C19=*1/*2 (repeatable).")] = None,
    vcf: Annotated[Path | None, typer.Option(
        "--vcf", help="A VCF (.vcf or .vcf.gz) of one sample; missing positions are never read "
                      "as reference.")] = None,
    drug: Annotated[list[str] | None, typer.Option(
        "--drug", "--drugs", help="Drug(s), repeatable or comma-separated. Default: the drugs of "
                                  "the given genes (diplotypes) or the issue-24 panel (VCF).")] = None,
    build: Annotated[str | None, typer.Option(
        "--build", help="Genome build of the VCF: GRCh37 or GRCh38 (default: from its header).")] = None,
    sample: Annotated[str | None, typer.Option(
        "--sample", help="Sample column of a multi-sample VCF.")] = None,
    fhir: Annotated[bool, typer.Option("--fhir", help="Print a FHIR R4 Bundle (JSON).")] = False,
    subject: Annotated[str | None, typer.Option(
        "--subject", help="Patient id for the FHIR resources' subject (Patient/ID).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Phenotypes and CPIC recommendations for diplotypes (--diplotype) or a VCF (--vcf)."""
    from iatros.api import pgx

    if (vcf is None) == (not diplotype):
        raise ConfigError("give either --diplotype GENE=A/B (one or more) or --vcf FILE")
    drugs = _split(drug)
    report = (pgx.recommend_vcf(vcf, drugs, build=build, sample=sample) if vcf is not None
              else pgx.recommend_diplotypes(list(diplotype or []), drugs))
    if fhir:
        json.dump(pgx.as_fhir(report, subject=subject), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif as_json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        typer.echo(pgx.as_text(report))


@pgx_app.command("tables")
def tables_cmd() -> None:
    """The source of the tables: package, version and each file's SHA-256."""
    from iatros.api import pgx

    json.dump(pgx.source(), sys.stdout, indent=1)
    sys.stdout.write("\n")
