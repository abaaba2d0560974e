"""Single sign-on: who a signed-in user is, and a real sign-in through Streamlit's st.login against
a real OpenID Connect provider process (tests/helpers/oidc_provider.py, built with Authlib)."""

import secrets

import pytest

import catdog_ui as ui
from catdog import access
from tests.helpers.browser import SLOW_MS, Dashboard, free_port, nav_link, new_page, settle
from tests.helpers.oidc_provider import OidcProvider

ISSUER = "https://sso.school.test"
TEACHER_EMAIL = "grace@school.test"
TEACHERS = frozenset({TEACHER_EMAIL})
FOLDER = "A folder on this computer"  # the Dataset page's source, for those who joined or signed in
SAVE_LIMITS = "Save the limits"  # the Class page's form, the teacher's alone
USERS = {
    "ada": {"sub": "u-ada", "name": "Ada Lovelace", "email": "ada@school.test", "email_verified": True},
    "grace": {"sub": "u-grace", "name": "Grace Hopper", "email": "Grace@School.test", "email_verified": True},
}


def claims(**changes) -> dict:
    return {"iss": ISSUER, "sub": "u-ada", "name": "Ada Lovelace", "email": "ada@school.test", **changes}


# --- who a signed-in user is ---------------------------------------------------------------------


def test_a_signed_in_user_is_a_student_known_by_issuer_and_subject():
    ada = ui.signed_in_identity(claims(), TEACHERS)
    assert ada.role is access.Role.STUDENT and ada.name == "Ada Lovelace"
    assert ada.id.startswith(ui.SIGNED_IN_PREFIX)
    assert ui.signed_in_identity(claims(email="ada.l@school.test", name="Ada L."), TEACHERS).id == ada.id
    assert ui.signed_in_identity(claims(sub="u-other"), TEACHERS).id != ada.id, "another person, same provider"
    assert ui.signed_in_identity(claims(iss="https://other.test"), TEACHERS).id != ada.id, "same sub elsewhere"
    assert ui.signed_in_identity(claims(name=None), TEACHERS).name == "ada@school.test"


def test_the_teacher_is_an_allow_listed_verified_email_or_the_password_holder():
    grace = claims(email="GRACE@school.test ", email_verified=True)
    assert ui.signed_in_identity(grace, TEACHERS).role is access.Role.TEACHER
    unverified = ui.signed_in_identity(claims(email="grace@school.test", email_verified=False), TEACHERS)
    assert unverified.role is access.Role.STUDENT, "an address the provider never checked is anyone's"
    unsaid = ui.signed_in_identity(claims(email="grace@school.test"), TEACHERS)
    assert unsaid.role is access.Role.STUDENT, "a provider that says nothing of the address has not checked it"
    assert ui.signed_in_identity(claims(), TEACHERS, unlocked=True).role is access.Role.TEACHER


# --- signing in for real ---------------------------------------------------------------------------


def expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture
def signed_in_server(tmp_path, tiny_data):
    """A dashboard whose secrets.toml names a provider process: no teacher password, Grace allow-listed."""
    port = free_port()
    client = {
        "client_id": "catdog",
        "client_secret": secrets.token_urlsafe(16),
        "redirect_uri": f"http://127.0.0.1:{port}/oauth2callback",
    }
    with OidcProvider(free_port(), client, USERS, tmp_path) as provider:
        # Top-level keys first: in TOML, everything after a [table] header belongs to it.
        (tmp_path / "secrets.toml").write_text(
            f'teacher_emails = ["{TEACHER_EMAIL}"]\n\n'
            f'[auth]\nredirect_uri = "{client["redirect_uri"]}"\ncookie_secret = "{secrets.token_urlsafe(32)}"\n\n'
            f'[auth.school]\nclient_id = "{client["client_id"]}"\nclient_secret = "{client["client_secret"]}"\n'
            f'server_metadata_url = "{provider.metadata_url}"\n'
        )
        env = {"CATDOG_DATA_DIR": str(tiny_data), "STREAMLIT_SECRETS_FILES": str(tmp_path / "secrets.toml")}
        with Dashboard(env, tmp_path / "streamlit.log", port=port) as dashboard:
            yield dashboard


def sign_in(page, url: str, username: str) -> None:
    """The school's button, the provider's form, and back on the dashboard."""
    page.goto(f"{url}/dataset")
    settle(page)
    page.get_by_role("button", name="Sign in with School").click()
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/", timeout=SLOW_MS)
    settle(page)


def test_students_and_the_allow_listed_teacher_sign_in_with_the_school(browser, signed_in_server, screenshots):
    url = signed_in_server.url
    student, teacher = new_page(browser), new_page(browser)  # two browser contexts: two people
    try:
        student.goto(f"{url}/dataset")
        settle(student)
        # With sign-in configured, a visitor not signed in is no one in particular: not the owner.
        expect()(student.get_by_role("radio", name=FOLDER)).to_be_disabled(timeout=SLOW_MS)

        sign_in(student, url, "ada")
        expect()(student.get_by_text("Signed in as Ada Lovelace (student)")).to_be_visible(timeout=SLOW_MS)
        nav_link(student, "Dataset").click()
        settle(student)
        expect()(student.get_by_role("radio", name=FOLDER)).to_be_enabled(timeout=SLOW_MS)
        nav_link(student, "Class").click()
        settle(student)
        expect()(student.get_by_text("Set by the teacher.", exact=False)).to_be_visible(timeout=SLOW_MS)
        expect()(student.get_by_role("button", name=SAVE_LIMITS)).to_have_count(0)
        student.screenshot(path=screenshots / "sign-in-student.png", full_page=True)

        sign_in(teacher, url, "grace")
        expect()(teacher.get_by_text("Signed in as Grace Hopper (teacher)")).to_be_visible(timeout=SLOW_MS)
        nav_link(teacher, "Dataset").click()
        settle(teacher)
        expect()(teacher.get_by_role("radio", name=FOLDER)).to_be_enabled(timeout=SLOW_MS)
        nav_link(teacher, "Class").click()
        settle(teacher)
        expect()(teacher.get_by_role("button", name=SAVE_LIMITS)).to_be_visible(timeout=SLOW_MS)
        teacher.screenshot(path=screenshots / "sign-in-teacher.png", full_page=True)

        student.reload()  # the sign-in outlives the session: Streamlit keeps it in a cookie
        settle(student)
        expect()(student.get_by_text("Signed in as Ada Lovelace (student)")).to_be_visible(timeout=SLOW_MS)
        student.get_by_role("button", name="Sign out").click()
        expect()(student.get_by_role("button", name="Sign in with School")).to_be_visible(timeout=SLOW_MS)
        expect()(student.get_by_text("Signed in as")).to_have_count(0)
    finally:
        student.close()
        teacher.close()
