"""The audit log: one row per request that touches patient data or a model, each row carrying
the sha256 of the row before, so an edited or deleted row breaks the chain at a place
`verify` names. Rows are appended only; the sequence number is the primary key, so two writers
racing for the same place cannot both succeed (the loser retries on the new head).

With a master key configured, a `patient:ID` target is stored as `patient:TOKEN` (a keyed lookup
token) with the id sealed in `target_sealed`; the sealed id is part of the entry's hash, so the
chain verifies, and finds edits, without the key. Entries are shown with the id opened when the
key is configured (`entries`)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from iatros.access.patients import PatientFields
from iatros.access.tables import AuditRow
from iatros.crypto import EncryptionError
from iatros.errors import IatrosError

GENESIS = "0" * 64
FIELDS = ("seq", "time", "actor", "role", "action", "target", "model_version", "outcome",
          "status", "detail")
_RETRIES = 20


class AuditWriteError(IatrosError):
    """The audit entry could not be stored (so the request it records must fail)."""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str
    actor: str
    role: str
    action: str
    target: str
    model_version: str
    outcome: str
    status: int
    detail: str
    prev_hash: str
    hash: str
    target_sealed: str = ""


def entry_hash(prev_hash: str, values: dict[str, Any]) -> str:
    """sha256 over the previous hash and the row's fields in a fixed order (and the sealed
    patient id, when the entry has one: entries without one hash as they always did)."""
    fields = [values[f] for f in FIELDS]
    if values.get("target_sealed"):
        fields.append(values["target_sealed"])
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(*(getattr(row, f) for f in (*FIELDS, "prev_hash", "hash")),
                      target_sealed=row.target_sealed or "")


class AuditLog:
    """Append, verify and read the hash-chained log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: list[tuple[dict[str, Any], Future]] = []
        self._wake = threading.Condition()
        self._writer: threading.Thread | None = None
        self.patients = PatientFields(engine)

    def submit(self, *, actor: str, role: str, action: str, target: str = "",
               model_version: str = "", outcome: str = "ok", status: int = 200,
               detail: str = "") -> Future:
        """Queue one entry; the future resolves to the stored AuditEntry once it is on disk (or
        to AuditWriteError). Entries queued together are committed together (group commit: one
        transaction and one sync for many requests), in the order they were queued."""
        future: Future = Future()
        try:
            target, sealed = self.patients.audit_target(target[:200])
        except EncryptionError as e:
            future.set_exception(AuditWriteError(f"the audit entry cannot be stored: {e}"))
            return future
        values: dict[str, Any] = {"actor": actor[:120], "role": role[:20], "action": action[:120],
                                  "target": target[:200], "model_version": model_version[:200],
                                  "outcome": outcome[:40], "status": int(status),
                                  "detail": detail[:2000], "target_sealed": sealed}
        with self._wake:
            self._pending.append((values, future))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="iatros-audit")
                self._writer.start()
            self._wake.notify()
        return future

    def append(self, **fields: Any) -> AuditEntry:
        """Store one entry durably (waiting for it), or raise AuditWriteError."""
        return self.submit(**fields).result()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                group, self._pending = self._pending, []
            try:
                entries = self._commit([values for values, _ in group])
            except AuditWriteError as e:
                for _, future in group:
                    future.set_exception(e)
                continue
            for (_, future), entry in zip(group, entries, strict=True):
                future.set_result(entry)

    def _commit(self, group: list[dict[str, Any]]) -> list[AuditEntry]:
        for _ in range(_RETRIES):
            try:
                with self._lock, Session(self.engine) as session, session.begin():
                    head = session.execute(select(AuditRow.seq, AuditRow.hash)
                                           .order_by(AuditRow.seq.desc()).limit(1)).first()
                    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
                    entries = []
                    for values in group:
                        row_values = {**values, "seq": seq, "time": datetime.now(timezone.utc)
                                      .isoformat(timespec="microseconds")}
                        digest = entry_hash(prev, row_values)
                        session.add(AuditRow(**row_values, prev_hash=prev, hash=digest))
                        entries.append(AuditEntry(**{**row_values, "target_sealed":
                                                     row_values["target_sealed"] or ""},
                                                  prev_hash=prev, hash=digest))
                        seq, prev = seq + 1, digest
                return entries
            except IntegrityError:
                continue  # another process took these sequence numbers: retry on the new head
            except SQLAlchemyError as e:
                raise AuditWriteError(f"the audit log could not be written "
                                      f"({type(e).__name__})") from None
        raise AuditWriteError("the audit log could not be written (too much contention)")

    def entries(self, since: datetime | None = None, limit: int | None = None,
                newest_first: bool = False, reveal: bool = True) -> list[AuditEntry]:
        """Entries as stored; with `reveal` (and the master key configured), a patient target's
        sealed id opened for display."""
        query = select(AuditRow)
        if since is not None:
            query = query.where(AuditRow.time >= since.astimezone(timezone.utc).isoformat())
        query = query.order_by(AuditRow.seq.desc() if newest_first else AuditRow.seq)
        if limit:
            query = query.limit(limit)
        with Session(self.engine) as session:
            entries = [_entry(r) for r in session.scalars(query)]
        if not reveal:
            return entries
        return [replace(e, target=self.patients.shown_target(e.target, e.target_sealed))
                if e.target_sealed else e for e in entries]

    def _rows(self, batch: int = 5000) -> Iterator[AuditRow]:
        last = 0
        while True:
            with Session(self.engine) as session:
                rows = list(session.scalars(select(AuditRow).where(AuditRow.seq > last)
                                            .order_by(AuditRow.seq).limit(batch)))
            if not rows:
                return
            yield from rows
            last = rows[-1].seq

    def verify(self, expect_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """Walk the chain: every problem with the entry where it shows (edited, deleted or
        reordered rows); with `expect_head` (seq, hash from an earlier verify or export), also
        detect rows removed from the end."""
        problems: list[dict[str, Any]] = []
        prev_seq, prev_hash, count = 0, GENESIS, 0
        for row in self._rows():
            count += 1
            values = {**{f: getattr(row, f) for f in FIELDS}, "target_sealed": row.target_sealed}
            if row.seq != prev_seq + 1:
                problems.append({"seq": row.seq, "problem": f"entries {prev_seq + 1}-{row.seq - 1} "
                                 f"are missing (deleted)"})
            if row.prev_hash != prev_hash:
                problems.append({"seq": row.seq, "problem": "its link to the previous entry does "
                                 "not match (the previous entry was changed or removed)"})
            if entry_hash(row.prev_hash, values) != row.hash:
                problems.append({"seq": row.seq, "problem": "its content does not match its hash "
                                 "(the entry was edited)"})
            prev_seq, prev_hash = row.seq, row.hash
        if expect_head is not None:
            seq, digest = expect_head
            if prev_seq < seq:
                problems.append({"seq": prev_seq + 1, "problem": f"the log ends at entry {prev_seq} "
                                 f"but entry {seq} was seen before (entries removed from the end)"})
            else:
                with Session(self.engine) as session:
                    row = session.get(AuditRow, seq)
                if row is None or row.hash != digest:
                    problems.append({"seq": seq, "problem": "this entry's hash differs from the "
                                     "head recorded earlier"})
        return {"ok": not problems, "entries": count, "head": {"seq": prev_seq, "hash": prev_hash},
                "problems": problems}


def as_json_lines(entries: list[AuditEntry]) -> str:
    return "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in entries)


_FHIR_ACTION = {"read": "R", "create": "C", "update": "U", "delete": "D"}


def _audit_event(entry: AuditEntry) -> dict[str, Any]:
    outcome = "0" if entry.status < 400 else ("4" if entry.status < 500 else "8")
    verb = entry.action.split(" ")[0].lower()
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": f"iatros-audit-{entry.seq}",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "action": _FHIR_ACTION.get(verb, "E"), "recorded": entry.time, "outcome": outcome,
        "outcomeDesc": f"{entry.status} {entry.outcome}",
        "agent": [{"who": {"display": entry.actor}, "requestor": True,
                   "role": [{"text": entry.role}]}],
        "source": {"observer": {"display": "iatros serve"}},
        "extension": [{"url": "https://iatros.dev/fhir/audit-chain",
                       "extension": [{"url": "seq", "valueInteger": entry.seq},
                                     {"url": "prevHash", "valueString": entry.prev_hash},
                                     {"url": "hash", "valueString": entry.hash}]}],
    }
    entities = [{"what": {"display": entry.target}, "description": "patient or input digest"}] \
        if entry.target else []
    if entry.model_version:
        entities.append({"what": {"display": entry.model_version}, "description": "model version"})
    entities.append({"what": {"display": entry.action}, "description": "action"})
    event["entity"] = entities
    return event


def as_fhir_bundle(entries: list[AuditEntry]) -> dict[str, Any]:
    """A FHIR R4 collection Bundle of AuditEvents (validated with fhir.resources' R4B models)."""
    from fhir.resources.R4B.bundle import Bundle

    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:iatros-audit-{e.seq}", "resource": _audit_event(e)}
                        for e in entries]}
    Bundle.model_validate(bundle)
    return bundle
