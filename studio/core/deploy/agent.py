#!/usr/bin/env python3
"""Studio device agent: the device-side half of a push. Standard library only (Python 3.6+), uploaded by Studio
to DIR/.studio/agent.py, with bundle_rules.py, the monitor's check runner (runner.py) and the profilers
(profiler.py, litert_profiler.py) beside it, and run as `python3 agent.py DIR COMMAND [ARGS]`; prints one JSON object.

Layout on the device:
    DIR/current -> releases/<bundle id>     switched atomically (new symlink, then rename over the old one)
    DIR/releases/<bundle id>/               an unpacked, verified bundle
    DIR/.studio/incoming/<sha256>.part      an upload in progress (kept, so an interrupted upload resumes)
    DIR/.studio/state.json                  {"current": id, "previous": id}
    DIR/.studio/journal.json                the push in progress; resolved by `recover` on the next connect
    DIR/.studio/lock                        flock held by `lock` for the duration of one push
"""
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":  # on the device
    sys.path.insert(0, HERE)  # bundle_rules.py is uploaded beside this file (also found under python -I)
    sys.dont_write_bytecode = True  # a cached .pyc could outlive a re-uploaded bundle_rules.py of the same size
try:
    import bundle_rules  # type: ignore[import-not-found]
except ImportError:  # imported from Studio's own source tree (the layering check), not from a device folder
    from studio.core.bundle import bundle_rules


def python():
    """This interpreter as it was started (a device may run Python with -S or -I): the runner gets the same."""
    return [sys.executable] + (["-S"] if sys.flags.no_site else []) + (["-I"] if sys.flags.isolated else [])


class Fail(Exception):
    """A command that cannot be done; its message goes back to Studio as {"ok": false, "error": ...}."""


def fail(message):
    raise Fail(message)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Device:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.meta = os.path.join(self.root, ".studio")
        self.releases = os.path.join(self.root, "releases")
        self.incoming = os.path.join(self.meta, "incoming")
        for d in (self.root, self.meta, self.releases, self.incoming):
            if not os.path.isdir(d):
                os.makedirs(d)

    # --- state ------------------------------------------------------------------------------------------
    def _read(self, name, default):
        try:
            with open(os.path.join(self.meta, name)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return default

    def _write(self, name, obj):
        path = os.path.join(self.meta, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._sync_dir(self.meta)

    def _sync_dir(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def current(self):
        link = os.path.join(self.root, "current")
        if os.path.islink(link):
            target = os.readlink(link)
            rid = os.path.basename(target.rstrip("/"))
            if os.path.isdir(os.path.join(self.releases, rid)):
                return rid
        return None

    def state(self):
        st = self._read("state.json", {})
        st["current"] = self.current()  # the symlink is the truth; state.json only adds "previous"
        if st.get("previous") and not os.path.isdir(os.path.join(self.releases, st["previous"])):
            st["previous"] = None
        return st

    def describe(self, rid):
        if not rid:
            return None
        try:
            with open(os.path.join(self.releases, rid, "manifest.json")) as fh:
                m = json.load(fh)
            return {"id": rid, "name": m.get("name"), "version": m.get("version")}
        except (OSError, ValueError):
            return {"id": rid, "name": None, "version": None}

    def journal(self, **entry):
        entry["time"] = time.time()
        self._write("journal.json", entry)

    def clear_journal(self):
        try:
            os.unlink(os.path.join(self.meta, "journal.json"))
        except OSError:
            pass

    # --- commands ---------------------------------------------------------------------------------------
    def cmd_probe(self):
        runtimes = {}
        for mod, label in (("onnxruntime", "onnxruntime"), ("ai_edge_litert", "ai-edge-litert"),
                           ("tflite_runtime", "tflite-runtime"), ("numpy", "numpy")):
            try:
                m = __import__(mod)
                runtimes[label] = getattr(m, "__version__", "unknown")
            except Exception:
                pass
        os_name = platform.system()
        try:
            with open("/etc/os-release") as fh:
                for line in fh:
                    if line.startswith("PRETTY_NAME="):
                        os_name = line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        st = self.state()
        usage = shutil.disk_usage(self.root)
        return ({"ok": True, "arch": platform.machine(), "os": os_name, "kernel": platform.release(),
             "python": platform.python_version(), "python_path": sys.executable, "runtimes": runtimes,
             "free_bytes": usage.free, "total_bytes": usage.total, "dir": self.root,
             "current": self.describe(st.get("current")), "previous": self.describe(st.get("previous"))})

    def cmd_status(self):
        """What runs, what is kept, which releases no longer match their manifest, and the journal of a push; "busy"
        says whether a push holds the lock now (a journal without it is an interrupted push the next one resolves)."""
        st = self.state()
        releases = sorted(d for d in os.listdir(self.releases) if not d.endswith(".tmp"))
        damaged = {}
        for rid in releases:
            problem = self._damage(os.path.join(self.releases, rid))
            if problem:
                damaged[rid] = problem
        return ({"ok": True, "current": self.describe(st.get("current")), "previous": self.describe(st.get("previous")),
                 "releases": releases, "journal": self._read("journal.json", None), "damaged": damaged,
                 "busy": self._busy()})

    def _busy(self):
        fd = os.open(os.path.join(self.meta, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def cmd_space(self):
        return {"ok": True, "free_bytes": shutil.disk_usage(self.root).free}

    def cmd_recover(self):
        return (dict(ok=True, **self._recover()))

    def _recover(self):
        entry = self._read("journal.json", None)
        link_new = os.path.join(self.root, "current.new")
        if os.path.lexists(link_new):
            os.unlink(link_new)
        for d in os.listdir(self.releases):
            if d.endswith(".tmp"):
                shutil.rmtree(os.path.join(self.releases, d), ignore_errors=True)
        if not entry:
            return {"recovered": False}
        st = self.state()
        rid, phase = entry.get("bundle"), entry.get("state")
        if rid and rid not in (st.get("current"), st.get("previous")) and phase in ("unpacking", "testing"):
            shutil.rmtree(os.path.join(self.releases, rid), ignore_errors=True)
        if phase == "switching" and st.get("current") == rid and entry.get("previous") != rid:
            st["previous"] = entry.get("previous")  # the switch happened before the interruption
        self._write("state.json", {"current": st.get("current"), "previous": st.get("previous")})
        self.clear_journal()
        return {"recovered": True, "bundle": rid, "phase": phase, "current": st.get("current")}

    def cmd_prepare(self, rid, sha, size):
        """One round trip before an upload: resolve an interrupted push, report what runs, the free space and how
        much of this bundle is already here; start the journal unless the device already runs it."""
        recovered = self._recover()
        st = self.state()
        if st.get("current") == rid:
            return ({"ok": True, "unchanged": True, "current": self.describe(rid), "recovered": recovered})
        part = self._part_info(sha, int(size))
        self.journal(state="uploading", bundle=rid, sha256=sha, size=int(size), previous=st.get("current"))
        return ({"ok": True, "unchanged": False, "current": self.describe(st.get("current")), "recovered": recovered,
             "free_bytes": shutil.disk_usage(self.root).free, "part": part})

    def _part(self, sha):
        return os.path.join(self.incoming, sha + ".part")

    def _part_info(self, sha, want_size):
        """How much of the bundle is here. A zip that an interrupted push had already checked goes back to .part, so
        it is checked again and counted as complete; a .part longer than the bundle is not this upload's."""
        part, done = self._part(sha), os.path.join(self.incoming, sha + ".zip")
        if os.path.exists(done) and not os.path.exists(part):
            os.replace(done, part)
        if os.path.exists(part) and os.path.getsize(part) > want_size:
            os.unlink(part)
        size, digest = (os.path.getsize(part), sha256_of(part)) if os.path.exists(part) else (0, sha256_of(None))
        return {"size": size, "sha256": digest, "complete": size == want_size and digest == sha}

    def cmd_install(self, sha, rid):
        """Check the uploaded file's sha256, then unpack it into releases/<id> (verifying every member)."""
        part = self._part(sha)
        if os.path.exists(part):
            if sha256_of(part) != sha:
                os.unlink(part)
                fail("uploaded bundle is damaged (its sha256 does not match); it was deleted")
            os.replace(part, os.path.join(self.incoming, sha + ".zip"))
        entry = self._read("journal.json", {}) or {}
        self.journal(state="unpacking", bundle=rid, sha256=sha, previous=entry.get("previous", self.current()))
        final = os.path.join(self.releases, rid)
        if os.path.isdir(final):
            if not self._damage(final):  # installed before (e.g. the previous release) and still whole: reuse it
                return ({"ok": True, "path": final, "reused": True})
            shutil.rmtree(final)
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            with zipfile.ZipFile(os.path.join(self.incoming, sha + ".zip")) as zf:
                self._unpack(zf, tmp)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:  # bundle_rules.RuleError is a ValueError
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno == 28:
                fail("device disk is full while unpacking")
            fail("cannot unpack the bundle: %s" % exc)
        os.rename(tmp, final)
        self._sync_dir(self.releases)
        return ({"ok": True, "path": final})

    def _unpack(self, zf, folder):
        """The bundle's files into `folder`, after the rules `studio verify` applies too (bundle_rules)."""
        members, raw, manifest = bundle_rules.open_bundle(zf)
        files = list(bundle_rules.listed_contents(zf, members, manifest)) + [(bundle_rules.MANIFEST, raw)]
        if bundle_rules.SIGNATURE in members:
            files.append((bundle_rules.SIGNATURE, bundle_rules.read_member(zf, members[bundle_rules.SIGNATURE])))
        for name, data in files:
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(os.path.join(folder, name), 0o755 if name == bundle_rules.RUNNER else 0o644)

    def _damage(self, folder):
        """None when every file of the release matches its manifest, else what is wrong (the first file that is)."""
        try:
            with open(os.path.join(folder, "manifest.json")) as fh:
                files = json.load(fh)["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return "manifest.json is missing or unreadable"
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                return "%s is missing" % name
            try:
                if sha256_of(path) != files[name]["sha256"]:
                    return "%s does not match its manifest" % name
            except (OSError, KeyError, TypeError):
                return "%s cannot be checked" % name
        return None

    def cmd_smoke(self, rid, timeout):
        entry = self._read("journal.json", {}) or {}
        self.journal(state="testing", bundle=rid, previous=entry.get("previous", self.current()))
        runner = os.path.join(self.releases, rid, "runner.py")
        proc, result = run_runner(python() + [runner, "--runs", "5"], timeout, os.path.dirname(runner),
                                  "the model check")
        if proc.returncode != 0 or not result.get("ok"):
            err = result.get("error") or proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or \
                ["exit code %d" % proc.returncode]
            fail("the model check failed on the device: %s" % (err if isinstance(err, str) else err[0]))
        return ({"ok": True, "check": result})

    def cmd_check(self, runs, threads, timeout):
        """The monitor's check of the release that runs now: Studio's runner (uploaded beside this agent) measures
        it on its check set; with the device's facts and whether its files still match their manifest."""
        rid = self.current()
        if not rid:
            fail("no release is installed on this device")
        folder = os.path.join(self.releases, rid)
        argv = python() + [os.path.join(HERE, "runner.py"), "--check", "--bundle", folder, "--runs", str(int(runs)),
                           "--threads", str(int(threads))]
        proc, result = run_runner(argv, timeout, folder, "the check")
        if not result:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["exit code %d" % proc.returncode]
            result = {"ok": False, "error": "the runner printed no result (%s)" % err[0]}
        manifest = self._read_release(folder)
        return {"ok": True, "release": self.describe(rid), "damaged": self._damage(folder), "facts": facts(self.root),
                "promise": manifest.get("promise"), "metrics": manifest.get("metrics"), "result": result}

    def cmd_profile(self, runs, warmup, threads, as_written, timeout):
        """Per-operator times of the release that runs now: Studio's profiler (uploaded beside this agent) runs it
        with the device's onnxruntime on its check set and returns the trace's events for Studio to aggregate."""
        rid = self.current()
        if not rid:
            fail("no release is installed on this device")
        folder = os.path.join(self.releases, rid)
        argv = python() + [os.path.join(HERE, "profiler.py"), "--bundle", folder, "--runs", str(int(runs)),
                           "--warmup", str(int(warmup)), "--threads", str(int(threads))]
        proc, result = run_runner(argv + (["--as-written"] if as_written == "1" else []), timeout, folder,
                                  "the profile")
        if not result:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["exit code %d" % proc.returncode]
            result = {"ok": False, "error": "the profiler printed no result (%s)" % err[0]}
        return {"ok": True, "release": self.describe(rid), "result": result}

    def _read_release(self, folder):
        try:
            with open(os.path.join(folder, "manifest.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def cmd_activate(self, rid, keep):
        entry = self._read("journal.json", {}) or {}
        old = self.current()
        self.journal(state="switching", bundle=rid, previous=old)
        link_new = os.path.join(self.root, "current.new")
        if os.path.lexists(link_new):
            os.unlink(link_new)
        os.symlink(os.path.join("releases", rid), link_new)
        os.replace(link_new, os.path.join(self.root, "current"))  # the atomic switch
        self._sync_dir(self.root)
        previous = old if old != rid else entry.get("previous")
        self._write("state.json", {"current": rid, "previous": previous})
        self.clear_journal()
        self._cleanup(int(keep), rid, previous)
        return ({"ok": True, "current": rid, "previous": previous})

    def _cleanup(self, keep, current, previous):
        for name in os.listdir(self.incoming):
            if name.endswith(".zip"):
                os.unlink(os.path.join(self.incoming, name))
        releases = [d for d in os.listdir(self.releases) if not d.endswith(".tmp")]
        releases.sort(key=lambda d: os.path.getmtime(os.path.join(self.releases, d)), reverse=True)
        kept = 0
        for d in releases:
            if d in (current, previous):
                kept += 1
                continue
            if kept < keep:
                kept += 1
                continue
            shutil.rmtree(os.path.join(self.releases, d), ignore_errors=True)

    def cmd_abort(self, rid, drop_upload=""):
        """End a push that failed: its unpacked release goes, and with drop_upload (a sha256) its upload too."""
        st = self.state()
        if rid not in (st.get("current"), st.get("previous")):
            shutil.rmtree(os.path.join(self.releases, rid), ignore_errors=True)
        if drop_upload:
            for path in (self._part(drop_upload), os.path.join(self.incoming, drop_upload + ".zip")):
                if os.path.exists(path):
                    os.unlink(path)
        self.clear_journal()
        return ({"ok": True, "current": self.describe(st.get("current")),
                 "free_bytes": shutil.disk_usage(self.root).free})

    def cmd_rollback(self):
        st = self.state()
        prev = st.get("previous")
        if not prev:
            fail("there is no previous release to roll back to")
        problem = self._damage(os.path.join(self.releases, prev))
        if problem:
            fail("the previous release %s is damaged on the device (%s): not rolled back; the device still runs %s."
                 " Push a bundle to replace it" % (prev, problem, st.get("current")))
        link_new = os.path.join(self.root, "current.new")
        if os.path.lexists(link_new):
            os.unlink(link_new)
        os.symlink(os.path.join("releases", prev), link_new)
        os.replace(link_new, os.path.join(self.root, "current"))
        self._sync_dir(self.root)
        self._write("state.json", {"current": prev, "previous": st.get("current")})
        return ({"ok": True, "current": prev, "previous": st.get("current")})


def run_runner(argv, timeout, cwd, what):
    """(process, its last stdout line as JSON or {}): how the agent runs a bundle's runner.py."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=float(timeout), cwd=cwd)
    except subprocess.TimeoutExpired:
        fail("%s did not finish within %s s" % (what, timeout))
    text = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        return proc, (json.loads(text[-1]) if text else {})
    except ValueError:
        return proc, {}


def dispatch(device, name, args):
    method = getattr(device, "cmd_" + str(name).replace("-", "_"), None)
    if method is None:
        raise Fail("unknown command %r" % name)
    try:
        return method(*args)
    except TypeError as exc:
        fail("bad arguments for %s: %s" % (name, exc))
    except OSError as exc:
        if exc.errno == 28:
            fail("device disk is full (%s)" % exc)
        fail("%s: %s" % (type(exc).__name__, exc))


def facts(root):
    """What the device says about itself: uptime, load, memory, free disk, the hottest thermal zone (None where it
    cannot tell)."""
    out = {"uptime_s": None, "load_1m": None, "mem_total_mb": None, "mem_available_mb": None,
           "disk_free_mb": shutil.disk_usage(root).free / 1048576.0, "temperature_c": None}
    try:
        with open("/proc/uptime") as fh:
            out["uptime_s"] = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        out["load_1m"] = os.getloadavg()[0]
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out["mem_total_mb" if key == "MemTotal" else "mem_available_mb"] = int(value.split()[0]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    temps = []
    base = "/sys/class/thermal"
    try:
        zones = [z for z in os.listdir(base) if z.startswith("thermal_zone")]
    except OSError:
        zones = []
    for zone in zones:
        try:
            with open(os.path.join(base, zone, "temp")) as fh:
                temps.append(int(fh.read().strip()) / 1000.0)
        except (OSError, ValueError):
            pass
    if temps:
        out["temperature_c"] = max(temps)
    return out


def sha256_of(path):
    h = hashlib.sha256()
    if path is not None:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def own_hash():
    """The sha256 of this agent, its rules, the check runner and the profilers, as Studio computes it to tell whether
    they need uploading (a missing or stale one makes it differ, so Studio uploads all five)."""
    h = hashlib.sha256()
    for name in (os.path.abspath(__file__), bundle_rules.__file__, os.path.join(HERE, "runner.py"),
                 os.path.join(HERE, "profiler.py"), os.path.join(HERE, "litert_profiler.py")):
        try:
            with open(name, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def session(device, lock):
    """One process per push: hold the device lock (when asked) and answer one JSON command per stdin line until
    Studio closes stdin or its connection drops; either way the lock is released with the process."""
    if lock:
        fd = os.open(os.path.join(device.meta, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            emit({"ok": False, "busy": True, "error": "another push to this device is in progress"})
            return 3
    try:
        emit({"ok": True, "agent": own_hash(), "locked": lock})
        for line in sys.stdin:
            try:
                request = json.loads(line)
                result = dispatch(device, request["cmd"], request.get("args", []))
            except Fail as exc:
                result = {"ok": False, "error": str(exc)}
            except Exception as exc:  # keep the session alive: Studio decides what a failed step means
                result = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
            emit(result)  # raises when the connection is gone: the push is resolved below all the same
    finally:
        if lock:  # Studio left (or its link dropped) mid-push: no half-done push stays behind
            device._recover()
    return 0


def main():
    if len(sys.argv) < 3:
        emit({"ok": False, "error": "usage: agent.py DIR (session [--no-lock] | COMMAND [ARGS])"})
        return 2
    device = Device(sys.argv[1])
    if sys.argv[2] == "session":
        return session(device, "--no-lock" not in sys.argv[3:])
    try:
        emit(dispatch(device, sys.argv[2], sys.argv[3:]))
        return 0
    except Fail as exc:
        emit({"ok": False, "error": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
