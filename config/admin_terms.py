"""Django admin's own strings that Django's Chinese catalog does not translate (yet). Listed here so
that `makemessages` carries them into locale/zh_Hans, where they get their Chinese; the admin's
templates then show Chinese instead of falling back to English. Nothing imports this module."""
from django.utils.translation import gettext_noop

ADMIN_TERMS = [
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    gettext_noop("Model name"),
    gettext_noop("Error:"),
    gettext_noop("Forgotten your login credentials?"),
    gettext_noop("This object doesn’t have a change history. It probably wasn’t added via this admin site."),
]
