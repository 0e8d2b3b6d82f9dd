"""Firestore specifics: the URL, the composite index the listing query needs, server timestamps."""

from __future__ import annotations

import json

import pytest

from kapsule.core.errors import ConfigError
from kapsule.infra.status import open_status_store
from kapsule.infra.status.firestore import LIST_ORDER, FirestoreStatusStore, parse_firestore_url
from kapsule.job.record import JobRecord, JobState
from kapsule.job.update import JobUpdate
from tests.support.emulators import FirestoreEmulator
from tests.support.paths import REPO

INDEXES = REPO / "firestore.indexes.json"


def test_urls() -> None:
    assert parse_firestore_url("firestore://my-proj/jobs") == ("my-proj", "jobs", "(default)")
    assert parse_firestore_url("firestore://my-proj/jobs?database=kapsule") == ("my-proj", "jobs", "kapsule")
    for bad in ("firestore://my-proj", "firestore:///jobs", "firestore://p/jobs/doc/sub", "sqlite:///x.db"):
        with pytest.raises(ConfigError):
            parse_firestore_url(bad)
    assert isinstance(open_status_store("firestore://p/jobs"), FirestoreStatusStore)  # no client built yet


def test_the_index_file_declares_the_listing_query() -> None:
    """Real Firestore refuses the owner listing without this composite index; keep them in step."""
    (index,) = json.loads(INDEXES.read_text())["indexes"]
    assert index["collectionGroup"] == "jobs"
    assert index["queryScope"] == "COLLECTION"
    fields = [(f["fieldPath"], f["order"]) for f in index["fields"]]
    assert fields == [("owner", "ASCENDING"), *LIST_ORDER]


def test_documents_hold_native_timestamps_and_updated_at_is_the_servers(
    firestore_emulator: FirestoreEmulator,
) -> None:
    """Stored as Firestore timestamps (so the console and queries order them), and ``updated_at`` is
    the server's: REQUEST_TIME has millisecond precision (documented), a client clock would not."""
    from google.cloud import firestore

    firestore_emulator.reset()
    store = open_status_store(f"firestore://{firestore_emulator.project}/jobs")
    record = store.create(JobRecord(owner="ana"))
    updated = store.update(record.id, JobUpdate(state=JobState.running, progress=0.25))
    snapshot = (
        firestore.Client(project=firestore_emulator.project).collection("jobs").document(record.id).get()
    )
    data = snapshot.to_dict()
    assert data["state"] == "running"
    assert data["created_at"] == record.created_at
    assert data["updated_at"] <= snapshot.update_time
    assert data["updated_at"].microsecond % 1000 == 0
    assert updated.updated_at == data["updated_at"]
