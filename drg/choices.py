from django.db import models


class Fund(models.TextChoices):
    EMPLOYEE = "employee", "职工医保 employee"
    RESIDENT = "resident", "城乡居民医保 resident"


class InstitutionCategory(models.TextChoices):
    GENERAL = "general", "综合 general"
    TCM = "tcm", "中医 tcm"
    SPECIALIST = "specialist", "专科 specialist"
    PRIMARY = "primary", "基层 primary"


class GroupKind(models.TextChoices):
    STABLE = "stable", "稳定病组 stable"
    UNSTABLE = "unstable", "非稳定病组 unstable"
    PER_DIEM = "per_diem", "床日付费 per_diem"


class DischargeStatus(models.TextChoices):
    NORMAL = "normal", "正常出院 normal"
    TRANSFER = "transfer", "转院 transfer"
    AGAINST_ADVICE = "against_advice", "自动出院 against_advice"
    DEATH = "death", "死亡 death"


class CaseCategory(models.TextChoices):
    SPECIAL_REVIEW = "special_review", "特病单议 special_review"
    PER_DIEM = "per_diem", "床日 per_diem"
    UNSTABLE = "unstable", "非稳定 unstable"
    HIGH = "high", "高倍率 high"
    LOW = "low", "低倍率 low"
    NORMAL = "normal", "正常 normal"


class ChangeSource(models.TextChoices):
    BUNDLE = "bundle", "bundle file"
    API = "api", "hospital API"
    ADMIN = "admin", "bureau admin"


class ParameterKind(models.TextChoices):
    """What a parameter revision puts in force (SETTLEMENT.md §6)."""

    SCHEME = "scheme", "支付方案 payment scheme"
    CATALOG = "catalog", "病组目录 catalog (groups, coefficients, TCM equivalents)"
    INSTITUTIONS = "institutions", "机构属性 institution attributes"


class RevisionStatus(models.TextChoices):
    DRAFT = "draft", "草稿 draft"
    APPROVED = "approved", "已批准 approved"
    REJECTED = "rejected", "已驳回 rejected"
