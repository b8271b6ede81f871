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
    BUNDLE = "bundle", _("数据包文件")
    API = "api", _("医院接口")
    ADMIN = "admin", _("医保局工作台")
