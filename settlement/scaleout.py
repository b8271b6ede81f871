"""Scale-out of a clearing run (docs/scaleout.md): split the valuation of a pool by institution.

Valuation is independent per institution (readmissions pair stays of the same patient at the same
institution, SETTLEMENT.md §2.5), so a pool's cases can be valued in chunks of whole institutions
on several workers and the results put together exactly. A chunk hands back only small
per-institution aggregates (integer ten-thousandths of a point, integer fen, counts) and a digest
of its inputs; one reduce step turns them into the same `InstitutionTotals` the single-process
path builds and clears the pool with the same function.

Both paths build their aggregates and digests here, from the same frames, so they agree by
construction; the fingerprint is defined over per-institution digests in institution order, so it
does not depend on how (or whether) the pool was split.

Plain pandas/numpy/stdlib: no Django, no Celery (services.py and tasks.py do the I/O).
"""
from __future__ import annotations

import hashlib
import heapq
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

AGGREGATE_FIELDS = ("case_count", "points_u", "self_fen", "fund_fen", "total_fen", "tcm_fen")


class ScaleoutError(RuntimeError):
    """The chunks of a run do not add up (one missing, doubled or inconsistent)."""


# --- planning ---------------------------------------------------------------------------------------

def chunk_count(*, total_cases: int, chunks: int | None, min_cases: int, chunk_cases: int) -> int:
    """How many chunks to value a pool of `total_cases` in; 0 means in one process.

    `chunks` (the operator's --chunks) forces a split; otherwise a pool of at least `min_cases`
    is split into chunks of about `chunk_cases`, at least two.
    """
    if chunks is not None:
        if chunks < 1:
            raise ValueError(f"chunks must be ≥ 1, got {chunks}")
        return chunks
    if total_cases <= 0 or total_cases < min_cases:
        return 0
    return max(2, math.ceil(total_cases / max(1, chunk_cases)))


def partition_institutions(counts: Mapping[int, int], chunks: int) -> list[list[int]]:
    """Institutions into at most `chunks` groups of about equal case counts.

    Largest first, each to the currently lightest chunk (ties: lowest chunk number) — within 4/3
    of the best possible balance, and deterministic: the same counts give the same plan. An
    institution is never split (its readmissions must be valued together), so one institution
    larger than a chunk makes that chunk larger. Empty chunks are dropped; ids sorted per chunk.
    """
    n = max(1, min(chunks, len(counts)))
    loads = [(0, number) for number in range(n)]
    parts: list[list[int]] = [[] for _ in range(n)]
    for institution, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        load, number = heapq.heappop(loads)
        parts[number].append(int(institution))
        heapq.heappush(loads, (load + int(count), number))
    return [sorted(part) for part in parts if part]


def plan_chunks(counts: Mapping[int, int], *, chunks: int | None, min_cases: int, chunk_cases: int) -> list[dict]:
    """The run's chunk layout: [{"chunk": 0, "institutions": [ids], "cases": n}, …], or [] for
    a single-process run."""
    total = sum(counts.values())
    wanted = chunk_count(total_cases=total, chunks=chunks, min_cases=min_cases, chunk_cases=chunk_cases)
    if wanted == 0 or not counts:
        return []
    return [
        {"chunk": number, "institutions": part, "cases": sum(int(counts[i]) for i in part)}
        for number, part in enumerate(partition_institutions(counts, wanted))
    ]


# --- per-institution aggregates and digests ---------------------------------------------------------

def institution_aggregates(cases: pd.DataFrame, values: pd.DataFrame) -> list[dict]:
    """One dict per institution (ascending id) with the integer sums the clearing needs:
    case_count, points_u (ten-thousandths), self_fen, fund_fen (total − self pay), total_fen, tcm_fen.
    Python ints only (JSON-serialisable, exact)."""
    if cases.empty:
        return []
    frame = pd.DataFrame(
        {
            "institution": cases["institution"].to_numpy(),
            "points_u": values["points_u"].to_numpy(),
            "self_fen": cases["self_fen"].to_numpy(),
            "fund_fen": (cases["total_fen"] - cases["self_fen"]).to_numpy(),
            "total_fen": cases["total_fen"].to_numpy(),
            "tcm_fen": cases["tcm_fen"].to_numpy(),
        }
    )
    grouped = frame.groupby("institution", sort=True).agg(
        case_count=("points_u", "size"), points_u=("points_u", "sum"), self_fen=("self_fen", "sum"),
        fund_fen=("fund_fen", "sum"), total_fen=("total_fen", "sum"), tcm_fen=("tcm_fen", "sum"),
    )
    return [
        {"institution": int(institution), **{name: int(getattr(row, name)) for name in AGGREGATE_FIELDS}}
        for institution, row in zip(grouped.index, grouped.itertuples(index=False))
    ]


def institution_digests(cases: pd.DataFrame) -> dict[int, str]:
    """institution id -> sha256 of its case rows (every input column but the database id, dates as
    day numbers, rows by case_no). A row's hash depends on that row only, so an institution's
    digest is the same whether its cases were read with the whole pool or in a chunk."""
    if cases.empty:
        return {}
    # patient_key is a read-local integer code (factorized per frame): not an input, not hashed
    part = cases.drop(columns=["case_id", "patient_key"], errors="ignore").reset_index(drop=True)
    for column in ("admission_date", "discharge_date"):
        part[column] = pd.to_datetime(part[column]).to_numpy(dtype="datetime64[D]").astype(np.int64)
    # a row's hash depends on its values only, so rows are hashed as read and ordered afterwards;
    # categorize=False gives the same hashes without factorizing mostly-unique text first
    hashes = pd.util.hash_pandas_object(part, index=False, categorize=False).to_numpy()
    institution = part["institution"].to_numpy()
    # by institution, then case_no: numpy's fixed-width text sorts by code point, as Python's str does
    order = np.lexsort((part["case_no"].to_numpy(dtype=object).astype("U"), institution))
    hashes, institution = hashes[order], institution[order]
    cuts = np.flatnonzero(institution[1:] != institution[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(institution)]
    return {int(institution[s]): hashlib.sha256(hashes[s:e].tobytes()).hexdigest() for s, e in zip(starts, ends)}


def combined_digest(digests: Mapping[int, str]) -> str:
    """sha256 over "id:digest" lines in ascending institution id: a chunk's digest of its inputs, and
    the case part of a run's fingerprint."""
    digest = hashlib.sha256()
    for institution in sorted(digests):
        digest.update(f"{institution}:{digests[institution]}\n".encode())
    return digest.hexdigest()


# --- putting the chunks together --------------------------------------------------------------------

def collect_chunks(layout: Sequence[dict], results: Iterable) -> list[dict]:
    """Check that every planned chunk came back once (a redelivered chunk may come back twice, with
    the same digest), with institutions of its own plan only; return the results in chunk order."""
    planned = {int(entry["chunk"]): set(entry["institutions"]) for entry in layout}
    if not planned:
        raise ScaleoutError("the run has no chunk plan")
    by_chunk: dict[int, dict] = {}
    for result in results:
        if not isinstance(result, dict) or "chunk" not in result:
            raise ScaleoutError(f"a chunk returned {result!r}")
        number = int(result["chunk"])
        if result.get("skipped"):
            raise ScaleoutError(f"chunk {number} was skipped (the run was {result['skipped']})")
        if number not in planned:
            raise ScaleoutError(f"chunk {number} is not part of the run's plan")
        seen = by_chunk.get(number)
        if seen is not None and seen["digest"] != result["digest"]:
            raise ScaleoutError(f"chunk {number} came back twice with different inputs")
        by_chunk[number] = result
        strays = {entry["institution"] for entry in result["institutions"]} - planned[number]
        if strays:
            raise ScaleoutError(f"chunk {number} valued institutions outside its plan: {sorted(strays)[:10]}")
    missing = sorted(set(planned) - set(by_chunk))
    if missing:
        raise ScaleoutError(f"chunk(s) {', '.join(map(str, missing))} of {len(planned)} did not come back")
    return [by_chunk[number] for number in sorted(by_chunk)]
