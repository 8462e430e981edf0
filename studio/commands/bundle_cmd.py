"""`studio export`, `studio keys new` and `studio verify`: signed, checksummed bundles."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    from studio.commands.inspect_cmd import add_shape_argument

    p = sub.add_parser("export", help="write a bundle zip (model, manifest, device runner), optionally signed",
                       description="MODEL is an .onnx/.tflite file, a `studio optimize` output folder, or a sweep"
                                   " candidate RUN/CANDIDATE_ID.")
    p.add_argument("source", metavar="MODEL|OPTIMIZE_OUT_DIR|SWEEP_RUN/CANDIDATE_ID")
    p.add_argument("-o", "--out", required=True, metavar="NAME.bundle.zip")
    p.add_argument("--name", help="bundle name (default: from the output file name)")
    p.add_argument("--version", default="1.0.0", help="bundle version (default 1.0.0)")
    p.add_argument("--labels", metavar="L.txt", help="class labels, one per line")
    p.add_argument("--sign", metavar="KEY", help="Ed25519 private key (from `studio keys new`)")
    p.add_argument("--created", metavar="TIME", help="ISO 8601 time recorded in the manifest (default: none, or"
                                                     " SOURCE_DATE_EPOCH)")
    p.add_argument("--data", "--sample", dest="sample", metavar="DATA",
                   help="dataset whose first sample the runner checks on the device, and whose first N samples"
                        " make the check set of `studio check` (default: synthetic inputs)")
    p.add_argument("--check-samples", type=int, default=32, metavar="N",
                   help="samples in the bundle's check set for `studio check` (default 32)")
    add_shape_argument(p)
    p.add_argument("--allow-degraded", action="store_true", help="export a candidate below the quality gate")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(run=run_export)

    k = sub.add_parser("keys", help="signing keys")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = ksub.add_parser("new", help="write an Ed25519 private key at PATH (mode 600) and PATH.pub")
    new.add_argument("path")
    new.set_defaults(run=run_keys_new)
    trust = ksub.add_parser("trust", help="trust a publisher's public key: `verify` then checks signatures with it")
    trust.add_argument("pubkey", metavar="K.pub")
    trust.set_defaults(run=run_keys_trust)
    ksub.add_parser("list", help="the trusted public keys").set_defaults(run=run_keys_list)
    untrust = ksub.add_parser("untrust", help="stop trusting a public key")
    untrust.add_argument("fingerprint", metavar="SHA256:...")
    untrust.set_defaults(run=run_keys_untrust)
    add_verify_parser(sub)


def add_verify_parser(sub) -> None:
    """`verify`: also part of the standalone flasher."""
    v = sub.add_parser("verify", help="check a bundle's structure, schema, hashes and signature")
    v.add_argument("bundle")
    v.add_argument("--pubkey", metavar="K.pub", help="public key the signature must match (default: any key trusted"
                                                     " with `studio keys trust`)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(run=run_verify)


def default_name(out: str) -> str:
    name = Path(out).name
    for suffix in (".bundle.zip", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(out).stem


def run_export(args) -> int:
    from studio.commands.inspect_cmd import shapes_of
    from studio.core.bundle.bundle import (
        BundleError,
        build_bundle,
        bundle_check_set,
        bundle_sample,
        read_labels,
        resolve_source,
    )

    if not args.out.endswith(".zip"):
        raise BundleError("the bundle name must end in .bundle.zip", args.out)
    src = resolve_source(args.source)
    labels = read_labels(args.labels) if args.labels else None
    sample = bundle_sample(src, args.sample, shapes_of(args) or None)
    checks = bundle_check_set(src, args.sample, shapes_of(args) or None, args.check_samples)
    manifest = build_bundle(src, args.out, name=args.name or default_name(args.out), version=args.version,
                            labels=labels, sign_key=args.sign, created=args.created, sample=sample,
                            allow_degraded=args.allow_degraded, checks=checks)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        signed = f", signed by {manifest['signing']['key_fingerprint']}" if manifest["signing"] else ", unsigned"
        print(f"wrote {args.out}: {manifest['id']} ({manifest['format']}{signed})")
    return 0


def run_keys_new(args) -> int:
    from studio.core.bundle.signing import fingerprint, load_public, new_keypair

    private, public = new_keypair(args.path)
    print(f"private key {private} (mode 600: keep it secret)")
    print(f"public key  {public}  {fingerprint(load_public(public))}")
    return 0


def run_keys_trust(args) -> int:
    from studio.core.bundle import trust

    entry = trust.trust(args.pubkey)
    print(f"trusted {entry.fingerprint} ({entry.label}) for `studio verify`")
    return 0


def run_keys_list(args) -> int:
    from studio.core.bundle import trust

    keys = trust.load()
    for t in keys:
        print(f"{t.fingerprint}  {t.label}")
    if not keys:
        print("no trusted keys (add one with `studio keys trust K.pub`)")
    return 0


def run_keys_untrust(args) -> int:
    from studio.core.bundle import trust

    entry = trust.untrust(args.fingerprint)
    print(f"no longer trusted: {entry.fingerprint} ({entry.label})")
    return 0


def run_verify(args) -> int:
    from studio.core.bundle import trust
    from studio.core.bundle.bundle import verify_bundle

    result = verify_bundle(args.bundle, args.pubkey, trusted=() if args.pubkey else trust.load())
    m = result.manifest
    if args.json:
        print(json.dumps({"ok": True, "id": m["id"], "name": m["name"], "version": m["version"],
                          "signed": result.signed, "signature_checked": result.signature_checked,
                          "key_fingerprint": result.key_fingerprint}))
        return 0
    if result.signature_checked:
        sig = f"signature OK ({result.key_fingerprint})"
    elif result.signed:
        sig = (f"signed, signature not checked: no trusted key matches (the manifest names {result.key_fingerprint};"
               " pass --pubkey or run `studio keys trust K.pub`)")
    else:
        sig = "unsigned"
    print(f"OK {args.bundle}: {m['name']} {m['version']} ({m['id']}), {len(m['files'])} files verified, {sig}")
    return 0
