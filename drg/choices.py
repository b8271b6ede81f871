from django.utils.translation import gettext_lazy as _
from django.db import models


class Fund(models.TextChoices):
    EMPLOYEE = "employee", _("职工医保")
    RESIDENT = "resident", _("城乡居民医保")


class InstitutionCategory(models.TextChoices):
    GENERAL = "general", _("综合")
    TCM = "tcm", _("中医")
    SPECIALIST = "specialist", _("专科")
    PRIMARY = "primary", _("基层")


class GroupKind(models.TextChoices):
    STABLE = "stable", _("稳定病组")
    UNSTABLE = "unstable", _("非稳定病组")
    PER_DIEM = "per_diem", _("床日付费")


class DischargeStatus(models.TextChoices):
    NORMAL = "normal", _("正常出院")
    TRANSFER = "transfer", _("转院")
    AGAINST_ADVICE = "against_advice", _("自动出院")
    DEATH = "death", _("死亡")


class CaseCategory(models.TextChoices):
    SPECIAL_REVIEW = "special_review", _("特病单议")
    PER_DIEM = "per_diem", _("床日")
    UNSTABLE = "unstable", _("非稳定")
    HIGH = "high", _("高倍率")
    LOW = "low", _("低倍率")
    NORMAL = "normal", _("正常")


class ChangeSource(models.TextChoices):
    BUNDLE = "bundle", "bundle file"
    API = "api", "hospital API"
    ADMIN = "admin", "bureau admin"


class ParameterKind(models.TextChoices):
    """What a parameter revision puts in force (SETTLEMENT.md §6)."""

    SCHEME = "scheme", _("支付方案")
    CATALOG = "catalog", _("病组目录")
    INSTITUTIONS = "institutions", _("机构属性")


class RevisionStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    APPROVED = "approved", _("已批准")
    REJECTED = "rejected", _("已驳回")
