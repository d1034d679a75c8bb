"""Docker's default seccomp profile and security options, proved side by side with the
reference dockerd (Debian's 20.10 with runc): the same probe runs in a busybox container on
both engines and must print the same thing line for line.

The probe (security_probe.c, built static and bind-mounted read-only) prints the five
capability sets, NoNewPrivs and Seccomp from /proc/self/status, the mounts under /proc, /sys
and /dev (masked and read-only paths), every device node, and what some thirty system calls
do (mount, unshare, clone with namespace flags, mknod, keyctl, bpf, ptrace, personality...).

Deliberate differences, each asserted rather than hidden:

* `--privileged` on a host whose bounding set lacks a capability (this sandbox has no
  CAP_SYS_RESOURCE): dockerd 20.10 asks runc for every capability it knows and fails the
  container ("unable to apply caps: operation not permitted"), as the first test shows.
  Docker 23+ grants what the daemon's bounding set holds (moby#42933), and so does pydockerd.
  The probe's reference side therefore runs under `hostcaps`, runc behind a wrapper that cuts
  the spec's capability lists to the host's bounding set (a no-op on a host that lacks
  nothing). dockerd 20.10's capability list also ends at CAP_AUDIT_READ (its Go capability
  library predates CAP_PERFMON, CAP_BPF and CAP_CHECKPOINT_RESTORE of Linux 5.8/5.9);
  pydockerd, like current Docker, grants those where the kernel has them, so the
  capability lines differ by exactly those three bits.
* A profile dockerd 20.10 accepts at create and then fails to start (JSON that is not a
  profile, 'architectures' with 'archMap', an unknown action) is refused by pydockerd at
  create with dockerd's message (400); dockerd answers a bad --security-opt with a 500,
  pydockerd with a 400.
* `seccomp=builtin` (sent by Docker CLI 28) is Docker's default profile, as in Docker 25+;
  dockerd 20.10 tries to decode "builtin" as JSON and fails the start.

The default profile itself is Docker's own default.json, from Debian's
golang-github-docker-docker-dev (the same docker.io source as the reference engine).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PYDOCKERD, PyDockerd, pydockerd_engine

HERE = Path(__file__).resolve().parent
# Linux's capability numbers (linux/capability.h): bit N of CapBnd is CAP_NAMES[N].
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip
DOCKER_20_10_LAST_CAP = CAP_NAMES.index("CAP_AUDIT_READ")

PROBE_SH = r"""
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
awk '{ split($0, halves, " - "); split(halves[1], l, " "); split(halves[2], r, " ");
       if (l[5] ~ /^\/(proc|sys|dev)/) print "mount " l[5] " root=" l[4] " " l[6] " " r[1] " " r[3] }' /proc/self/mountinfo | sort
find /dev -path /dev/pts -prune -o -path /dev/shm -prune -o -path /dev/mqueue -prune -o \( -type c -o -type b \) -print |
    sort | while read d; do stat -c 'dev %n %F %t:%T %a %u:%g' "$d"; done
find /dev -maxdepth 1 -type l | sort | while read l; do echo "link $l -> $(readlink "$l")"; done
/probe
"""

# runc behind a filter: the spec's capability lists cut to the host's bounding set, which is
# what Docker 23+ asks for (moby#42933) and dockerd 20.10 does not.
HOSTCAPS_RUNC = """#!/usr/bin/python3
import json, os, sys
NAMES = {names}
args = sys.argv[1:]
if "create" in args or "run" in args:
    bundle = "."
    for i, arg in enumerate(args):
        if arg in ("--bundle", "-b"):
            bundle = args[i + 1]
        elif arg.startswith("--bundle="):
            bundle = arg.split("=", 1)[1]
    with open("/proc/self/status") as f:
        bounding = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    held = {{name for bit, name in enumerate(NAMES) if bounding >> bit & 1}}
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    caps = spec["process"].get("capabilities") or {{}}
    for key in caps:
        caps[key] = [c for c in caps[key] if c in held]
    with open(path, "w") as f:
        json.dump(spec, f)
os.execv("/usr/sbin/runc", ["runc", *args])
"""


def host_bounding() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)


def cap_line(mask: int) -> str:
    return f"{mask:016x}"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe (static, so it runs in busybox), its script and the hostcaps runc wrapper."""
    d = tmp_path_factory.mktemp("security-probe")
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the probe (scripts/setup installs it)"
    subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-o", str(d / "probe"), str(HERE / "security_probe.c")], check=True
    )
    (d / "probe.sh").write_text(PROBE_SH)
    wrapper = d / "hostcaps-runc"
    wrapper.write_text(HOSTCAPS_RUNC.format(names=json.dumps(CAP_NAMES)))
    wrapper.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def ref(tools: Path) -> Iterator[RefDockerd]:
    with reference_dockerd({"hostcaps": tools / "hostcaps-runc"}) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def pyd() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


def probe(daemon: RefDockerd, tools: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return daemon.docker(
        "run", "--rm", "-v", f"{tools}/probe:/probe:ro", "-v", f"{tools}/probe.sh:/probe.sh:ro", *options,
        "busybox", "sh", "/probe.sh", timeout=60,
    )  # fmt: skip


def normalised(output: str) -> list[str]:
    """The probe's lines with each engine's cgroup path (parent/container id) made generic."""
    return [
        re.sub(r"root=/\S+( \S+ cgroup )", r"root=<container cgroup>\1", line) for line in output.splitlines()
    ]


def status_field(lines: list[str], name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{name}:"))


CASES = {
    "default": (),
    "no-new-privileges": ("--security-opt", "no-new-privileges"),
    "seccomp-unconfined": ("--security-opt", "seccomp=unconfined"),
    "cap-drop-all": ("--cap-drop", "ALL"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_probe_prints_the_same_profile_on_both_engines(
    ref: RefDockerd, pyd: PyDockerd, tools: Path, case: str
) -> None:
    want = probe(ref, tools, *CASES[case])
    got = probe(pyd, tools, *CASES[case])
    assert want.returncode == 0, want.stderr
    assert got.returncode == 0, got.stderr
    assert normalised(got.stdout) == normalised(want.stdout)
    lines = normalised(got.stdout)
    seccomp = case != "seccomp-unconfined"
    # What the comparison proves, spelled out: Docker's profile refuses these...
    assert status_field(lines, "Seccomp") == ("2" if seccomp else "0")
    assert status_field(lines, "NoNewPrivs") == ("1" if case == "no-new-privileges" else "0")
    denied = ["unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)", "keyctl(GET_KEYRING_ID)", "add_key",
              "bpf(MAP_CREATE, NULL)", "personality(ADDR_NO_RANDOMIZE)", "clock_settime(MONOTONIC)"]  # fmt: skip
    for call in denied:
        assert (f"{call}: EPERM" in lines) is seccomp, call
    assert ("clone3(NULL, 0): ENOSYS" in lines) is seccomp
    assert ("fchmodat2: ENOSYS" in lines) is seccomp  # newer than the profile: runc's ENOSYS
    # ...and ordinary programs run: the shell, grep, awk, find, stat, fork, mknod of a fifo.
    assert "clone(SIGCHLD): ok" in lines
    assert "mknod(fifo): ok" in lines
    assert "mount /proc/keys root=/null rw,nosuid tmpfs rw,size=65536k,mode=755" in lines  # masked
    assert "mount /proc/sys root=/sys ro,nosuid,nodev,noexec,relatime proc rw" in lines  # read-only
    assert ("mknod(c 1:3): ok" in lines) is (case != "cap-drop-all")


def test_privileged_as_docker_grants_it_on_this_host(ref: RefDockerd, pyd: PyDockerd, tools: Path) -> None:
    bounding = host_bounding()
    known = (1 << len(CAP_NAMES)) - 1
    with open("/proc/sys/kernel/cap_last_cap") as f:
        known &= (1 << (int(f.read()) + 1)) - 1
    if bounding & known != known:  # this sandbox: CAP_SYS_RESOURCE is missing
        plain = probe(ref, tools, "--privileged")
        assert plain.returncode == 125
        assert "unable to apply caps: operation not permitted" in plain.stderr

    want = probe(ref, tools, "--runtime", "hostcaps", "--privileged")
    got = probe(pyd, tools, "--privileged")
    assert want.returncode == 0, want.stderr
    assert got.returncode == 0, got.stderr
    want_lines, got_lines = normalised(want.stdout), normalised(got.stdout)
    caps = ("CapPrm", "CapEff", "CapBnd")
    assert [status_field(got_lines, c) for c in caps] == [cap_line(bounding & known)] * 3
    assert [status_field(want_lines, c) for c in caps] == [
        cap_line(bounding & known & ((2 << DOCKER_20_10_LAST_CAP) - 1))
    ] * 3
    assert [line for line in got_lines if line.split(":")[0] not in caps] == [
        line for line in want_lines if line.split(":")[0] not in caps
    ]
    # No seccomp, no masked or read-only paths, writable /sys, every host device.
    assert status_field(got_lines, "Seccomp") == "0"
    assert not [line for line in got_lines if line.startswith("mount /proc/")]
    assert "mount /sys root=/ rw,nosuid,nodev,noexec,relatime sysfs rw" in got_lines
    host_nodes = subprocess.run(
        ["find", "/dev", "-maxdepth", "1", "-type", "b"], capture_output=True, text=True
    ).stdout.split()
    for node in host_nodes:
        assert any(line.startswith(f"dev {node} block special file") for line in got_lines), node
    assert "unshare(CLONE_NEWNS): ok" in got_lines
    assert "mount(tmpfs): ok" in got_lines


def test_exec_privileged_gets_the_grantable_capabilities(pyd: PyDockerd) -> None:
    name = "sec-exec-priv"
    pyd.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        out = pyd.docker_ok("exec", "--privileged", name, "grep", "CapEff", "/proc/self/status")
        assert out.split()[1] == cap_line(host_bounding() & ((1 << len(CAP_NAMES)) - 1))
    finally:
        pyd.docker("rm", "-f", name)


def api_create(daemon: RefDockerd, host_config: Mapping[str, object]) -> httpx.Response:
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
    transport = httpx.HTTPTransport(uds=str(daemon.socket))
    with httpx.Client(transport=transport, base_url="http://engine", timeout=30) as client:
        return client.post("/v1.41/containers/create", json=body)


BAD_OPTS = [
    ["foo=bar"],
    ["foo"],
    ["seccomp"],
    ["apparmor"],
    ["no-new-privileges=maybe"],
    ["systempaths=unconfined"],  # the CLI turns it into MaskedPaths; the daemon refuses it
]


@pytest.mark.parametrize("opts", BAD_OPTS, ids=lambda o: o[0])
def test_bad_security_opt_is_refused_at_create_with_dockerds_words(
    ref: RefDockerd, pyd: PyDockerd, opts: list[str]
) -> None:
    want = api_create(ref, {"SecurityOpt": opts})
    got = api_create(pyd, {"SecurityOpt": opts})
    assert want.status_code == 500  # dockerd 20.10 answers a client's mistake with a 500...
    assert got.status_code == 400  # ...pydockerd with a 400
    assert got.json() == want.json()


BAD_PROFILES = {
    "not-json": ("notjson", "Decoding seccomp profile failed: invalid character "),
    "arch-and-archmap": (
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
            }
        ),
        "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'",
    ),
    "name-and-names": (
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"name": "mkdir", "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        ),
        "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'",
    ),
    "bad-action": (
        json.dumps({"defaultAction": "SCMP_ACT_BOGUS"}),
        "string SCMP_ACT_BOGUS is not a valid action",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PROFILES))
def test_bad_profile_is_refused_at_create_where_dockerd_fails_the_start(
    ref: RefDockerd, pyd: PyDockerd, case: str
) -> None:
    text, message = BAD_PROFILES[case]
    created = api_create(ref, {"SecurityOpt": [f"seccomp={text}"]})
    assert created.status_code == 201
    cid = created.json()["Id"]
    try:
        started = ref.docker("start", cid)
        assert started.returncode != 0
        assert message in started.stderr
    finally:
        ref.docker("rm", "-f", cid)
    got = api_create(pyd, {"SecurityOpt": [f"seccomp={text}"]})
    assert got.status_code == 400
    if case == "bad-action":  # runc's words there; pydockerd's checker names the field
        assert (
            got.json()["message"]
            == 'invalid seccomp profile: seccomp: unknown action "SCMP_ACT_BOGUS" in defaultAction'
        )
    else:
        assert got.json()["message"].startswith(message)
    assert pyd.docker_ok("ps", "-aq") == ""


def test_custom_profile_file_and_overrides(ref: RefDockerd, pyd: PyDockerd, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}],
    }, indent=2))  # fmt: skip
    (tmp_path / "empty.json").write_text("{}")
    script = "mkdir /x; echo mkdir=$?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
    for options in (
        ("--security-opt", f"seccomp={profile}"),
        ("--security-opt", "seccomp=unconfined", "--security-opt", f"seccomp={profile}"),  # the last one wins
        ("--security-opt", f"seccomp={profile}", "--security-opt", "seccomp=unconfined"),
        ("--security-opt", "no-new-privileges:true"),  # the deprecated separator
        ("--security-opt", "no-new-privileges=false"),
        ("--security-opt", "seccomp=" + str(tmp_path / "empty.json")),  # {}: no filter at all
    ):
        want = ref.docker("run", "--rm", *options, "busybox", "sh", "-c", script)
        got = pyd.docker("run", "--rm", *options, "busybox", "sh", "-c", script)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout), options
    assert "mkdir=1" in pyd.docker_ok(
        "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c", script
    )


def test_apparmor_and_label_are_accepted_with_a_clear_message(ref: RefDockerd, pyd: PyDockerd) -> None:
    apparmor = Path("/sys/module/apparmor/parameters/enabled")
    selinux = Path("/sys/fs/selinux/enforce")
    for opt, what, present in (
        ("apparmor=docker-default", "AppArmor", apparmor.exists() and apparmor.read_text().startswith("Y")),
        ("label=type:svirt_t", "SELinux", selinux.exists()),
    ):
        if present:  # pyrunc applies neither: refused at create rather than silently ignored
            refused = pyd.docker("run", "--rm", "--security-opt", opt, "busybox", "echo", "ran")
            assert refused.returncode == 125 and "not supported by pydockerd" in refused.stderr
            continue
        want = ref.docker("run", "--rm", "--security-opt", opt, "busybox", "echo", "ran")
        got = pyd.docker("run", "--rm", "--security-opt", opt, "busybox", "echo", "ran")
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout) == (0, "ran\n")
        # dockerd ignores both silently on a host without them; pydockerd says so.
        assert (
            f"WARNING: {what} is not enabled on this host: security option {opt} has no effect" in got.stderr
        )


def test_privileged_records_label_disable_and_masked_paths_as_dockerd(
    ref: RefDockerd, pyd: PyDockerd
) -> None:
    for host_config in ({"Privileged": True}, {}, {"MaskedPaths": [], "ReadonlyPaths": ["/proc/sys"]}):
        views = []
        for daemon in (ref, pyd):
            created = api_create(daemon, host_config)
            assert created.status_code == 201, created.text
            cid = created.json()["Id"]
            inspected = json.loads(daemon.docker_ok("inspect", cid))[0]["HostConfig"]
            daemon.docker("rm", "-f", cid)
            views.append(
                {k: inspected[k] for k in ("SecurityOpt", "MaskedPaths", "ReadonlyPaths", "Privileged")}
            )
        assert views[1] == views[0], host_config


def test_info_reports_the_seccomp_profile(ref: RefDockerd, pyd: PyDockerd) -> None:
    want = ref.docker_ok("info", "--format", "{{json .SecurityOptions}}")
    assert (
        pyd.docker_ok("info", "--format", "{{json .SecurityOptions}}")
        == want
        == '["name=seccomp,profile=default"]\n'
    )


DAEMON_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
}
SHOW = "mkdir /x; echo mkdir=$?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; ulimit -n; ulimit -Hn; ulimit -s"


def test_daemon_json_seccomp_profile_no_new_privileges_and_default_ulimits(tmp_path: Path) -> None:
    profile = tmp_path / "daemon-profile.json"
    profile.write_text(json.dumps(DAEMON_PROFILE))
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({
        "seccomp-profile": str(profile),
        "no-new-privileges": True,
        "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 2048, "Soft": 1024}, "stack": {"Name": "stack", "Hard": 16777216, "Soft": 8388608}},
    }))  # fmt: skip
    runs = (
        (),
        (
            "--security-opt",
            "no-new-privileges=false",
            "--ulimit",
            "nofile=512:512",
        ),  # the container's own win
        ("--security-opt", "seccomp=unconfined"),
        ("--security-opt", "seccomp=builtin"),  # Docker's default whatever the daemon's (Docker 25+)
    )
    results: list[list[tuple[int, str, object]]] = []
    with (
        reference_dockerd({}, extra_args=("--config-file", str(config))) as ref_daemon,
        pydockerd_engine(extra_args=("--config-file", str(config))) as pyd_daemon,
    ):
        info = [
            d.docker_ok("info", "--format", "{{json .SecurityOptions}}") for d in (ref_daemon, pyd_daemon)
        ]
        assert (
            info[1]
            == info[0]
            == json.dumps([f"name=seccomp,profile={profile}"], separators=(",", ":")) + "\n"
        )
        for daemon in (ref_daemon, pyd_daemon):
            seen: list[tuple[int, str, object]] = []
            for options in runs:
                name = f"sec-daemon-{len(seen)}"
                res = daemon.docker("run", "--name", name, *options, "busybox", "sh", "-c", SHOW)
                ulimits = json.loads(daemon.docker_ok("inspect", name))[0]["HostConfig"]["Ulimits"]
                daemon.docker("rm", "-f", name)
                seen.append((res.returncode, res.stdout, sorted(ulimits or [], key=lambda u: u["Name"])))
            results.append(seen)
    builtin_want, builtin_got = results[0].pop(), results[1].pop()
    assert results[1] == results[0]
    assert results[1][0][:2] == (0, "mkdir=1\nNoNewPrivs:\t1\nSeccomp:\t2\n1024\n2048\n8192\n")
    assert results[1][1][:2] == (0, "mkdir=1\nNoNewPrivs:\t0\nSeccomp:\t2\n512\n512\n8192\n")
    assert builtin_got[:2] == (0, "mkdir=0\nNoNewPrivs:\t1\nSeccomp:\t2\n1024\n2048\n8192\n")
    assert builtin_want[0] != 0  # dockerd 20.10: "Decoding seccomp profile failed" at start


def test_daemon_flags_and_their_errors(tmp_path: Path) -> None:
    profile = tmp_path / "daemon-profile.json"
    profile.write_text(json.dumps(DAEMON_PROFILE))
    flags = ("--seccomp-profile", str(profile), "--no-new-privileges", "--default-ulimit", "nofile=1024:2048")
    with pydockerd_engine(extra_args=flags) as daemon:
        out = daemon.docker_ok("run", "--rm", "busybox", "sh", "-c", SHOW)
        assert out == "mkdir=1\nNoNewPrivs:\t1\nSeccomp:\t2\n1024\n2048\n8192\n"
    bad = [
        (("--seccomp-profile", str(tmp_path / "missing.json")),
         f"failed to start daemon: opening seccomp profile ({tmp_path}/missing.json) failed: open {tmp_path}/missing.json: no such file or directory"),
        (("--default-ulimit", "nofile=2048:1024"),
         'invalid argument \'nofile=2048:1024\' for "--default-ulimit" flag: ulimit soft limit must be less than or equal to hard limit: 2048 > 1024'),
        (("--default-ulimit", "bogus=1"), 'for "--default-ulimit" flag: invalid ulimit type: bogus'),
    ]  # fmt: skip
    for args, message in bad:
        res = subprocess.run(
            [str(PYDOCKERD), "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 1, res.stderr
        assert message in res.stderr
        assert not (tmp_path / "exec" / "containerd").exists()  # refused before anything started


def _seccomp_rules(config: dict[str, Any]) -> object:
    """linux.seccomp with absent, null and empty fields made alike (Go omits some, not others)."""
    seccomp = (config.get("linux") or {}).get("seccomp")
    if seccomp is None:
        return None
    rules = [
        {
            "names": r["names"],
            "action": r["action"],
            "errnoRet": r.get("errnoRet"),
            "args": r.get("args") or [],
        }
        for r in seccomp.get("syscalls") or []
    ]
    top = {k: v for k, v in seccomp.items() if k != "syscalls" and v not in (None, [], "")}
    return {**top, "syscalls": rules}


@pytest.mark.parametrize(
    "options",
    [(), ("--cap-add", "SYS_ADMIN"), ("--cap-drop", "ALL"), ("--cap-add", "SYS_PTRACE", "--cap-add", "SYS_TIME"),
     ("--cap-add", "SYS_NICE", "--cap-drop", "CHOWN"), ("--security-opt", "seccomp=unconfined")],
    ids=lambda o: " ".join(o) or "default",
)  # fmt: skip
def test_oci_seccomp_is_dockerds_rule_for_rule(
    ref: RefDockerd, pyd: PyDockerd, options: tuple[str, ...]
) -> None:
    """The linux.seccomp each engine hands the runtime, read from the task's bundle."""
    specs = []
    for daemon, bundle in (
        (ref, ref.bundle_dir),
        (pyd, lambda cid: pyd.exec_root / "containerd/state/tasks/moby" / cid),
    ):
        cid = daemon.docker_ok("run", "-d", *options, "busybox", "sleep", "60").strip()
        try:
            specs.append(json.loads((bundle(cid) / "config.json").read_text()))
        finally:
            daemon.docker("rm", "-f", cid)
    want, got = (_seccomp_rules(spec) for spec in specs)
    assert got == want
    if "seccomp=unconfined" not in options:
        assert isinstance(got, dict) and got["defaultAction"] == "SCMP_ACT_ERRNO"
        assert len(got["syscalls"]) > 10
