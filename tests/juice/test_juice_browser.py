"""Headless Chromium drives the JUICE page: keyboard and mouse votes, a vote
without reasons refused on the page, escaped prompts, and the report afterwards."""

import os
import shutil
import tempfile
import threading
import time

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install -y chromium chromium-driver)", allow_module_level=True
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs `pip install selenium`")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from emu_jax.juice import db  # noqa: E402
from emu_jax.juice.app import create_app  # noqa: E402
from emu_jax.juice.report import write_report  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="juice_chromium_")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ]:
        opts.add_argument(flag)
    # An explicit driver path: selenium must never try to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def live(make_study):
    path, s = make_study(raters_per_pair=3)
    server = make_server("127.0.0.1", 0, create_app(path), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path, s.tokens, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def _find(driver, by, value, tries=3):
    """find_element, retried on chromedriver's bare "unknown error" (e.g. "unhandled inspector error"),
    which it can raise while the page is busy with a click's handler; every named error (no such element,
    an unexpected alert, ...) is a subclass and still raises at once."""
    for i in range(tries):
        try:
            return driver.find_element(by, value)
        except WebDriverException as e:
            if type(e) is not WebDriverException or i == tries - 1:
                raise
            time.sleep(0.5)


def _text_now(driver, element_id):
    """The element's text, or "" while the page navigates: an element found in the old document can
    vanish before its text is read, which chromedriver reports as stale or as a bare "unknown error"
    ("Node with given id does not belong to the document"); named errors still raise."""
    try:
        return driver.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""
    except WebDriverException as e:
        if type(e) is not WebDriverException:
            raise
        return ""


def _wait_text(driver, element_id, text):
    """Wait for the next page to show `text` in the element."""
    WebDriverWait(driver, 15).until(lambda d: text in _text_now(d, element_id))


def _pair_id(driver):
    return int(_find(driver, By.NAME, "pair_id").get_attribute("value"))


def test_rater_completes_pairs_in_browser(browser, live):
    path, tokens, base = live
    conn = db.connect(path)
    prompts = {p["id"]: p["prompt"] for p in db.pairs(conn)}
    browser.get(f"{base}/r/{tokens[0]}")
    _wait_text(browser, "progress-text", "Pair 1 of 4")
    assert _find(browser, By.ID, "prompt").text == prompts[_pair_id(browser)]
    assert "Keyboard shortcuts" in _find(browser, By.TAG_NAME, "body").text

    # 1) Winners but no reasons: the page refuses to submit and says why; nothing is stored.
    _find(browser, By.ID, "quality-left").click()
    _find(browser, By.ID, "faithfulness-right").click()
    _find(browser, By.ID, "submit").click()
    msg = _find(browser, By.ID, "message")
    WebDriverWait(browser, 5).until(lambda d: msg.is_displayed())
    assert "Tick at least one reason for quality" in msg.text and "faithfulness" in msg.text
    assert "Pair 1 of 4" in _find(browser, By.ID, "progress-text").text
    assert db.progress(conn, 1) == (0, 4)

    # 2) Keyboard: 1 = quality left, a = pixel sharpness, q = faithfulness left, z = spatial, Enter.
    first = _pair_id(browser)
    body = _find(browser, By.TAG_NAME, "body")
    for key in "1aqz":
        body.send_keys(key)
    assert _find(browser, By.ID, "quality-reason-pixel_sharpness").is_selected()
    body.send_keys("\n")
    _wait_text(browser, "progress-text", "Pair 2 of 4")

    # 3) Mouse, with ties, for the remaining pairs; check the prompt shows literally each time.
    expected = {first: ("left", "left")}
    for k in range(2, 5):
        pid = _pair_id(browser)
        assert _find(browser, By.ID, "prompt").text == prompts[pid]
        assert len(browser.find_elements(By.TAG_NAME, "script")) == 1  # only juice.js; prompts add none
        _find(browser, By.ID, "quality-tie" if k == 2 else "quality-right").click()
        _find(browser, By.ID, "quality-reason-motion_smoothness").click()
        _find(browser, By.ID, "quality-reason-amount_of_motion").click()
        _find(browser, By.ID, "faithfulness-right").click()
        _find(browser, By.ID, "faithfulness-reason-temporal_alignment").click()
        _find(browser, By.ID, "submit").click()
        expected[pid] = ("tie" if k == 2 else "right", "right")
        _wait_text(browser, "progress-text", f"Pair {k + 1} of 4" if k < 4 else "all 4 pairs")
    # The prompt with markup was among those shown literally above (an executed alert would have
    # raised UnexpectedAlertPresentException in the next command).
    assert any("<script>" in p for p in prompts.values())

    # 4) Stored votes match the clicks, mapped to system identity; the report counts them.
    votes = {v["pair_id"]: v for v in db.all_votes(conn) if v["rater_id"] == 1}
    assert set(votes) == set(expected)
    for pid, (q_side, f_side) in expected.items():
        v = votes[pid]
        assert (v["quality_choice"], v["faithfulness_choice"]) == (q_side, f_side)
        a_left = bool(v["a_on_left"])
        want = "tie" if q_side == "tie" else ("a" if (q_side == "left") == a_left else "b")
        assert v["quality_winner"] == want
    assert votes[first]["quality_reasons"] == "pixel_sharpness"
    rep = write_report(path)
    q = rep["questions"]["quality"]
    assert rep["n_votes"] == 4 and q["n_pairs"] == 4
    assert q["reasons"]["motion_smoothness"]["total"] == 3 and q["reasons"]["pixel_sharpness"]["total"] == 1
    wins_a = sum(v["quality_winner"] == "a" for v in votes.values())
    assert q["outcomes"]["a"] == wins_a and q["outcomes"]["tie"] == 1


def test_videos_are_served_to_the_browser(browser, live):
    path, tokens, base = live
    browser.get(f"{base}/r/{tokens[1]}")
    _wait_text(browser, "progress-text", "Pair 1 of 4")
    # The page's own origin fetches both videos (status + bytes), as the <video> tags do.
    sizes = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all(['left', 'right'].map(s => fetch(document.getElementById('video-' + s).src)
            .then(r => r.ok ? r.arrayBuffer().then(b => b.byteLength) : -r.status))).then(done);""")
    assert len(sizes) == 2 and all(s > 100 for s in sizes)
    # Debian's Chromium decodes H.264: the looping <video> elements load metadata and have a size.
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script(
            "return ['left', 'right'].every(s => document.getElementById('video-' + s).readyState >= 1)"
        )
    )
    assert browser.execute_script("return document.getElementById('video-left').videoWidth") == 16
    assert browser.execute_script("return document.getElementById('video-left').loop") is True
