"""
A model asset URI's refusal of user information never echoes it: a token pasted as the user part,
``Asset("sestek://<token>@host/tenant/model")``.

Airflow drops ``user:password@`` itself, but a lone ``user@`` reaches the ``sestek`` normalizer, which refuses
it (right) and echoed the whole URI, token included, in the error: it ends up in the DAG's import error, in
the UI and the logs. The refusal must name the rule without the user information.
"""

from __future__ import annotations

import warnings

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3
TOKEN = "ghp_s3cr3tT0kenPastedByMistake"


@pytest.mark.parametrize(
    "uri",
    [
        f"sestek://{TOKEN}@ai.example.com/acme/faq-bot",
        f"sestek://{TOKEN}:@ai.example.com:8443/acme/faq-bot",
        f"sestek://{TOKEN}@[::1]/acme/faq-bot?x=1",
    ],
    ids=["user", "user-empty-password", "ipv6-with-query"],
)
def test_refusal_of_user_information_does_not_echo_it(uri: str) -> None:
    from airflow.providers.common.compat.sdk import Asset

    if not AIRFLOW_3:
        # 2.11 only warns on a non-compliant URI, quoting the URI as given itself (Airflow's text, not ours):
        # the normalizer's part of the warning and the resulting URI must not carry the token.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = Asset(uri).uri + " ".join(str(w.message).partition("compliant:")[2] for w in caught)
        assert TOKEN not in text
        return
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS and "?" not in uri:
        # 3.0 drops user information itself, with a warning, before the normalizer sees the URI (the asset's
        # name, the URI as given, keeps it: Airflow's part, in the README).
        with pytest.warns(UserWarning, match="auth info"):
            asset = Asset(uri)
        assert TOKEN not in asset.uri
        return
    with pytest.raises(SestekValidationError) as info:
        Asset(uri)
    text = f"{info.value} {info.value!r} {info.value.value!r} {info.value.args!r}"
    assert info.value.field == "uri"
    assert TOKEN not in text
