"""Extra link from a training task to the model in the Sestek portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

#: XCom key under which the training task stores the portal URL of its model.
PORTAL_URL_XCOM_KEY = "sestek_portal_url"


class SestekModelLink(BaseOperatorLink):
    """
    "Sestek portal" link of a training task.

    It appears only when the connection's extra ``portal_url`` is a template such as
    ``https://portal.example.com/models/{model_id}``; the task renders it and stores the URL in XCom.
    """

    name = "Sestek portal"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        """
        The stored portal URL, or an empty string (no link) when the connection defines none.

        :param operator: the task's operator.
        :param ti_key: the task instance.
        """
        # Airflow 3 asks the live operator at the end of the task: no XCom round trip (and no
        # "XCom not found" noise when the connection has no portal). Airflow 2 asks in the webserver.
        known = getattr(operator, "sestek_portal_url", None)
        if known is not None:
            return str(known)
        value = XCom.get_value(key=PORTAL_URL_XCOM_KEY, ti_key=ti_key)
        return value if isinstance(value, str) else ""


def render_portal_url(template: str | None, model_id: str, tenant: str | None) -> str | None:
    """
    Fill a portal URL template; ``None`` when there is no template or it does not render.

    :param template: e.g. ``https://portal.example.com/{tenant}/models/{model_id}``.
    :param model_id: the model id.
    :param tenant: the tenant name.
    """
    if not template:
        return None
    try:
        return template.format(model_id=model_id, tenant=tenant or "")
    except (KeyError, IndexError, ValueError):
        return None
