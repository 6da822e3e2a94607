"""``edgeface serve`` against a real server on a loopback port (TensorFlow blocked), the demo clip looped as its
camera: the REST API, its refusals, the token rule, concurrent load, and the web page in a real browser."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import BLOCK_TF, CLI_LAUNCHER, MEDIA, assert_one_line_error, clip_frame, needs_shared, run_cli

GALLERY = MEDIA / "gallery"
PROBES = MEDIA / "probes"
CLIP = MEDIA / "short_hamilton_clip.mp4"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = needs_shared


class Server:
    """``edgeface serve`` in a fresh interpreter with TensorFlow unimportable; the URL it printed."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", BLOCK_TF + CLI_LAUNCHER, "serve", "--port", "0",
                                         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        line = self.process.stdout.readline()
        match = re.search(r"http://\S+/", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"serve did not start: {line}{self.process.stderr.read()}")
        self.url = match.group(0)

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    served = Server(tmp, "--gallery", str(tmp / "people.sqlite"), "--source", str(CLIP), "--loop",
                    "--camera", "hall", "--stream-fps", "10")
    yield served
    err = served.stop()
    assert "Traceback" not in err, err


def photo(person: str, k: int = 0) -> tuple[str, bytes, str]:
    path = sorted((GALLERY / person).iterdir())[k]
    return path.name, path.read_bytes(), "image/jpeg"


def enrol(client: httpx.Client, name: str, *photos: tuple[str, bytes, str]) -> httpx.Response:
    return client.post(f"/api/people/{name}/faces", files=[("image", p) for p in photos])


def recognise(client: httpx.Client, path: Path) -> list[dict]:
    response = client.post("/api/recognize", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    return response.json()["faces"]


def test_api_enrols_recognises_verifies_and_forgets(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        deadline = time.time() + 60
        while client.get("/api/health").json()["camera"]["state"] == "starting" and time.time() < deadline:
            time.sleep(0.2)  # the camera loads its own model after the server answers
        assert client.get("/api/health").json()["camera"]["state"] == "running"
        first = enrol(client, "obama", photo("obama", 0), photo("obama", 1))
        assert first.status_code == 200 and len(first.json()["accepted"]) == 2, first.text
        assert enrol(client, "biden", photo("biden")).json()["templates"] == 1
        # the same photo again is skipped, not doubled
        assert enrol(client, "obama", photo("obama", 0)).json()["skipped"]
        people = {p["name"]: p["templates"] for p in client.get("/api/people").json()}
        assert people == {"obama": 2, "biden": 1}
        gallery = Path(client.get("/api/health").json()["gallery"]["path"])
        assert gallery.stat().st_mode & 0o777 == 0o600  # biometric data: the owner's alone
        thumbnail = client.get("/api/people/obama/face.jpg")
        assert thumbnail.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(thumbnail.content, np.uint8), cv2.IMREAD_COLOR).shape[0] >= 64

        assert [f["name"] for f in recognise(client, PROBES / "obama3.jpg")] == ["obama"]
        assert sorted(f["name"] for f in recognise(client, PROBES / "two_people.jpg")) == ["biden", "obama"]
        # multipart works as the raw body does
        multipart = client.post("/api/recognize", files={"image": ("p.jpg", (PROBES / "obama3.jpg").read_bytes())})
        assert [f["name"] for f in multipart.json()["faces"]] == ["obama"]

        same = client.post("/api/verify", files=[("image", photo("obama", 0)),
                                                 ("image", ("p.jpg", (PROBES / "obama3.jpg").read_bytes()))])
        assert same.json()["same"] is True, same.text
        other = client.post("/api/verify", files=[("image", photo("obama", 0)), ("image", photo("biden"))])
        assert other.json()["same"] is False and other.json()["score"] < other.json()["threshold"]

        # an enrolment refused with the reason for each photo: 422, nothing stored
        no_face = client.post("/api/people/nobody/faces", files={"image": ("grey.png", png(64, 64))})
        assert no_face.status_code == 422 and "no face found" in no_face.json()["rejected"]["grey.png"]
        assert "nobody" not in {p["name"] for p in client.get("/api/people").json()}

        assert client.patch("/api/people/biden", json={"name": "Joe B."}).status_code == 200
        assert sorted(f["name"] for f in recognise(client, PROBES / "two_people.jpg")) == ["Joe B.", "obama"]
        assert client.delete("/api/people/Joe B.").status_code == 200
        names = [f["name"] for f in recognise(client, PROBES / "two_people.jpg")]
        assert sorted(names, key=lambda n: n or "") == [None, "obama"]  # Biden is a stranger again
        assert client.delete("/api/people/Joe B.").status_code == 404


LEAD_FRAME = 100  # frames 90-210 of the clip show one actor alone, frontal, about 80 px wide


def arrivals(client: httpx.Client, name: str, seconds: float = 90) -> list[dict]:
    """Wait (the clip loops every 11 s) until the camera's events say ``name`` arrived; every event seen."""
    deadline = time.time() + seconds
    while True:
        events = client.get("/api/events", params={"limit": 1000}).json()["events"]
        if any(e["name"] == name and e["event"] == "arrived" for e in events) or time.time() > deadline:
            return events
        time.sleep(0.5)


def test_camera_names_enrolled_people_in_events_and_the_live_stream(server: Server) -> None:
    """The actor of frames 90-210, enrolled from one frame, is named by the camera loop; a second enrolment
    captures him from the live view itself."""
    _, jpeg = cv2.imencode(".jpg", clip_frame(LEAD_FRAME))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert enrol(client, "lead", ("frame.jpg", jpeg.tobytes(), "image/jpeg")).status_code == 200
        events = arrivals(client, "lead")
        named = [e for e in events if e["name"] is not None]
        assert named and {e["name"] for e in named} <= {"lead", "obama"}, events[:5]
        assert {e["camera"] for e in events} == {"hall"} and {e["source"] for e in events} == {str(CLIP)}
        # the live view holds exactly one face about half the time: try until the capture is accepted
        captured = None
        for _ in range(60):
            captured = client.post("/api/people/lead/capture")
            if captured.status_code == 200:
                break
            time.sleep(0.25)
        assert captured.status_code == 200 and captured.json()["accepted"][0].startswith("live frame"), captured.text
        assert {p["name"]: p["templates"] for p in client.get("/api/people").json()}["lead"] == 2
        page = client.get("/api/events", params={"limit": 2}).json()
        older = client.get("/api/events", params={"limit": 2, "before": page["next"]}).json()
        assert older["events"][0]["id"] < page["events"][-1]["id"]

        with client.stream("GET", "/api/events/stream", params={"after": 0}) as stream:
            first = next(line for line in stream.iter_lines() if line.startswith("data: "))
        assert '"event"' in first

        with client.stream("GET", "/api/stream.mjpeg") as stream:
            buffer = b""
            for chunk in stream.iter_bytes():
                buffer += chunk
                if buffer.count(b"\xff\xd9") >= 2:
                    break
        start = buffer.index(b"\xff\xd8")
        frame = cv2.imdecode(np.frombuffer(buffer[start:buffer.index(b"\xff\xd9") + 2], np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None and frame.shape[:2] == (360, 640)
        health = client.get("/api/health").json()
        assert health["camera"]["fps"] > 1 and health["gallery"]["people"] >= 1 and health["model"]


def png(width: int, height: int, pixels: bool = True) -> bytes:
    """A grey PNG, or only a header claiming ``width`` x ``height`` (a pixel bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body = zlib.compress(b"".join(b"\x00" + b"\x80" * width for _ in range(height))) if pixels else b"\x00" * 64
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_bad_requests_are_refused_with_one_line_each(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        huge = client.post("/api/recognize", content=b"\xff\xd8" + b"\x00" * 21_000_000)
        assert huge.status_code == 413 and "limit" in huge.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(25):
                yield b"\x00" * 1_000_000

        streamed = client.post("/api/recognize", content=chunks())
        assert streamed.status_code == 413
        bomb = client.post("/api/recognize", content=png(100_000, 100_000, pixels=False))
        assert bomb.status_code == 400 and "too large" in bomb.json()["error"]
        garbage = client.post("/api/recognize", content=b"not an image at all")
        assert garbage.status_code == 400 and "not a readable image" in garbage.json()["error"]
        assert client.post("/api/recognize").status_code == 400
        for name, needle in (("<img>", "not allowed"), ("_x", "not allowed"), ("unknown", "reserved"),
                             ("x" * 101, "limit")):
            bad = enrol(client, name, photo("obama"))
            assert bad.status_code == 400 and needle in bad.json()["error"], (name, bad.text)
            assert "\n" not in bad.json()["error"]
        assert client.post("/api/verify", files={"image": photo("obama")}).status_code == 400
        assert client.get("/api/events", params={"limit": 0}).status_code == 400
        assert client.get("/api/events", params={"limit": "many"}).json()["error"].startswith("limit:")
        assert client.patch("/api/people/obama", json={}).status_code == 400
        assert client.get("/api/nothing-here").json() == {"error": "Not Found"}
        assert client.get("/api/people", headers={"Host": "attacker.example"}).status_code == 403
        assert client.get("/api/health").json()["pending_requests"] == 0


def test_fifty_concurrent_recognitions_all_answer(server: Server) -> None:
    body = (PROBES / "obama3.jpg").read_bytes()

    def one(_: int) -> tuple[int, float]:
        t = time.perf_counter()
        response = httpx.post(server.url + "api/recognize", content=body, timeout=120)
        return response.status_code, time.perf_counter() - t

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert [code for code, _ in results] == [200] * 50
    latencies = sorted(s for _, s in results)
    # one worker answers them in turn: the last waits for the other 49, bounded by the queue, not unbounded
    assert latencies[-1] < 60, latencies


def test_a_network_bind_needs_a_private_token(tmp_path: Path) -> None:
    gallery = str(tmp_path / "g.sqlite")
    assert_one_line_error(run_cli("serve", "--gallery", gallery, "--host", "0.0.0.0", "--port", "0"),
                          "--token-file")
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789\n")
    token.chmod(0o644)
    assert_one_line_error(run_cli("serve", "--gallery", gallery, "--host", "0.0.0.0", "--token-file", str(token)),
                          "readable by others")
    token.chmod(0o600)
    served = Server(tmp_path, "--gallery", gallery, "--host", "0.0.0.0", "--token-file", str(token))
    url = served.url.replace("0.0.0.0", "127.0.0.1")
    try:
        assert httpx.get(url + "api/people").status_code == 401
        assert httpx.get(url + "api/people", headers={"Authorization": "Bearer wrong-token-0123456789"}
                         ).status_code == 401
        assert httpx.get(url).status_code == 401  # the page too
        good = {"Authorization": "Bearer s3cret-token-0123456789"}
        assert httpx.get(url + "api/people", headers=good).json() == []
        # the page's link carries the token once; the browser keeps it as an HttpOnly cookie
        with httpx.Client(base_url=url) as browser:
            landed = browser.get("/", params={"token": "s3cret-token-0123456789"}, follow_redirects=True)
            assert landed.status_code == 200 and "<title>edgeface</title>" in landed.text
            assert str(landed.url) == url and browser.get("/api/people").status_code == 200
    finally:
        served.stop()
    assert_one_line_error(run_cli("serve", "--gallery", gallery, "--source", str(tmp_path / "missing.mp4")),
                          "not found")


def capture_until(page, button: str, label: str, click: bool = True) -> None:
    """Capture from the live view until the preview offers ``button`` saying ``label`` (the clip's actor alone in
    view is a third of the loop), then click it unless told not to."""
    from playwright.sync_api import expect

    for _ in range(80):
        page.click("#enroll-capture")
        expect(page.locator("#preview")).to_be_visible(timeout=30_000)
        offered = page.locator(button)
        if offered.count() and label in offered.inner_text():
            page.wait_for_function("document.getElementById('preview-face').naturalWidth > 0")
            if click:
                offered.click()
            return
        page.click("#capture-cancel")
        page.wait_for_timeout(200)
    raise AssertionError(f"the preview never offered {label!r}: {page.inner_text('#preview')}")


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() != "true",
                    reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    """Chromium opens the page (token in the link), enrols Obama by upload (and sees why a photo is refused), sees
    him named in a probe and listed with his thumbnail, enrols the clip's actor from the live view and sees the
    camera name him."""
    from playwright.sync_api import expect, sync_playwright

    token = tmp_path / "token"
    token.write_text("browser-token-0123456789")
    token.chmod(0o600)
    served = Server(tmp_path, "--gallery", str(tmp_path / "g.sqlite"), "--source", str(CLIP), "--loop",
                    "--camera", "hall", "--token-file", str(token))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(served.url + "?token=browser-token-0123456789")
            expect(page.locator("#health")).to_contain_text("camera running", timeout=30_000)
            page.fill("#enroll-name", "obama")
            page.set_input_files("#enroll-files", [str(p) for p in sorted((GALLERY / "obama").iterdir())])
            page.click("#enroll-upload")
            expect(page.locator("#result")).to_contain_text("enrolled obama", timeout=30_000)
            person = page.locator("#people li[data-name='obama']")
            expect(person).to_contain_text("obama (2)")
            page.wait_for_function("document.querySelector(\"#people li[data-name='obama'] img\").naturalWidth > 0")
            # a refused photo shows why
            page.set_input_files("#enroll-files", [str(PROBES / "two_people.jpg")])
            page.click("#enroll-upload")
            expect(page.locator("#result")).to_contain_text("2 faces found, need exactly one", timeout=30_000)
            page.set_input_files("#recognize-file", str(PROBES / "obama3.jpg"))
            page.click("#recognize-form button")
            expect(page.locator("#recognize-result .recognized")).to_contain_text("obama", timeout=30_000)
            # the live view plays; the actor alone in it is enrolled by capture, then named by the camera
            page.wait_for_function("document.getElementById('live').naturalWidth === 640", timeout=30_000)
            page.fill("#enroll-name", "lead")
            capture_until(page, "#capture-confirm", "Enrol as lead")  # the preview shows his face first
            expect(page.locator("#result")).to_contain_text("enrolled lead: capture")
            expect(page.locator("#events li[data-name='lead']").first).to_contain_text("arrived", timeout=90_000)
            expect(page.locator("#events li[data-name='lead']").first).to_contain_text("(hall)")  # the camera's name
            # the same face under another name: the preview says who he is and enrols nothing until told
            page.fill("#enroll-name", "someone")
            capture_until(page, "#capture-add", "Add to lead", click=False)
            expect(page.locator("#preview-text")).to_contain_text("looks like lead")
            expect(page.locator("#capture-new")).to_contain_text("someone is a new person")
            # and the API refuses the held capture under the other name, naming him
            refused = page.evaluate("""async () => {
                const preview = await (await fetch('/api/capture', {method: 'POST'})).json();
                if (preview.name !== 'lead') return {skip: preview};
                const r = await fetch(`/api/people/someone/capture?capture=${preview.capture}`, {method: 'POST'});
                return {status: r.status, body: await r.json()};
            }""")
            if "skip" not in refused:
                # a new look of him is refused as a lookalike; a frame byte for byte enrolled (the clip loops) as
                # the very photo: both name him
                why = str(refused["body"]["rejected"])
                assert refused["status"] == 422 and ("looks like lead" in why or "already enrolled as lead" in why), \
                    refused
            page.click("#capture-add")
            expect(page.locator("#result")).to_contain_text("enrolled lead: capture")
            expect(page.locator("#people li[data-name='someone']")).to_have_count(0)
            # rename in the page
            page.once("dialog", lambda dialog: dialog.accept("barack"))
            page.locator("#people li[data-name='obama'] button", has_text="rename").click()
            expect(page.locator("#people li[data-name='barack']")).to_contain_text("barack (2)", timeout=30_000)
            page.screenshot(path=str(tmp_path / "serve.png"))
            browser.close()
    finally:
        err = served.stop()
    assert "Traceback" not in err, err
    assert (tmp_path / "serve.png").stat().st_size > 10_000
