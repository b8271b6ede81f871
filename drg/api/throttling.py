"""Per-institution throttling: every key of one institution shares the institution's budget."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from drg.models import InstitutionCredential


class InstitutionRateThrottle(SimpleRateThrottle):
    """Scope ``institution``; the rate comes from ``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']``."""

    scope = "institution"

    def get_rate(self) -> str | None:
        # Read the settings at request time (the base class freezes them at import).
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"no throttle rate set for scope {self.scope!r}")

    def get_cache_key(self, request, view):
        credential = request.auth
        if not isinstance(credential, InstitutionCredential):
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": credential.institution_id}
