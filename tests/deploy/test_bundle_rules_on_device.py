"""The bundle rules travel with the agent to a real sshd device: a bundle verify accepts in an unusual but allowed
form installs there, and a stale or damaged copy of the rules on the device is replaced before it is used."""
import zipfile
from pathlib import Path

from studio.core.bundle import bundle_rules
from studio.core.bundle.bundle import verify_bundle
from studio.core.deploy import fleet


def stored_copy(src: Path, dst: Path) -> Path:
    """The bundle unsigned and without compression: still a valid bundle for verify."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for zi in zin.infolist():
            if zi.filename != bundle_rules.SIGNATURE:
                zout.writestr(zi.filename, zin.read(zi))
    return dst


def test_rules_are_uploaded_with_the_agent_and_a_stale_copy_is_replaced(make_device, deploy_bundles, tmp_path):
    dev = make_device(1)
    bundle = stored_copy(deploy_bundles["1.0"], tmp_path / "stored.bundle.zip")
    assert verify_bundle(bundle).manifest["version"] == "1.0"
    r = fleet.push(bundle, [dev]).results[0]
    assert r.status == "installed" and r.check["ok"], r.detail
    rules = Path(dev.dir) / ".studio" / "bundle_rules.py"
    assert rules.read_bytes() == Path(bundle_rules.__file__).read_bytes()
    assert not (rules.parent / "__pycache__").exists()
    rules.write_text("raise SystemExit('a damaged copy')\n")  # an older Studio's rules, or a damaged file
    again = fleet.push(deploy_bundles["2.0"], [dev]).results[0]
    assert again.status == "installed" and again.check["ok"], again.detail
    assert rules.read_bytes() == Path(bundle_rules.__file__).read_bytes()
