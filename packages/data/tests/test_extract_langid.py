import json

import pytest

from cs336_data import extract_text_from_html_bytes, identify_language


def test_moby_text_extracted(fixtures):
    text = extract_text_from_html_bytes((fixtures / "moby.html").read_bytes())
    assert "Call me Ishmael" in text or "Moby" in text
    assert "<" not in text and "{" not in text


def test_python_doc_page_extracted_without_markup(fixtures):
    text = extract_text_from_html_bytes((fixtures / "html/appetite.html").read_bytes())
    assert "Whetting Your Appetite" in text
    assert "If you do much work on computers" in text
    assert "<div" not in text and "function(" not in text


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16", "shift_jis", "koi8-r"])
def test_encodings_detected(encoding):
    words = {
        "utf-8": "Grüße aus Köln, naïve café",
        "cp1252": "Grüße aus Köln, naïve café",
        "utf-16": "Grüße aus Köln, naïve café",
        "shift_jis": "日本語のテキストです。東京は大きな都市です。",
        "koi8-r": "Привет, мир! Это русский текст о погоде и городе.",
    }[encoding]
    charset = "" if encoding == "utf-16" else f'<meta charset="{encoding}">'
    html = f"<html><head>{charset}</head><body><p>{words}</p></body></html>"
    assert extract_text_from_html_bytes(html.encode(encoding)).strip() == words


def test_undecodable_bytes_do_not_fail():
    text = extract_text_from_html_bytes(b"<p>ok \xff\xfe\x80 still</p>")
    assert text.startswith("ok") and text.endswith("still")


@pytest.mark.parametrize("html", [b"", b"<html><script>var x=1;</script></html>", b"   "])
def test_empty_pages_give_none(html):
    assert extract_text_from_html_bytes(html) is None


@pytest.mark.parametrize("lang", ["en", "de", "es", "it", "ru", "pl"])
def test_fortunes_languages(fixtures, lang):
    samples = json.loads((fixtures / "fortunes_sample.json").read_text())[lang]
    right = [identify_language(s["text"])[0] == lang for s in samples]
    assert sum(right) >= len(right) - 1, right


def test_chinese_and_score_range(fixtures):
    label, score = identify_language("北京是中华人民共和国的首都，也是全国的政治和文化中心。")
    assert label == "zh" and 0.5 < score <= 1.0
    label, score = identify_language((fixtures / "high_quality_wiki_reference.txt").read_text())
    assert label == "en" and score > 0.9


def test_missing_model_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.bin"):
        identify_language("hello", model_path=str(tmp_path / "nope.bin"))
