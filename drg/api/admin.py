"""Admin for institution API keys (import this module from drg/admin.py to register it).

Keys are issued by bureau staff: "Add" (pick the institution and a name) or the action "Issue a new
key for the same institution and system". The raw key is shown once, in the confirmation message,
and never stored: only its SHA-256 is. "Revoke" stops a key at once (it stays listed, for audit).
Keys are never deleted. Each click makes one service call (drg.services).
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from drg.models import InstitutionCredential
from drg.services import credential_issue, credential_revoke


def _show_key(request, credential: InstitutionCredential, raw_key: str) -> None:
    messages.success(
        request,
        format_html(
            "API key for {} ({}): <code style='user-select:all'>{}</code> — copy it now, it will not be shown again. "
            "The hospital sends it as <code>Authorization: Api-Key {}</code>.",
            credential.institution.code, credential.name, raw_key, raw_key,
        ),
    )


@admin.register(InstitutionCredential)
class InstitutionCredentialAdmin(admin.ModelAdmin):
    list_display = ("prefix", "institution", "name", "state", "created_at", "created_by", "last_used_at", "revoked_at")
    list_filter = ("institution__region", "institution", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("prefix", "name", "institution__code", "institution__name")
    list_select_related = ("institution", "created_by")
    actions = ["issue_replacement", "revoke"]
    ordering = ("institution__code", "-created_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("institution", "name")
        return ("institution", "name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("institution", "name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the key's history stays

    @admin.display(description="state")
    def state(self, obj: InstitutionCredential) -> str:
        return "revoked" if obj.revoked_at else "active"

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing of an issued key is editable
        credential, raw_key = credential_issue(institution=obj.institution, name=obj.name, user=request.user)
        obj.pk = credential.pk
        obj.prefix, obj.key_hash, obj.created_at, obj.created_by = (
            credential.prefix, credential.key_hash, credential.created_at, credential.created_by,
        )
        obj._state.adding = False
        _show_key(request, credential, raw_key)

    @admin.action(description="Issue a new key for the same institution and system (shown once)", permissions=["add"])
    def issue_replacement(self, request, queryset):
        for old in queryset.select_related("institution"):
            credential, raw_key = credential_issue(institution=old.institution, name=old.name, user=request.user)
            _show_key(request, credential, raw_key)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for credential in queryset:
            if credential.revoked_at is None:
                credential_revoke(credential=credential, user=request.user)
                count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)


@admin.action(description="Issue an API key (shown once)")
def issue_api_key(modeladmin, request, queryset):
    """An action for the Institution admin: one new key per selected institution, named by the user."""
    for institution in queryset:
        credential, raw_key = credential_issue(institution=institution, name="issued from the institution list", user=request.user)
        _show_key(request, credential, raw_key)


__all__ = ["InstitutionCredentialAdmin", "issue_api_key"]
