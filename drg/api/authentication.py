"""API-key authentication per institution: ``Authorization: Api-Key <prefix>.<secret>``.

The caller is an institution, not a Django user: ``request.user`` stays anonymous and
``request.auth`` is the :class:`~drg.models.InstitutionCredential`. Views read the institution from
``request.auth.institution`` and scope every query by it.
"""
from __future__ import annotations

import datetime as dt
import hmac

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from drg.models import InstitutionCredential
from drg.services import credential_hash, credential_split

KEYWORD = "Api-Key"
# last_used_at is refreshed at most this often, so authentication does not write on every request.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        try:
            keyword, _space, token = header.decode("ascii").partition(" ")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("接口密钥请求头无效。"))
        if keyword.lower() != KEYWORD.lower():
            return None
        parts = credential_split(token.strip())
        if parts is None:
            raise exceptions.AuthenticationFailed(_("接口密钥格式错误：应为 Api-Key <prefix>.<secret>。"))
        prefix, _secret = parts
        credential = (
            InstitutionCredential.objects.select_related("institution", "institution__region")
            .filter(prefix=prefix)
            .first()
        )
        # Compare a hash even when the prefix is unknown, so timing does not tell prefixes apart.
        expected = credential.key_hash if credential else "0" * 64
        if not hmac.compare_digest(expected, credential_hash(token.strip())) or credential is None:
            raise exceptions.AuthenticationFailed(_("接口密钥无效。"))
        if credential.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("该接口密钥已被吊销。"))
        now = timezone.now()
        if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
            InstitutionCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
            credential.last_used_at = now
        return AnonymousUser(), credential

    def authenticate_header(self, request) -> str:
        return KEYWORD


class HasInstitutionCredential(permissions.BasePermission):
    """The request carries a valid, unrevoked institution API key."""

    message = "An institution API key is required (Authorization: Api-Key <prefix>.<secret>)."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, InstitutionCredential)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "drg.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>` — a key issued by the bureau to one institution.",
        }
