"""The one registry: finished runs and promoted model versions, in SQLite or PostgreSQL."""

from __future__ import annotations

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
    select,
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


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    stage: str
    run: RunEntry
    created: datetime


def _entry(row: RunRow) -> RunEntry:
    return RunEntry(row.id, row.path, row.task, row.model, row.seed, row.created, row.metric,
                    row.value, row.ci_low, row.ci_high, row.n)


class Registry:
    """Index of runs and model versions behind a SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(url)
            Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, ModuleNotFoundError) as e:
            raise ConfigError(f"cannot open the registry database {url}: {e}. Check "
                              f"IATROS_DATABASE_URL (PostgreSQL needs `pip install "
                              f"iatros[postgres]`).") from e

    def register_run(self, path: Path, task: str, model: str, seed: int, metric: str,
                     summary: dict[str, Any] | None, created: datetime | None = None) -> RunEntry:
        """Add (or refresh) a finished run with its headline metric {value, ci95, n}."""
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
