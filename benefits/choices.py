from django.db import models
from django.utils.translation import gettext_lazy as _


class PatientCategory(models.TextChoices):
    ORDINARY = "ordinary", _("普通参保人")
    POOR = "poor", _("建档立卡贫困人口")
    SUBSISTENCE = "subsistence", _("低保对象")
    DESTITUTE = "destitute", _("特困人员")
    BIRTH_DEFECT = "birth_defect", _("出生缺陷儿童困难家庭")


class DiseaseClass(models.TextChoices):
    I = "I", _("一类")
    II = "II", _("二类")


class ClaimSource(models.TextChoices):
    BUNDLE = "bundle", _("批量文件")
    API = "api", _("医院接口")
    ADMIN = "admin", _("医保局后台")


class Payer(models.TextChoices):
    BASIC = "basic", _("基本医保")
    CRITICAL = "critical", _("大病保险")
    ASSISTANCE = "assistance", _("医疗救助")
