"""The one registry: finished runs and promoted model versions, in SQLite or PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    func,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from iatros.errors import ConfigError, RunError


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    task: Mapped[str] = mapped_column(String(200), index=True)
    model: Mapped[str] = mapped_column(String(100))
    seed: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    metric: Mapped[str] = mapped_column(String(50))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    stage: Mapped[str] = mapped_column(String(50), default="candidate")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class RunEntry:
    id: int
    path: str
    task: str
    model: str
    seed: int
    created: datetime
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    manifest_sha256: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    stage: str
    run: RunEntry
    created: datetime


def _entry(row: RunRow) -> RunEntry:
    return RunEntry(row.id, row.path, row.task, row.model, row.seed, row.created, row.metric,
                    row.value, row.ci_low, row.ci_high, row.n, row.manifest_sha256)


def masked(url: str) -> str:
    """A database URL fit for messages: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: hide anything between : and @
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def without_secret(message: str, url: str) -> str:
    """A driver's message with the URL masked and its password removed (first line only)."""
    message = message.replace(url, masked(url)).splitlines()[0][:300] if message else ""
    try:
        password = make_url(url).password
    except Exception:
        password = None
    return message.replace(str(password), "***") if password else message


def _sqlite_folder(url: str) -> Path | None:
    """The folder of a SQLite file URL (None for other databases and in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database \
            or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().resolve().parent


class Registry:
    """Index of runs and model versions behind a SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        folder = _sqlite_folder(url)
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"the registry database {masked(url)} is in a folder that does not "
                              f"exist ({folder}); create it, or fix IATROS_DATABASE_URL")
        try:
            self.engine = create_engine(url)
            Base.metadata.create_all(self.engine)
            self._add_missing_columns()
        except (SQLAlchemyError, ModuleNotFoundError, ValueError) as e:
            raise ConfigError(f"cannot open the registry database {masked(url)}: "
                              f"{without_secret(str(e), url)}. Check "
                              f"IATROS_DATABASE_URL (PostgreSQL needs `pip install "
                              f"iatros[postgres]`).") from None
        self.url = masked(url)

    def _add_missing_columns(self) -> None:
        """Registries made by an older iatros gain the columns added since (nullable)."""
        columns = {c["name"] for c in inspect(self.engine).get_columns("runs")}
        if "manifest_sha256" not in columns:
            with self.engine.begin() as connection:
                connection.execute(text("ALTER TABLE runs ADD COLUMN manifest_sha256 VARCHAR(64)"))

    def register_run(self, path: Path, task: str, model: str, seed: int, metric: str,
                     summary: dict[str, Any] | None, created: datetime | None = None,
                     manifest_sha256: str | None = None) -> RunEntry:
        """Add (or refresh) a finished run with its headline metric {value, ci95, n} and the
        sha256 of its manifest (so a later change to the folder is detected)."""
        summary = summary or {}
        ci = summary.get("ci95") or [None, None]
        with Session(self.engine) as session, session.begin():
            row = session.scalar(select(RunRow).where(RunRow.path == str(path)))
            if row is None:
                row = RunRow(path=str(path))
                session.add(row)
            row.task, row.model, row.seed, row.metric = task, model, seed, metric
            row.created = created or datetime.now(timezone.utc)
            row.value, row.ci_low, row.ci_high = summary.get("value"), ci[0], ci[1]
            row.n = summary.get("n")
            row.manifest_sha256 = manifest_sha256
            session.flush()
            return _entry(row)

    def runs(self, task: str | None = None, limit: int | None = None) -> list[RunEntry]:
        """Runs, newest first, optionally of one task."""
        query = select(RunRow).order_by(RunRow.created.desc(), RunRow.id.desc())
        if task:
            query = query.where(RunRow.task == task)
        if limit:
            query = query.limit(limit)
        with Session(self.engine) as session:
            return [_entry(r) for r in session.scalars(query)]

    def find_run_or_none(self, ref: str | Path) -> RunEntry | None:
        try:
            return self.find_run(ref)
        except RunError:
            return None

    def find_run(self, ref: str | Path) -> RunEntry:
        """A run by registry id or by folder path."""
        with Session(self.engine) as session:
            row = None
            if str(ref).isdigit():
                row = session.get(RunRow, int(ref))
            if row is None:
                row = session.scalar(select(RunRow).where(
                    RunRow.path == str(Path(ref).expanduser().resolve())))
            if row is None:
                raise RunError(f"no registered run {ref!r}; `iatros runs` lists them")
            return _entry(row)

    def promote(self, ref: str | Path, name: str, stage: str = "candidate") -> ModelVersion:
        """Make a run the next version of the named model."""
        run = self.find_run(ref)
        with Session(self.engine) as session, session.begin():
            latest = session.scalar(
                select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == name))
            row = ModelVersionRow(name=name, version=(latest or 0) + 1, run_id=run.id,
                                  stage=stage, created=datetime.now(timezone.utc))
            session.add(row)
            session.flush()
            return ModelVersion(row.name, row.version, row.stage, run, row.created)

    def model_versions(self, name: str | None = None) -> list[ModelVersion]:
        query = select(ModelVersionRow, RunRow).join(RunRow, ModelVersionRow.run_id == RunRow.id)
        if name:
            query = query.where(ModelVersionRow.name == name)
        query = query.order_by(ModelVersionRow.name, ModelVersionRow.version)
        with Session(self.engine) as session:
            return [ModelVersion(mv.name, mv.version, mv.stage, _entry(run), mv.created)
                    for mv, run in session.execute(query)]
