"""The words of a push's one-line outcome: the reason as a field technician reads it, and what to do next."""
from __future__ import annotations

from dataclasses import dataclass

RESUME = "Push again: what already reached the device is not sent again"


@dataclass(frozen=True)
class Reason:
    marker: str  # found in the technical detail
    words: str  # no paths, no library names
    advice: str  # {name} and {dir} are the device's


REASONS = (
    Reason("disk is full", "the device's disk is full", "Free space in {dir} on the device, then push again"),
    Reason("HOST KEY HAS CHANGED", "the device's identity (host key) has changed",
           "If the device was reinstalled, check its new key and run `studio devices trust {name}`; otherwise do not"
           " push to it"),
    Reason("unknown host key", "the device is not trusted yet",
           "Check its fingerprint, then run `studio devices trust {name}`"),
    Reason("cannot reach", "the device cannot be reached", "Check that it is on and on the network, then push again"),
    Reason("did not answer", "the device stopped answering", RESUME),
    Reason("lost the connection", "the connection was lost", RESUME),
    Reason("another push", "another push to this device is in progress", "Wait until it is done, then push again"),
    Reason("model check", "the model check failed on the device",
           "The device's runtime cannot run this bundle: see the reason below"),
    Reason("refused the login", "the device refused the login", "Check the device's key or the ssh-agent"),
    Reason("stopped by the user", "stopped by the user", RESUME),
)
DEFAULT_ADVICE = "Push again; if it fails the same way, see the reason below"


def explain(detail: str) -> tuple[str, str]:
    """(reason, advice) for a technical detail; the advice still holds {name} and {dir}."""
    for reason in REASONS:
        if reason.marker in detail:
            return reason.words, reason.advice
    text = detail.split(" (")[0].split("; ")[0]
    return (text[:1].lower() + text[1:] if text else "unknown error"), DEFAULT_ADVICE


def label(desc: dict | None) -> str:
    """A release as the device describes it: 'mnist v1.0', or its id when its manifest says no version."""
    if not desc:
        return "nothing (no release installed)"
    return f"{desc.get('name') or desc['id']} v{desc.get('version')}" if desc.get("version") else desc["id"]
