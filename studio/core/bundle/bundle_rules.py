"""The rules a bundle's zip, members and manifest follow, in one place: `studio verify` applies them (then the schema
and the signature), and the device agent applies the same file, uploaded beside it, before it unpacks. So a bundle
that verifies also unpacks on the device. Standard library only, Python 3.6 syntax: this file runs on devices."""
import hashlib
import json
import re
import stat
import zipfile
import zlib

MANIFEST, SIGNATURE, RUNNER = "manifest.json", "manifest.sig", "runner.py"
MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 4 << 30  # a model over 4 GiB does not belong on an edge device
MAX_RATIO = 200  # uncompressed / compressed: more than this is a zip bomb, not a model
MAX_MANIFEST_BYTES = 4 << 20
MAX_DEPTH = 64  # nesting of the manifest's JSON
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# Names the device uses itself inside a release or its install dir: never a bundle member.
RESERVED = {".studio", "current", "current.new", "releases", "incoming", "lock", "state.json", "journal.json"}
MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
BOM = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


class RuleError(ValueError):
    """What is wrong with the bundle, in one line."""


def check_name(name):
    """A member name is a plain file name: no folder, no '..', not hidden, not a name the device uses itself."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
        raise RuleError("member '%s' has an absolute path: refused" % name)
    if ".." in name.split("/"):
        raise RuleError("member '%s' climbs out of the bundle with '..': refused" % name)
    if "/" in name or name in ("", "."):
        raise RuleError("member '%s' is in a folder; bundle members are plain files" % name)
    if name in RESERVED or name.startswith("."):
        raise RuleError("member '%s' has a name the device reserves for itself: refused" % name)
    if not MEMBER.match(name):
        raise RuleError("member %r: a member name is 1-128 letters, digits, '.', '_', '+' or '-'" % name)


def check_members(zf):
    """The zip's entries by name, each a plain, unencrypted, stored or deflated file of sane size."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise RuleError("has %d members; a bundle has at most %d" % (len(infos), MAX_MEMBERS))
    seen = {}
    for zi in infos:
        name = zi.filename
        check_name(name)
        kind = stat.S_IFMT(zi.external_attr >> 16)  # 0 when the tool that made the zip recorded no file type
        if kind == stat.S_IFLNK:
            raise RuleError("member '%s' is a symbolic link: refused" % name)
        if kind not in (0, stat.S_IFREG) or zi.is_dir():
            raise RuleError("member '%s' is not a regular file: refused" % name)
        if name in seen:
            raise RuleError("member '%s' appears twice: refused" % name)
        if zi.flag_bits & 0x1:
            raise RuleError("member '%s' is encrypted; bundles are not encrypted" % name)
        if zi.compress_type not in METHODS:
            raise RuleError("member '%s' uses compression method %d; bundles use stored or deflate"
                            % (name, zi.compress_type))
        if zi.file_size > MAX_MEMBER_BYTES:
            raise RuleError("member '%s' is %d bytes, over the %d byte limit" % (name, zi.file_size, MAX_MEMBER_BYTES))
        if zi.file_size > 1 << 20 and zi.file_size > MAX_RATIO * max(1, zi.compress_size):
            raise RuleError("member '%s' expands %dx: refused as a zip bomb"
                            % (name, zi.file_size // max(1, zi.compress_size)))
        seen[name] = zi
    return seen


def read_member(zf, zi, limit=None):
    """The member's bytes; a damaged entry (CRC, inflate, truncation) is a RuleError naming it."""
    if limit is not None and zi.file_size > limit:
        raise RuleError("%s: %d bytes, over the %d byte limit" % (zi.filename, zi.file_size, limit))
    try:
        with zf.open(zi) as fh:
            data = fh.read(zi.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        why = " ".join(str(exc).split())[:160]
        raise RuleError("%s: corrupt data in the archive (%s)" % (zi.filename, why)) from None
    if len(data) != zi.file_size:
        raise RuleError("%s: holds %d bytes, its zip entry says %d" % (zi.filename, len(data), zi.file_size))
    return data


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise RuleError("%s repeats the key %r" % (MANIFEST, key))
        obj[key] = value
    return obj


def _no_constant(name):
    raise RuleError("%s holds %s, which is not JSON" % (MANIFEST, name))


def _depth(obj):
    deepest, todo = 0, [(obj, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo.extend((child, depth + 1) for child in children)
    return deepest


def parse_manifest(raw):
    """manifest.json as strict UTF-8 JSON (no byte order mark, no NaN, no repeated key), an object whose `files`
    map plain member names to their sha256 and size and list the model and the runner."""
    if raw.startswith(BOM):
        raise RuleError("%s starts with a byte order mark; it must be UTF-8 without one" % MANIFEST)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError("%s is not UTF-8 (%s)" % (MANIFEST, exc.reason)) from None
    try:
        manifest = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise RuleError("%s is nested too deeply" % MANIFEST) from None
    except RuleError:
        raise
    except ValueError as exc:
        raise RuleError("%s is not valid JSON (%s)" % (MANIFEST, exc)) from None
    if not isinstance(manifest, dict):
        raise RuleError("%s is not a JSON object" % MANIFEST)
    if _depth(manifest) > MAX_DEPTH:
        raise RuleError("%s is nested more than %d levels deep" % (MANIFEST, MAX_DEPTH))
    _check_files(manifest)
    return manifest


def _check_files(manifest):
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise RuleError("%s has no `files` object" % MANIFEST)
    for name, entry in files.items():
        check_name(name)
        if name in (MANIFEST, SIGNATURE):
            raise RuleError("%s lists '%s' among its files" % (MANIFEST, name))
        if not isinstance(entry, dict) or not SHA256.match(str(entry.get("sha256"))) \
                or type(entry.get("size")) is not int or entry["size"] < 0:
            raise RuleError("%s: the entry for '%s' needs a sha256 (64 hex digits) and a size" % (MANIFEST, name))
    for required in (manifest.get("model"), RUNNER):
        if not isinstance(required, str) or required not in files:
            raise RuleError("%s does not list '%s'" % (MANIFEST, required))


def check_listed(members, manifest):
    """Every listed file is a member and every member is listed (besides the manifest and its signature)."""
    listed = set(manifest["files"])
    for name in sorted(listed - set(members)):
        raise RuleError("missing member '%s' (listed in %s)" % (name, MANIFEST))
    for name in sorted(set(members) - listed - {MANIFEST, SIGNATURE}):
        raise RuleError("unexpected member '%s' (not listed in %s)" % (name, MANIFEST))


def check_content(name, data, manifest):
    want = manifest["files"][name]
    found = hashlib.sha256(data).hexdigest()
    if found != want["sha256"]:
        raise RuleError("%s: sha256 mismatch (expected %s, found %s)" % (name, want["sha256"], found))
    if len(data) != want["size"]:
        raise RuleError("%s: size mismatch (expected %d bytes, found %d)" % (name, want["size"], len(data)))


def open_bundle(zf):
    """(members, manifest bytes, manifest) of an open bundle zip, after the member and manifest rules."""
    members = check_members(zf)
    if MANIFEST not in members:
        raise RuleError("missing member '%s'" % MANIFEST)
    raw = read_member(zf, members[MANIFEST], MAX_MANIFEST_BYTES)
    manifest = parse_manifest(raw)
    check_listed(members, manifest)
    return members, raw, manifest


def listed_contents(zf, members, manifest):
    """(name, bytes) of each listed file in name order, each checked against its size and sha256."""
    for name in sorted(manifest["files"]):
        data = read_member(zf, members[name])
        check_content(name, data, manifest)
        yield name, data
