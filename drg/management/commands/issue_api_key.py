"""Issue an API key for an institution from a script: the raw key alone on the last line of stdout.

    python manage.py issue_api_key --institution H1 [--region 331083] --name "HIS production"

The key is shown once and stored hashed, exactly as when issued in the admin (credential_issue),
recorded as issued by the batch system user.
"""
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from common.text import printable
from common.users import system_user
from drg.models import Institution
from drg.services import credential_issue

NAME_MAX = 100


class Command(BaseCommand):
    help = "Issue an institution API key; prints the raw key (shown once) alone on the last line of stdout."

    def add_arguments(self, parser):
        parser.add_argument("--institution", required=True, help="the institution's code")
        parser.add_argument("--region", help="the region's code (needed when several regions have this institution code)")
        parser.add_argument("--name", required=True, help="what system uses the key, e.g. 'HIS production'")

    def handle(self, *args, institution, region, name, **options):
        name = name.strip()
        if not name or len(name) > NAME_MAX or not name.isprintable():
            raise CommandError(_("--name 须为 1–%(max)d 个可打印字符") % {"max": NAME_MAX})
        matches = Institution.objects.filter(code=institution).select_related("region")
        if region is not None:
            matches = matches.filter(region__code=region)
        found = list(matches.order_by("region__code")[:20])
        if not found:
            where = _("（统筹区 %(region)s）") % {"region": printable(region)} if region is not None else ""
            raise CommandError(_("未知机构编码 %(code)s%(where)s") % {"code": printable(institution), "where": where})
        if len(found) > 1:
            regions = ", ".join(i.region.code for i in found)
            raise CommandError(
                _("机构编码 %(code)s 在多个统筹区存在（%(regions)s），请用 --region 指定") % {"code": printable(institution), "regions": regions}
            )
        target = found[0]
        credential, raw_key = credential_issue(institution=target, name=name, user=system_user())
        self.stdout.write(
            _("已为 %(region)s/%(code)s %(inst)s 签发 API 密钥 “%(name)s”（前缀 %(prefix)s）。密钥只显示这一次，仅保存其哈希：")
            % {"region": target.region.code, "code": target.code, "inst": target.name, "name": name, "prefix": credential.prefix}
        )
        self.stdout.write(raw_key)
