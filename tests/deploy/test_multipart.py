"""The file part of a multipart/form-data body, as curl -F, browsers and HTTP libraries send
it; malformed and hostile forms are one-line errors (a 400 from serve), never a hang."""

from __future__ import annotations

import time

import pytest

from tango_ci.runtime.multipart import MAX_PARTS, MultipartError, file_part, is_multipart

TYPE = "multipart/form-data; boundary=XyZ"


def form(*parts: tuple[str, bytes], boundary: str = "XyZ") -> bytes:
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {d}\r\n\r\n".encode() + c + b"\r\n"
        for d, c in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def test_the_part_with_a_file_name_is_the_image_whatever_its_field() -> None:
    body = form(('name="a"', b"text"), ('name="pic"; filename="p.jpg"', b"\xff\xd8\r\n--X"))
    assert file_part(body, TYPE) == b"\xff\xd8\r\n--X"  # a CRLF and a dash inside are data
    starred = form(("name=\"a\"; filename*=UTF-8''%C3%A9.png", b"PNG"))
    assert file_part(starred, TYPE) == b"PNG"


def test_a_field_named_file_or_image_is_taken_when_no_part_names_a_file() -> None:
    assert file_part(form(('name="x"', b"1"), ('name="image"', b"IMG")), TYPE) == b"IMG"
    quoted = 'multipart/form-data; charset=utf-8; boundary="a b:c"'
    assert file_part(form(('name="file"', b"F"), boundary="a b:c"), quoted) == b"F"
    assert is_multipart("Multipart/Form-Data; boundary=x") and not is_multipart("image/png")


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (form(('name="file"', b"F")), "multipart/form-data", "without a valid boundary"),
        (form(('name="file"', b"F")), "multipart/form-data; boundary=" + "b" * 71, "boundary"),
        (b"no delimiter here", TYPE, "has no part"),
        (b"--XyZ\r\nContent-Disposition: form-data; name=file\r\n\r\nF", TYPE, "not closed"),
        (form(('name="note"', b"hello")), TYPE, "no part of the multipart body is a file"),
    ],
)
def test_malformed_forms_are_one_line_errors(body: bytes, content_type: str, said: str) -> None:
    with pytest.raises(MultipartError, match=said):
        file_part(body, content_type)


def test_a_form_of_many_parts_or_endless_headers_is_bounded() -> None:
    many = form(*[('name="n"', b"x")] * 100_000, ('name="f"; filename="f.png"', b"PNG"))
    started = time.perf_counter()
    with pytest.raises(MultipartError, match=f"at most {MAX_PARTS} parts"):
        file_part(many, TYPE)
    endless = b"--XyZ\r\n" + b"X-Header: y\r\n" * 500_000 + b"\r\n\r\nF\r\n--XyZ--"
    with pytest.raises(MultipartError, match="not closed"):
        file_part(endless, TYPE)
    assert time.perf_counter() - started < 10  # a bound on work, not a benchmark
