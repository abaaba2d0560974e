"""Every page as a screen reader, a keyboard and a phone meet it: axe-core's WCAG 2.1 A and AA rules
in both themes and in the states a walk-through reaches, a keyboard-only walk-through, phone and
tablet viewports.

axe-core is vendored for the tests (tests/vendor/axe-core, `python assets/vendor/refresh.py`);
screenshots and each check's counts go to $CATDOG_SCREENSHOTS (default: screenshots/).
"""

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from catdog.runs.lessons import augmentation_experiment
from catdog.runs.store import RunStore
from catdog.settings import PRESETS
from tests.helpers.browser import SLOW_MS, assert_no_errors, heading, nav_link, new_page, serve, settle
from tests.helpers.support import ROOT, recorded, synthetic_image, wait_for

sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
expect = sync_api.expect

AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")
THEMES = ("light", "dark")
# The lesson's two arms over two seeds: (training, validation) accuracy per epoch.
LESSON_CURVES = [[(0.7, 0.6), (0.95, 0.64)], [(0.6, 0.6), (0.78, 0.72)]] * 2
LIVE_CURVE = [(0.6, 0.55), (0.7, 0.62)]
# Chromium's emulation of a phone and a tablet, touch included.
DEVICES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
    "tablet": {"viewport": {"width": 820, "height": 1180}, "is_mobile": True, "has_touch": True},
}
TOUCH_PX = 44
PASSWORD = "Kätzchen-42"
# What a finger presses; a toggle's switch is the label around its hidden checkbox.
TOUCH_TARGETS = (
    "button, a[href], summary, [data-baseweb='select'] > div, [data-baseweb='input'], label:has(input[type=checkbox])"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_data, trained_run_dir):
    """The dashboard over tiny data: the trained run, a finished lesson (its verdict) and a run training."""
    runs = tmp_path_factory.mktemp("a11y") / "runs"
    shutil.copytree(trained_run_dir, runs, ignore=shutil.ignore_patterns(".queue.lock"))
    store = RunStore(runs)
    for run_config, curve in zip(augmentation_experiment(PRESETS["posts"], epochs=2, seeds=2), LESSON_CURVES):
        recorded(store, run_config, curve)
    (run,) = [run for run in store.runs() if run.config.experiment is None]
    recorded(store, run.config, LIVE_CURVE, state="running")
    yield from serve(tmp_path_factory, tiny_data, runs)


@pytest.fixture(scope="module")
def class_url(tmp_path_factory, tiny_data):
    """A teacher's server (a password set): a visitor meets the sidebar's Join and Sign in forms."""
    yield from serve(
        tmp_path_factory,
        tiny_data,
        tmp_path_factory.mktemp("a11y-class") / "runs",
        CATDOG_TEACHER_PASSWORD=PASSWORD,
        CATDOG_DATASETS_DIR=str(tmp_path_factory.mktemp("a11y-class-datasets")),
    )


@pytest.fixture(scope="module")
def fresh_url(tmp_path_factory, tiny_data):
    """The dashboard over tiny data with no runs yet."""
    yield from serve(tmp_path_factory, tiny_data, tmp_path_factory.mktemp("a11y-keyboard") / "runs")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("a11y-photos")
    photo = folder / "my pet.jpg"
    synthetic_image(1, 777, size=(200, 150)).save(photo)
    album = folder / "album.zip"
    with zipfile.ZipFile(album, "w") as archive:
        for i in range(3):
            out = io.BytesIO()
            synthetic_image(i % 2, 780 + i).save(out, format="JPEG")
            archive.writestr(f"pets/pet-{i}.jpg", out.getvalue())
    return {"photo": photo, "zip": album}


def styled(page) -> None:
    """Waits until the app's stylesheet is in effect and no element is faded for a redraw: before,
    a page has Streamlit's own colours and sizes (axe once met Home's caption at Streamlit's 4.3:1,
    and the phone check its 28 px navigation links, while the screenshot just after showed
    assets/a11y.css's)."""
    page.wait_for_function(
        """() => getComputedStyle(document.documentElement).getPropertyValue('--catdog-a11y').trim() === '1'
            && !document.querySelector('[data-stale="true"]')""",
        timeout=SLOW_MS,
    )


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it is now, once styled."""
    styled(page)
    page.add_script_tag(path=AXE)
    return page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
            .then(result => result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ').split(' > ').slice(-2).join(' > ') + ': '
                    + n.failureSummary.split('\\n').slice(1, 2).join('').trim())
            })))""",
        WCAG_21_AA,
    )


def lasting_violations(page) -> list[dict]:
    """The violations axe finds at a state and again once the page has settled once more: what a
    reader meets, not a colour caught in the moment of a redraw."""
    first = axe_violations(page)
    if not any(violation["impact"] in BLOCKING for violation in first):
        return first
    settle(page)
    seen = {(violation["id"], tuple(violation["nodes"])) for violation in first}
    return [violation for violation in axe_violations(page) if (violation["id"], tuple(violation["nodes"])) in seen]


def upload(page, files: list[Path]) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(files)


def open_page(page, url: str, path: str) -> None:
    page.goto(f"{url}/{path}")
    settle(page)


def walk_through(page, url: str, photos: dict[str, Path]):
    """Brings the page to each state a walk-through reaches, yielding its name there."""
    open_page(page, url, "")
    yield "Home"
    open_page(page, url, "dataset")
    yield "Dataset"
    open_page(page, url, "augmentation")
    expect(page.locator('[data-testid="stMain"]').get_by_text("Best validation accuracy")).to_be_visible()
    yield "Augmentation, the lesson's verdict"
    open_page(page, url, "train")
    expect(page.get_by_role("heading", name=re.compile("^Live run"))).to_be_visible()
    yield "Train, a run training"
    open_page(page, url, "predict")
    upload(page, [photos["photo"]])
    expect(page.get_by_text("Grad-CAM: where it looked")).to_be_visible()
    settle(page)
    yield "Predict, a photo answered"
    open_page(page, url, "predict")
    upload(page, [photos["zip"]])
    expect(page.locator('[data-testid="stMain"]').get_by_text("3 photos")).to_be_visible()
    settle(page)
    yield "Predict, a zip's table"
    open_page(page, url, "class")
    expect(page.get_by_role("button", name="Save the limits")).to_be_visible()
    yield "Class, the teacher's limits form and the results"


def class_walk_through(page, url: str, student: str):
    """A visitor of a teacher's server, then the student who joins: the sidebar's forms, the Class page."""
    open_page(page, url, "")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_role("tab", name="Join")).to_be_visible()
    yield "Home, a visitor's Join form"
    sidebar.get_by_role("tab", name="Sign in").click()
    expect(sidebar.get_by_label("Your code")).to_be_visible()
    yield "Home, a visitor's Sign in form"
    open_page(page, url, "class")
    expect(page.get_by_text("Set by the teacher.")).to_be_visible()
    yield "Class, a visitor's read-only limits"
    join = sidebar.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Join"))
    sidebar.get_by_role("tab", name="Join").click()
    join.get_by_label("Your name").fill(student)
    join.get_by_role("button", name="Join").click()
    expect(sidebar.get_by_text("Keep your code")).to_be_visible()
    settle(page)
    yield "Class, a student who joined: the code shown once"


@pytest.mark.parametrize("theme", THEMES)
def test_no_serious_or_critical_axe_violation_on_any_page(browser, app_url, photos, screenshots, theme):
    check_axe(browser, walk_through, (app_url, photos), screenshots, theme, "axe")


@pytest.mark.parametrize("theme", THEMES)
def test_no_serious_or_critical_axe_violation_in_a_class(browser, class_url, screenshots, theme):
    check_axe(browser, class_walk_through, (class_url, f"Ada {theme}"), screenshots, theme, "axe-class")


def check_axe(browser, walk, args: tuple, screenshots: Path, theme: str, report: str) -> None:
    """axe-core at each state of the walk-through; its counts to the report's JSON, a screenshot each."""
    page = new_page(browser, color_scheme=theme)
    counts, problems = {}, []
    try:
        for state in walk(page, *args):
            assert_no_errors(page)
            found = lasting_violations(page)
            counts[state] = {v["id"]: {"impact": v["impact"], "nodes": v["nodes"]} for v in found}
            for violation in found:
                if violation["impact"] in BLOCKING:
                    nodes = "\n      ".join(violation["nodes"][:5])
                    problems.append(
                        f"{state} ({theme}): {violation['id']} ({violation['impact']}, "
                        f"{len(violation['nodes'])} nodes): {violation['help']}\n      {nodes}"
                    )
            name = re.sub(r"\W+", "-", state.lower()).strip("-")
            page.screenshot(path=screenshots / f"a11y-{theme}-{name}.png", full_page=True)
    finally:
        page.close()
        (screenshots / f"{report}-{theme}.json").write_text(json.dumps(counts, indent=1))
    assert not problems, "axe-core found serious or critical violations:\n" + "\n".join(problems)


def has_focus(target) -> bool:
    return target.evaluate("e => e === document.activeElement || e.contains(document.activeElement)")


def tab_to(page, target, backwards: bool = False, limit: int = 150) -> None:
    """Presses Tab (or Shift+Tab) until the target has the focus, as a keyboard user does."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if has_focus(target):
            return
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


def test_a_keyboard_alone_trains_a_model_and_gets_an_answer(browser, fresh_url, photos, screenshots):
    page = new_page(browser)
    # Playwright asks Chromium to hand it file dialogs when a page's first "filechooser" listener
    # arrives, without waiting for the answer: a key pressed just after could open a headless
    # dialog that closed at once ("cancel" on the input, seen now and then). Listening from the
    # start makes every dialog Playwright's.
    page.on("filechooser", lambda _: None)
    try:
        open_page(page, fresh_url, "")
        tab_to(page, nav_link(page, "Train"))
        page.keyboard.press("Enter")
        expect(heading(page, "Train")).to_be_visible(timeout=SLOW_MS)
        settle(page)
        tab_to(page, page.get_by_label("Epochs"))
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type("1")
        tab_to(page, page.get_by_role("button", name="Start training"))
        page.keyboard.press("Enter")
        last_run = page.get_by_role("heading", name="Last run: model1")
        # While the page redraws a run that ended, its live section and the new one may both show.
        expect(last_run).to_have_count(1, timeout=2 * SLOW_MS)
        expect(last_run).to_be_visible()
        announcer = page.locator("#catdog-announcer")
        expect(announcer).to_contain_text("Training finished: model1", timeout=SLOW_MS)
        page.screenshot(path=screenshots / "a11y-keyboard-trained.png", full_page=True)

        tab_to(page, nav_link(page, "Predict"), backwards=True)
        page.keyboard.press("Enter")
        expect(heading(page, "Predict")).to_be_visible(timeout=SLOW_MS)
        settle(page)
        tab_to(
            page,
            page.locator('[data-testid="stFileUploader"]')
            .get_by_role("button", name="Upload", exact=False)
            .and_(page.locator("button")),
        )
        with page.expect_file_chooser() as chooser:  # the system's file dialog: Playwright picks the file
            page.keyboard.press("Enter")
        chooser.value.set_files(photos["photo"])
        expect(page.get_by_role("heading", name=re.compile(r"^(cats|dogs)$"))).to_be_visible(timeout=SLOW_MS)
        expect(announcer).to_have_text(re.compile(r"^my pet\.jpg: (cats|dogs), \d+% sure$"))
        settle(page)
        assert_no_errors(page)
        page.screenshot(path=screenshots / "a11y-keyboard-answered.png", full_page=True)
    finally:
        page.close()


def in_view(page, box: dict) -> bool:
    viewport = page.viewport_size
    return box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] and box["width"] > 0


def test_on_a_phone_the_copies_stay_in_view_while_a_slider_moves(browser, app_url, screenshots):
    page = new_page(browser, **DEVICES["phone"])
    try:
        open_page(page, app_url, "augmentation")
        copies = page.locator(".st-key-aug-copies")
        slider = page.locator('[data-testid="stSlider"]').filter(has_text="Zoom")
        slider.scroll_into_view_if_needed()
        for box in (copies.bounding_box(), slider.bounding_box()):
            assert in_view(page, box), (box, "is out of the phone's view")
        assert slider.bounding_box()["y"] >= copies.bounding_box()["y"] + copies.bounding_box()["height"], (
            "the slider is under the copies"
        )
        track = slider.get_by_role("slider").bounding_box()
        row = slider.bounding_box()
        page.touchscreen.tap(row["x"] + row["width"] * 0.6, track["y"] + track["height"] / 2)
        expect(copies.get_by_text(re.compile("size ×")).first).to_be_visible(timeout=SLOW_MS)
        settle(page)
        assert in_view(page, copies.bounding_box()) and in_view(page, slider.bounding_box())
        page.screenshot(path=screenshots / "a11y-phone-augmentation-zoom.png")
    finally:
        page.close()


def test_on_a_phone_a_photo_taken_is_answered_in_view(browser, app_url, screenshots):
    page = new_page(browser, **DEVICES["phone"])
    try:
        open_page(page, app_url, "predict")
        page.get_by_text("Use the camera").tap()
        video = page.locator('[data-testid="stCameraInput"] video')
        wait_for(
            lambda: video.count() and video.evaluate("v => v.readyState >= 2"), SLOW_MS / 1000, message="the camera"
        )
        page.get_by_role("button", name="Take Photo").tap()  # Chromium's fake camera: a test pattern
        answer = page.get_by_role("heading", name=re.compile(r"^(cats|dogs)$"))
        expect(answer).to_be_visible(timeout=SLOW_MS)
        wait_for(lambda: in_view(page, answer.bounding_box()), SLOW_MS / 1000, message="the answer in view")
        page.screenshot(path=screenshots / "a11y-phone-predict-camera.png")
    finally:
        page.close()


def small_targets(page) -> list[str]:
    return page.locator(TOUCH_TARGETS).evaluate_all(
        """(targets, least) => targets.filter(t => t.checkVisibility({visibilityProperty: true}))
            .map(t => [t, t.getBoundingClientRect()])
            .filter(([t, box]) => box.width > 1)  // a skip link, 1 px until it has the focus
            .filter(([t, box]) => box.height < least || (t.tagName == 'BUTTON' && box.width < least))
            .map(([t, box]) => `${t.tagName} ${t.getAttribute('data-testid') || ''} "${(t.innerText
                || t.getAttribute('aria-label') || '').trim().slice(0, 30)}" ${Math.round(box.width)}×${Math.round(box.height)}`)""",
        TOUCH_PX,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_every_page_fits_phones_and_tablets_with_touch_sized_controls(browser, app_url, photos, screenshots, device):
    page = new_page(browser, **DEVICES[device])
    problems = []
    try:
        for state in walk_through(page, app_url, photos):
            assert_no_errors(page)
            styled(page)
            if page.locator('[data-testid="stMain"]').evaluate("main => main.scrollWidth > main.clientWidth"):
                problems.append(f"{state}: scrolls sideways")
            problems += [f"{state}: {target} is under {TOUCH_PX} px" for target in small_targets(page)]
            name = re.sub(r"\W+", "-", state.lower()).strip("-")
            page.screenshot(path=screenshots / f"a11y-{device}-{name}.png")
    finally:
        page.close()
    assert not problems, "\n".join(problems)
