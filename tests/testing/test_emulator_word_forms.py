"""
Answers match plural and verb endings of words in -y and -ie.
"""

from __future__ import annotations

import pytest
import requests

from airflow_provider_sestek.testing import SestekEmulator
from tests.testing._helpers import bearer, get_token, inference_path
from tests.testing.test_emulator_malformed_requests import _published


@pytest.mark.parametrize(
    ("document", "question"),
    [
        ("This site sets a cookie when you log in.", "Do you use cookies?"),
        ("New movies are added every Friday.", "Which movie?"),
        ("We reply within a day.", "Who replied?"),
        ("Visitors must carry a badge.", "What is carried?"),
    ],
    ids=["cookie-cookies", "movies-movie", "reply-replied", "carry-carried"],
)
def test_answers_match_plural_and_verb_endings_of_y_and_ie_words(
    sestek_emulator: SestekEmulator, http: requests.Session, document: str, question: str
) -> None:
    # The README promises matching "regardless of ... plural/verb endings": cookie/cookies and
    # reply/replied are the same words to a user, but were stemmed to different keys.
    unrelated = "Shipping is free for orders over 50 euros."
    _published(sestek_emulator, http, f"{unrelated}\n\n{document}\n".encode())
    token = get_token(http, sestek_emulator, inference=True)
    response = http.post(
        sestek_emulator.url + inference_path(sestek_emulator.tenant, "faq"),
        json={"inputs": [{"query": question}]},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"][0]["answer"] == document
