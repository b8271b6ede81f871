"""Synthetic special-outpatient data (BENEFITS.md bundle files) for the demo, generate_bundle and the
bench: a special-disease catalog, listed patients with every category present, and claims through
the year — ordinary users, and heavy users (dialysis, transplant, cancer therapy) who reach the
disease caps, the critical-illness threshold and, with their inpatient stays, the shared annual cap.

Pure and seeded: numpy and pandas only; amounts as int fen until written as 2-decimal strings."""
from __future__ import annotations

import numpy as np
import pandas as pd

# code, name, class, annual_cap (yuan; None = the class default)
DISEASES = (
    ("MT001", "恶性肿瘤门诊放化疗", "I", None),
    ("MT002", "尿毒症透析", "I", 150000),
    ("MT003", "器官移植术后抗排异治疗", "I", 300000),
    ("MT004", "血友病", "I", None),
    ("MT005", "儿童孤独症康复", "I", 60000),
    ("MT006", "出生缺陷（先天性心脏病等）术后治疗", "I", None),
    ("MT101", "慢性阻塞性肺疾病", "II", None),
    ("MT102", "阿尔茨海默病", "II", None),
    ("MT103", "癫痫", "II", None),
    ("MT104", "帕金森病", "II", 8000),
    ("MT105", "精神分裂症", "II", None),
    ("MT106", "系统性红斑狼疮", "II", None),
)
HEAVY = ("MT002", "MT003", "MT001")
CATEGORY_P = {"ordinary": 0.84, "poor": 0.05, "subsistence": 0.04, "destitute": 0.02, "birth_defect": 0.05}


def diseases_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [(code, name, cls, "" if cap is None else f"{cap}.00") for code, name, cls, cap in DISEASES],
        columns=["code", "name", "class", "annual_cap"],
    )


def _money(fen: np.ndarray) -> list[str]:
    whole, cents = np.divmod(fen.astype("int64"), 100)
    return [f"{w}.{c:02d}" for w, c in zip(whole.tolist(), cents.tolist())]


def special_outpatient_frames(
    rng: np.random.Generator, *, year: int, inst_codes: np.ndarray, inst_levels: np.ndarray,
    patient_ids: np.ndarray, patient_employee: np.ndarray, claims: int, claim_prefix: str = "MT",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(patients.csv, special_diseases.csv, special_outpatient_claims.csv) as string frames, plus
    the internal columns ``_level`` and ``_category`` on the claims (dropped before writing)."""
    n_claims = max(10, int(claims))
    n_patients = max(5, min(len(patient_ids), n_claims // 10))
    chosen = rng.choice(len(patient_ids), size=n_patients, replace=False)
    pids = patient_ids[chosen]
    employee = patient_employee[chosen]
    categories = np.array(list(CATEGORY_P))
    category = rng.choice(categories, size=n_patients, p=np.array(list(CATEGORY_P.values())))
    category[: len(categories)] = categories  # every category present
    heavy = rng.random(n_patients) < 0.03
    heavy[len(categories): len(categories) + 2] = True  # a few heavy users whatever the size
    codes = np.array([d[0] for d in DISEASES])
    class_i = np.array([d[2] == "I" for d in DISEASES])
    disease = np.where(
        heavy, rng.choice(np.array(HEAVY), size=n_patients),
        np.where(rng.random(n_patients) < 0.25, rng.choice(codes[class_i], size=n_patients), rng.choice(codes[~class_i], size=n_patients)),
    )
    disease[category == "birth_defect"] = "MT006"
    # claims per patient: heavy users come every week or two; the others about monthly
    weight = np.where(heavy, 6.0, 1.0) * rng.gamma(2.0, 0.5, n_patients)
    owner = rng.choice(n_patients, size=n_claims, p=weight / weight.sum())
    owner[:n_patients] = np.arange(n_patients)  # every listed patient has a claim
    is_heavy = heavy[owner]
    claim_disease = disease[owner]
    second = (~is_heavy) & (rng.random(n_claims) < 0.08)  # some patients have a second, class II disease
    claim_disease = np.where(second, rng.choice(codes[~class_i], size=n_claims), claim_disease)
    class_of = dict(zip(codes, class_i))
    claim_class_i = np.array([class_of[c] for c in claim_disease])
    median = np.where(is_heavy, 14000.0, np.where(claim_class_i, 2600.0, 520.0))
    total = np.round(rng.lognormal(np.log(median), 0.55) * 100).astype("int64") + 100
    eligible = (total * rng.uniform(0.72, 1.0, n_claims)).astype("int64")
    day = rng.integers(0, 365, n_claims)
    dates = (np.datetime64(f"{year}-01-01") + day).astype("datetime64[D]").astype(str)
    where = rng.integers(0, len(inst_codes), n_claims)
    order = np.lexsort((rng.random(n_claims), day))
    claims_df = pd.DataFrame({
        "claim_no": [f"{claim_prefix}{year}{i:08d}" for i in range(1, n_claims + 1)],
        "institution_code": inst_codes[where][order],
        "fund": np.where(employee[owner], "employee", "resident")[order],
        "patient_id": pids[owner][order],
        "disease_code": claim_disease[order],
        "service_date": dates[order],
        "total_cost": _money(total[order]),
        "eligible_cost": _money(eligible[order]),
        "_level": inst_levels[where][order],
        "_category": category[owner][order],
        "_total": total[order],
        "_eligible": eligible[order],
    })
    listed = (category != "ordinary") | (rng.random(n_patients) < 0.7)  # an unlisted patient is ordinary
    patients_df = pd.DataFrame({
        "patient_id": pids[listed], "fund": np.where(employee[listed], "employee", "resident"), "category": category[listed],
    }).sort_values("patient_id").reset_index(drop=True)
    return patients_df, diseases_frame(), claims_df


def claim_file_frame(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims as special_outpatient_claims.csv (internal columns dropped)."""
    return claims[[c for c in claims.columns if not c.startswith("_")]]


def disease_caps_fen(class_caps: dict[str, int]) -> dict[str, int]:
    """Caps in fen of the synthetic catalog under the given class defaults (fen)."""
    return {code: (cap * 100 if cap is not None else class_caps[cls]) for code, _n, cls, cap in DISEASES}
