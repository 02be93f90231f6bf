"""
The "Sestek AI" connection form in the real Airflow web UI, driven by headless Chromium.

Starts the emulator CLI and ``airflow api-server`` (see ``conftest.py``), logs in as ``admin``, adds a
connection through Admin -> Connections, checks the provider's labels, placeholders, hidden and secret
fields, saves ``docs/img/connection-form.png``, presses "Test" against the emulator with the right and
a wrong secret, and reads the saved connection back through the REST API.

The venv's Airflow picks the test: 3.x drives the React UI; 2.11 drives the Flask-AppBuilder form of
``airflow webserver`` (``make test-ui VENV=.venv-airflow-2.11.2 AIRFLOW_VERSION=2.11.2``; no screenshot).

Airflow 3.3 facts this test is written around (checked against the live DOM of 3.3.2):

* The only "Test" button is in the row of a *saved* connection in the list (the add/edit dialog has
  none), so the flow is: add + save, test from the list, edit + save, test again.
* Extra fields render ``<label for=X>`` next to ``<input id=element_NAME>``: the label is not associated
  with its input, so extra inputs are found through their field group (``role=group``) instead.
* Placeholders of ``ui-field-behaviour`` apply to the standard fields only; the React form renders no
  placeholder on ``conn-fields`` (a string field shows one only for ``schema.examples``). The extra
  fields are checked for label, description and input type (and a placeholder, if one is rendered,
  must be the provider's).
* 3.3.2's list "Test" button posts ``port: Number(null) == 0`` for a connection without a port, which
  the API answers with 400 "The host or port to test differs from the stored connection"
  (apache/airflow#73298). When that happens the test says so in a warning and retries with
  ``port: null``, the value the UI meant to send.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_sestek.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR

from .conftest import CHROMIUM, CHROMIUM_ARGS, AirflowUI, airflow_major

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response, Route, ViewportSize

pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "connection-form.png"
CONN_ID = "sestek_ui"
# Tall enough that the whole dialog (extra fields open) fits for its screenshot.
VIEWPORT: ViewportSize = {"width": 1400, "height": 1700}

# label shown in the form -> connection attribute
STANDARD_FIELDS = {"Base URL": "host", "Client ID": "login", "Client Secret": "password"}
EXTRA_FIELDS = {
    "Identity URL": "identity_url",
    "Tenant": "tenant",
    "Inference client id": "inference_client_id",
    "Inference client secret": "inference_client_secret",
    "Verify": "verify",
    "Timeout": "timeout",
    "Portal URL template": "portal_url",
}
SECRET_FIELDS = ("Client Secret", "Inference client secret")
HIDDEN_FIELDS = {"schema": "Schema", "port": "Port"}

TRAIN = ("train-client", "train-secret")
INFERENCE = ("inference-client", "inference-secret")
TENANT = "acme"
PORTAL = "https://portal.example.com/models/{model_id}"


# --- page helpers ------------------------------------------------------------------------------------


def dialog(page: Page, title: str) -> Locator:
    return page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=title, exact=True))


def section(dlg: Locator, name: str) -> None:
    """Open an accordion section of the connection dialog (only one is open at a time)."""
    from playwright.sync_api import expect

    trigger = dlg.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    expect(trigger).to_have_attribute("aria-expanded", "true")


def extra_field(dlg: Locator, label: str) -> Locator:
    """The field group of an extra field: its label does not point at its input (see module doc)."""
    return dlg.get_by_role("group").filter(has=dlg.page.locator("label").get_by_text(label, exact=True))


def standard_input(dlg: Locator, label: str) -> Locator:
    return dlg.get_by_label(label, exact=True)


def wait_for_toasts_to_clear(page: Page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("status")).to_have_count(0, timeout=20_000)


def toast(page: Page, title: str) -> Locator:
    return page.get_by_role("status").filter(has_text=title)


def connection_row(page: Page) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=CONN_ID, exact=True))


class ConnectionTester:
    """Presses the list's "Test" button; works around apache/airflow#73298 only when it bites."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.patched = False

    @staticmethod
    def _send_port_null(route: Route) -> None:
        body = route.request.post_data_json
        if isinstance(body, dict) and body.get("port") == 0:
            body["port"] = None
        route.continue_(post_data=json.dumps(body))

    def _press(self) -> Response:
        wait_for_toasts_to_clear(self.page)
        with self.page.expect_response(
            lambda r: r.url.endswith("/api/v2/connections/test") and r.request.method == "POST"
        ) as info:
            connection_row(self.page).get_by_role("button", name="Test Connection").click()
        return info.value

    def press(self) -> dict[str, Any]:
        response = self._press()
        if (
            response.status == 400
            and not self.patched
            and "differs from the stored connection" in response.text()
            and (response.request.post_data_json or {}).get("port") == 0
        ):
            warnings.warn(
                "Airflow UI 'Test' sent port=0 for a connection without a port and the API refused it "
                "(apache/airflow#73298); retrying with port=null",
                UserWarning,
                stacklevel=2,
            )
            self.page.route("**/api/v2/connections/test", self._send_port_null)
            self.patched = True
            response = self._press()
        assert response.status == 200, f"POST /api/v2/connections/test: {response.status} {response.text()}"
        result: dict[str, Any] = response.json()
        return result


# --- steps ---------------------------------------------------------------------------------------------


def login(page: Page, ui: AirflowUI) -> None:
    from playwright.sync_api import expect

    page.goto(ui.url + "/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill(ui.username)
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Admin")).to_be_visible()


def open_connections(page: Page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    expect(page).to_have_url(re.compile(r"/connections/?$"))
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible()


def check_form(dlg: Locator) -> None:
    """Relabelled, hidden, secret and extra fields as the provider info declares them."""
    from playwright.sync_api import expect

    placeholders = UI_FIELD_BEHAVIOUR["placeholders"]
    section(dlg, "Standard Fields")
    for label, attr in STANDARD_FIELDS.items():
        field = standard_input(dlg, label)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("name", attr)
        expect(field).to_have_attribute("placeholder", placeholders[attr])
    for attr, label in HIDDEN_FIELDS.items():
        expect(dlg.locator(f"[name='{attr}']")).to_have_count(0)
        expect(dlg.locator("label").get_by_text(label, exact=True)).to_have_count(0)
    # The original labels of the relabelled fields are gone too.
    for label in ("Host", "Login", "Password"):
        expect(dlg.locator("label").get_by_text(label, exact=True)).to_have_count(0)
    expect(standard_input(dlg, "Client Secret")).to_have_attribute("type", "password")
    expect(standard_input(dlg, "Client ID")).to_have_attribute("type", "text")

    section(dlg, "Extra Fields")
    for label, key in EXTRA_FIELDS.items():
        group = extra_field(dlg, label)
        expect(group).to_have_count(1)
        expect(group).to_be_visible()
        expect(group).to_contain_text(CONN_FIELDS[key]["description"])
        field = group.locator("input")
        expect(field).to_have_attribute("name", f"element_{key}")
        # 3.3 renders no placeholder here (see module doc); should a later UI render one, it is ours.
        assert field.get_attribute("placeholder") in (None, "", placeholders[key]), label
        expected_type = "password" if label in SECRET_FIELDS else "text"
        if expected_type == "text":
            # A plain string input may leave ``type`` out; it must not be a password input.
            assert field.get_attribute("type") in (None, "text"), label
        else:
            expect(field).to_have_attribute("type", "password")


def fill_form(dlg: Locator, emulator_url: str, client_secret: str) -> None:
    section(dlg, "Standard Fields")
    standard_input(dlg, "Base URL").fill(emulator_url)
    standard_input(dlg, "Client ID").fill(TRAIN[0])
    standard_input(dlg, "Client Secret").fill(client_secret)
    section(dlg, "Extra Fields")
    values = {
        "Identity URL": emulator_url,
        "Tenant": TENANT,
        "Inference client id": INFERENCE[0],
        "Inference client secret": INFERENCE[1],
        "Verify": "true",
        "Timeout": "30",
        "Portal URL template": PORTAL,
    }
    for label, value in values.items():
        extra_field(dlg, label).locator("input").fill(value)


def save_screenshot(page: Page, dlg: Locator) -> None:
    """Both sections of the filled dialog side by side (the accordion shows one at a time)."""
    shots = []
    for name in ("Standard Fields", "Extra Fields"):
        section(dlg, name)
        page.wait_for_timeout(400)  # let the accordion animation settle
        shots.append(base64.b64encode(dlg.screenshot(animations="disabled")).decode())
    images = "".join(f'<img src="data:image/png;base64,{shot}">' for shot in shots)
    sheet = page.context.new_page()
    try:
        sheet.set_viewport_size({"width": 2000, "height": 600})
        sheet.set_content(
            "<html><body style='margin:0'><div id='sheet' style='display:inline-flex;gap:16px;padding:16px;"
            f"background:#8d99ab;align-items:flex-start'>{images}</div></body></html>"
        )
        sheet.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        sheet.locator("#sheet").screenshot(path=str(SCREENSHOT))
    finally:
        sheet.close()


def save(page: Page, dlg: Locator, message: str) -> None:
    from playwright.sync_api import expect

    dlg.get_by_role("button", name="Save").click()
    expect(dlg).to_be_hidden()
    expect(toast(page, message)).to_be_visible()


def edit_secret(page: Page, emulator_url: str, secret: str) -> None:
    from playwright.sync_api import expect

    wait_for_toasts_to_clear(page)
    connection_row(page).get_by_role("button", name="Edit Connection").click()
    dlg = dialog(page, "Edit Connection")
    expect(dlg).to_be_visible()
    section(dlg, "Standard Fields")
    expect(standard_input(dlg, "Base URL")).to_have_value(emulator_url)
    # The stored secret comes back masked, never in the clear.
    expect(standard_input(dlg, "Client Secret")).to_have_value("***")
    standard_input(dlg, "Client Secret").fill(secret)
    save(page, dlg, "Connection has been successfully updated.")


def expect_test_result(page: Page, result: dict[str, Any], ok: bool, *fragments: str) -> None:
    from playwright.sync_api import expect

    assert result["status"] is ok, result
    for fragment in fragments:
        assert fragment in result["message"], result
    shown = toast(page, "Test Connection Successful" if ok else "Test Connection Failed")
    expect(shown).to_be_visible()
    for fragment in fragments:
        expect(shown).to_contain_text(fragment)


def rest_connection(ui: AirflowUI) -> dict[str, Any]:
    """The saved connection from the REST API: v2 with a Bearer token (3.x), v1 with basic auth (2.x)."""
    if ui.major >= 3:
        request = urllib.request.Request(
            f"{ui.url}/auth/token",
            data=json.dumps({"username": ui.username, "password": ui.password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            authorization = "Bearer " + json.load(response)["access_token"]
        url = f"{ui.url}/api/v2/connections/{CONN_ID}"
    else:
        authorization = "Basic " + base64.b64encode(f"{ui.username}:{ui.password}".encode()).decode()
        url = f"{ui.url}/api/v1/connections/{CONN_ID}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": authorization}), timeout=30) as r:
        body: dict[str, Any] = json.load(r)
    return body


def check_stored(ui: AirflowUI, emulator_url: str) -> None:
    stored = rest_connection(ui)
    assert stored["connection_id"] == CONN_ID
    assert stored["conn_type"] == "sestek"
    assert stored["host"] == emulator_url
    assert stored["login"] == TRAIN[0]
    assert stored["port"] is None and stored["schema"] in (None, "")
    assert TRAIN[1] not in json.dumps(stored) and INFERENCE[1] not in json.dumps(stored)
    extra = json.loads(stored["extra"])
    assert extra["identity_url"] == emulator_url
    assert extra["tenant"] == TENANT
    assert extra["inference_client_id"] == INFERENCE[0]
    assert extra["portal_url"] == PORTAL
    assert extra["timeout"] == "30"


@contextmanager
def browser_page(tmp_path: Path) -> Iterator[Page]:
    """A page in headless Debian Chromium; the UI state is kept in tmp_path when the block fails."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(30_000)
            try:
                yield page
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                (tmp_path / "failure.html").write_text(page.content())
                print(f"UI state at the failure: {tmp_path / 'failure.png'} and failure.html")
                raise
        finally:
            browser.close()


# --- the tests -------------------------------------------------------------------------------------------


@pytest.mark.skipif(airflow_major() < 3, reason="the React UI of Airflow 3 (this Airflow has the FAB UI)")
def test_connection_form_in_browser(
    ui_prerequisites: None, emulator_url: str, airflow_ui: AirflowUI, tmp_path: Path
) -> None:
    with browser_page(tmp_path) as page:
        run_flow(page, emulator_url, airflow_ui)
    check_stored(airflow_ui, emulator_url)


def run_flow(page: Page, emulator_url: str, ui: AirflowUI) -> None:
    from playwright.sync_api import expect

    login(page, ui)
    open_connections(page)

    page.get_by_role("button", name="Add Connection").click()
    dlg = dialog(page, "Add Connection")
    expect(dlg).to_be_visible()
    dlg.get_by_label("Connection ID").fill(CONN_ID)
    dlg.get_by_role("combobox", name="Connection Type").fill("Sestek")
    page.get_by_role("option", name="Sestek AI", exact=True).click()
    expect(dlg.get_by_text("Sestek AI", exact=True)).to_be_visible()

    check_form(dlg)
    fill_form(dlg, emulator_url, TRAIN[1])
    save_screenshot(page, dlg)
    save(page, dlg, "Connection has been successfully created.")
    expect(connection_row(page)).to_contain_text(emulator_url)

    tester = ConnectionTester(page)
    result = tester.press()
    expect_test_result(page, result, True, "token from", "accepted by the training API", "Inference client token")

    edit_secret(page, emulator_url, "wrong-secret")
    result = tester.press()
    expect_test_result(page, result, False, "invalid_client", "Client Secret")

    edit_secret(page, emulator_url, TRAIN[1])
    result = tester.press()
    expect_test_result(page, result, True, "accepted by the training API", "Inference client token")


@pytest.mark.skipif(airflow_major() >= 3, reason="the Flask-AppBuilder UI of Airflow 2 (this Airflow has the React UI)")
def test_connection_form_in_browser_airflow2(
    ui_prerequisites: None, emulator_url: str, airflow_ui: AirflowUI, tmp_path: Path
) -> None:
    with browser_page(tmp_path) as page:
        run_flow_airflow2(page, emulator_url, airflow_ui)
    check_stored(airflow_ui, emulator_url)


def run_flow_airflow2(page: Page, emulator_url: str, ui: AirflowUI) -> None:
    """
    The same checks on 2.11's server-rendered form: labels point at their inputs, every placeholder
    (extra fields too) is rendered, hidden fields stay in the DOM but invisible, and "Test" sits in the
    form itself, so the wrong secret is tried before anything is saved.
    """
    from playwright.sync_api import expect

    page.goto(ui.url + "/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.locator("#username").fill(ui.username)
    page.locator("#password").fill(ui.password)
    page.get_by_role("button", name="Sign In").click()
    page.get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("link", name="Connections", exact=True).click()
    expect(page).to_have_url(re.compile(r"/connection/list/"))
    page.locator("a[href^='/connection/add']").first.click()
    expect(page).to_have_url(re.compile(r"/connection/add"))

    page.locator("#conn_id").fill(CONN_ID)
    page.locator("#conn_type").select_option(label="Sestek AI")
    placeholders = UI_FIELD_BEHAVIOUR["placeholders"]
    for label, attr in STANDARD_FIELDS.items():
        field = page.get_by_label(label, exact=True)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("name", attr)
        expect(field).to_have_attribute("placeholder", placeholders[attr])
    for attr in HIDDEN_FIELDS:
        expect(page.locator(f"#{attr}")).to_be_hidden()
    for label, key in EXTRA_FIELDS.items():
        field = page.get_by_label(label, exact=True)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("name", f"extra__sestek__{key}")
        expect(field).to_have_attribute("placeholder", placeholders[key])
        expect(page.locator("tr").filter(has=field)).to_contain_text(CONN_FIELDS[key]["description"])
    for label in SECRET_FIELDS:
        expect(page.get_by_label(label, exact=True)).to_have_attribute("type", "password")

    values = {
        "Base URL": emulator_url,
        "Client ID": TRAIN[0],
        "Client Secret": "wrong-secret",
        "Identity URL": emulator_url,
        "Tenant": TENANT,
        "Inference client id": INFERENCE[0],
        "Inference client secret": INFERENCE[1],
        "Verify": "true",
        "Timeout": "30",
        "Portal URL template": PORTAL,
    }
    for label, value in values.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Test").click()
    expect(page.locator("div.alert").filter(has_text="invalid_client")).to_contain_text("Client Secret")

    page.get_by_label("Client Secret", exact=True).fill(TRAIN[1])
    page.get_by_role("button", name="Test").click()
    expect(page.locator("div.alert").filter(has_text="accepted by the training API")).to_contain_text(
        "Inference client token"
    )

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/connection/list/"))
    expect(page.get_by_role("row").filter(has_text=CONN_ID)).to_contain_text("sestek")
