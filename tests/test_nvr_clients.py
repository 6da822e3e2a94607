"""``edgeface serve`` as the face server NVR software already calls: the real ``deepstack-python`` (what Home
Assistant's DeepStack face integration uses) and the real CompreFace Python SDK, unmodified, enrol the demo people,
name them in a photo and delete them; Double Take's own requests are replayed as its detectors send them; and the
one enrolment rule (a face that is already someone else is refused) holds through every door."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import MEDIA, Served, needs_shared

pytestmark = needs_shared
GALLERY, PROBES = MEDIA / "gallery", MEDIA / "probes"
TWO = PROBES / "two_people.jpg"  # Obama left, Biden right
TOKEN = "nvr-token-0123456789abcdef"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("nvr")
    token = tmp / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    server = Served(tmp, "--gallery", str(tmp / "people.sqlite"), "--host", "127.0.0.1", "--token-file", str(token))
    yield server
    code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err


def port_of(server: Served) -> int:
    return int(server.host.rsplit(":", 1)[1])


def people(server: Served) -> list[str]:
    reply = httpx.get(server.url + "api/people", headers={"Authorization": f"Bearer {TOKEN}"})
    return [p["name"] for p in reply.json() if p["templates"]]


def test_deepstack_python_enrols_names_and_deletes(served: Served) -> None:
    from deepstack.core import DeepstackException, DeepstackFace

    face = DeepstackFace(ip="127.0.0.1", port=port_of(served), api_key=TOKEN, timeout=60)
    for person in ("obama", "biden"):
        for photo in sorted((GALLERY / person).iterdir()):
            assert face.register(person, photo.read_bytes()) == "face added"
    assert sorted(face.get_registered_faces()) == ["biden", "obama"]
    predictions = sorted(face.recognize(TWO.read_bytes()), key=lambda p: p["x_min"])
    assert [p["userid"] for p in predictions] == ["obama", "biden"]
    # named faces sit at or above 0.60 (the model's threshold on the clients' scale), as the integration expects
    assert all(0.6 <= p["confidence"] <= 1 and p["x_max"] > p["x_min"] >= 0 for p in predictions), predictions
    detected = face.detect(TWO.read_bytes())
    assert len(detected) == 2 and all(0 < p["confidence"] <= 1 for p in detected)

    # a photo of Obama offered as someone else is refused with his name, in the client's own error
    with pytest.raises(DeepstackException, match="looks like obama"):
        face.register("barry", (PROBES / "obama3.jpg").read_bytes())
    # a min_confidence above a match's confidence makes it unknown; edgeface never names below its threshold
    strict = DeepstackFace(ip="127.0.0.1", port=port_of(served), api_key=TOKEN, timeout=60, min_confidence=0.999)
    assert {p["userid"] for p in strict.recognize(TWO.read_bytes())} == {"unknown"}
    # the key is checked: a wrong api_key is refused (401), as is no key at all
    with pytest.raises(DeepstackException, match="401"):
        DeepstackFace(ip="127.0.0.1", port=port_of(served), api_key="wrong", timeout=60).recognize(TWO.read_bytes())
    with pytest.raises(DeepstackException, match="401"):
        DeepstackFace(ip="127.0.0.1", port=port_of(served), timeout=60).recognize(TWO.read_bytes())

    # malformed requests: one line each, in DeepStack's shape
    photo = {"image": ("two.jpg", TWO.read_bytes(), "image/jpeg")}
    for data, needle in (({"api_key": TOKEN}, "userid is required"),
                         ({"api_key": TOKEN, "userid": "x", "min_confidence": "abc"}, None)):
        bad = httpx.post(served.url + "v1/vision/face/register", data=data, files=photo) if needle else \
            httpx.post(served.url + "v1/vision/face/recognize", data=data, files=photo)
        body = bad.json()
        assert bad.status_code == 400 and body["success"] is False, body
        assert (needle or "min_confidence must be a number") in body["error"]
    # deepstack-python has no delete: DeepStack's documented route, as Double Take sends it
    deleted = httpx.post(served.url + "v1/vision/face/delete", data={"userid": "biden", "api_key": TOKEN})
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    after = sorted(face.recognize(TWO.read_bytes()), key=lambda p: p["x_min"])
    assert [p["userid"] for p in after] == ["obama", "unknown"] and after[1]["confidence"] == 0
    assert httpx.post(served.url + "v1/vision/face/delete", data={"userid": "obama", "api_key": TOKEN}).json()[
        "success"] is True
    assert face.get_registered_faces() == []


def test_compreface_sdk_enrols_names_and_deletes(served: Served, tmp_path: Path) -> None:
    from compreface import CompreFace

    compreface = CompreFace(domain="http://127.0.0.1", port=str(port_of(served)),
                            options={"limit": 0, "det_prob_threshold": 0.5, "prediction_count": 1})
    recognition = compreface.init_face_recognition(TOKEN)
    faces, subjects = recognition.get_face_collection(), recognition.get_subjects()
    ids = {}
    for person in ("obama", "biden"):
        for photo in sorted((GALLERY / person).iterdir()):
            added = faces.add(image_path=str(photo), subject=person)
            assert added["subject"] == person, added
            ids.setdefault(person, []).append(added["image_id"])
    assert sorted(subjects.list()["subjects"]) == ["biden", "obama"]
    listed = faces.list()
    assert listed["total_elements"] == 4 and {f["image_id"] for f in listed["faces"]} == {*ids["obama"], *ids["biden"]}

    result = sorted(recognition.recognize(image_path=str(TWO))["result"], key=lambda r: r["box"]["x_min"])
    best = [r["subjects"][0] for r in result]
    assert [s["subject"] for s in best] == ["obama", "biden"] and all(s["similarity"] >= 0.6 for s in best), result
    ranked = recognition.recognize(image_path=str(TWO), options={"prediction_count": 2})["result"]
    assert all(len(r["subjects"]) == 2 and r["subjects"][0]["similarity"] >= 0.6 > r["subjects"][1]["similarity"]
               for r in ranked), ranked

    # refusals in CompreFace's shape: several faces, a look-alike, no face at all (code 28, which clients test for)
    assert "2 faces found" in faces.add(image_path=str(TWO), subject="crowd")["message"]
    assert "looks like obama" in faces.add(image_path=str(PROBES / "obama3.jpg"), subject="barry")["message"]
    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    assert recognition.recognize(image_path=str(blank)) == {"message": "No face is found in the given image",
                                                            "code": 28}

    # one face, then a subject's faces, then subjects: deleted as the SDK asks
    assert faces.delete(ids["biden"][0]) == {"image_id": ids["biden"][0], "subject": "biden"}
    assert faces.delete_all(subject="biden") == {"deleted": 1}
    result = sorted(recognition.recognize(image_path=str(TWO))["result"], key=lambda r: r["box"]["x_min"])
    assert result[0]["subjects"][0]["subject"] == "obama" and result[1]["subjects"][0]["similarity"] < 0.6
    assert subjects.add("guest") == {"subject": "guest"}
    assert subjects.update("guest", "visitor") == {"updated": True}
    assert subjects.delete("visitor") == {"subject": "visitor"}
    assert subjects.delete_all() == {"deleted": 2}  # obama and biden (no faces left)
    assert subjects.list()["subjects"] == [] and people(served) == []

    # the key is the service's token
    wrong = CompreFace(domain="http://127.0.0.1", port=str(port_of(served))).init_face_recognition("wrong")
    assert "token" in wrong.get_subjects().list()["error"]


def test_double_takes_requests_are_answered_as_it_reads_them(served: Served) -> None:
    """Double Take's CompreFace and DeepStack detectors: train, recognise (with its det_prob_threshold 0.8), remove,
    replayed as it sends them; its own normalisation (match from confidence 60) then names Obama and Biden."""
    key = {"x-api-key": TOKEN}
    with httpx.Client(base_url=served.url, timeout=60) as client:
        for person in ("obama", "biden"):
            photo = sorted((GALLERY / person).iterdir())[0]
            trained = client.post("api/v1/recognition/faces", params={"subject": person}, headers=key,
                                  files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
            assert trained.status_code == 201, trained.text
        reply = client.post("api/v1/recognition/recognize", params={"det_prob_threshold": 0.8}, headers=key,
                            files={"file": ("two.jpg", TWO.read_bytes(), "image/jpeg")})
        assert reply.status_code == 200, reply.text
        matches = {face["subjects"][0]["subject"].lower(): face["subjects"][0]["similarity"] * 100
                   for face in reply.json()["result"] if face["subjects"]}
        assert {name for name, confidence in matches.items() if confidence >= 60} == {"obama", "biden"}
        # the same image as base64 JSON, as the SDKs may send it
        import base64

        as_json = client.post("api/v1/recognition/recognize", headers=key,
                              json={"file": base64.b64encode(TWO.read_bytes()).decode()})
        assert len(as_json.json()["result"]) == 2
        # DeepStack's detector: the image and api_key as form fields
        deepstack = client.post("v1/vision/face/recognize", data={"api_key": TOKEN},
                                files={"image": ("two.jpg", TWO.read_bytes(), "image/jpeg")})
        names = {p["userid"] for p in deepstack.json()["predictions"]
                 if p["userid"] != "unknown" and p["confidence"] * 100 >= 60}
        assert deepstack.json()["success"] is True and names == {"obama", "biden"}
        for person in ("obama", "biden"):
            removed = client.delete("api/v1/recognition/faces", params={"subject": person}, headers=key)
            assert removed.json() == {"deleted": 1}
        assert people(served) == []


def test_a_face_already_enrolled_is_refused_unless_it_is_a_new_person(served: Served) -> None:
    """The one enrolment rule through edgeface's own API: Obama's photo under another name is refused with his name;
    ``new_person=true`` enrols it anyway; adding it to him is fine."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=served.url, timeout=60, headers=auth) as client:
        obama = GALLERY / "obama" / "obama.jpg"
        assert client.post("api/people/obama/faces", content=obama.read_bytes(),
                           headers={"Content-Type": "image/jpeg"}).status_code == 200
        probe = (PROBES / "obama3.jpg").read_bytes()
        refused = client.post("api/people/lookalike/faces", content=probe, headers={"Content-Type": "image/jpeg"})
        assert refused.status_code == 422
        assert "looks like obama" in refused.json()["rejected"]["upload"] and "lookalike" not in people(served)
        assert client.post("api/people/obama/faces", content=probe,
                           headers={"Content-Type": "image/jpeg"}).status_code == 200
        forced = client.post("api/people/lookalike/faces", params={"new_person": "true"},
                             content=(GALLERY / "obama" / "obama2.jpg").read_bytes(),
                             headers={"Content-Type": "image/jpeg"})
        assert forced.status_code == 200 and "lookalike" in people(served)
        # a name the CLI refuses is refused with its words, '/' included (not "Not Found")
        slash = client.post("api/people/a%2Fb/faces", content=probe, headers={"Content-Type": "image/jpeg"})
        assert slash.status_code == 400 and "name" in slash.json()["error"] and "Not Found" not in slash.text
        for name in ("obama", "lookalike"):
            assert client.delete(f"api/people/{name}").status_code == 200
