"""
The ``sestek`` connection form on the Airflow lines that build it from the hook (2.11 to 3.1; 3.2 and later read
the provider info's ``conn-fields``). The fields themselves are declared once, in
:mod:`airflow_provider_sestek.get_provider_info`.
"""

from __future__ import annotations

from typing import Any


def connection_form_widgets() -> dict[str, Any]:
    """
    The WTForms fields of the connection form's extras, by extra name.

    Airflow 3.0 and 3.1 install without Flask-AppBuilder and WTForms (they come with the FAB provider). On 3.1
    the UI stands in for both while it asks; on a bare 3.0 nothing can describe a field, so this returns no
    fields rather than raising: Airflow then still applies :func:`ui_field_behaviour` (the relabelled and
    hidden standard fields), where an ``ImportError`` would make it skip the hook's form customisation.
    """
    try:
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField
    except ImportError:  # a bare Airflow 3.0: the extras are set in the Extra JSON field
        return {}
    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    except ImportError:  # WTForms without FAB: the fields' own inputs (PasswordInput keeps "sensitive")
        text_widget: Any = None
        password_widget: Any = None
    else:
        text_widget, password_widget = BS3TextFieldWidget, BS3PasswordFieldWidget

    from airflow_provider_sestek.get_provider_info import CONN_FIELDS

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        secret = spec["schema"].get("format") == "password"
        field_class = PasswordField if secret else StringField
        widget_class = password_widget if secret else text_widget
        options: dict[str, Any] = {"description": spec["description"]}
        if widget_class is not None:
            options["widget"] = widget_class()
        widgets[name] = field_class(lazy_gettext(spec["label"]), **options)
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Relabelled, hidden and placeholder fields of the connection form (Airflow 2.11 - 3.1)."""
    from airflow_provider_sestek.get_provider_info import UI_FIELD_BEHAVIOUR

    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }
