"""Real builds of real Dockerfiles from busybox through a real pycontainerd: what the built
image's containers see, the image config and history, the cache, reproducibility, and each bad
input's answer with nothing left behind."""

from __future__ import annotations

import io
import tarfile
import time

import pytest

from dockerd.builder import BuildRequestError
from tests.builder.conftest import Env, context, make_builder, start
from tests.daemon.conftest import stop_daemon

DOCKERFILE = """\
FROM busybox
ENV A=1 B="two words"
ARG V=dflt
RUN echo "run:$A:$V" > /run.txt && echo to-stderr >&2
COPY a.txt /app/
COPY dir /app/dir/
WORKDIR /app
CMD ["cat", "/app/a.txt"]
"""
FILES: dict[str, str | bytes] = {
    "Dockerfile": DOCKERFILE,
    "a.txt": "hello a\n",
    "dir/": "",
    "dir/x": "x\n",
    "dir/y": "y\n",
}


def steps(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Step ")]


def test_build_runs_and_image_sees_it(env: Env) -> None:
    build = env.build(FILES, tags=["app:1"], build_args={"V": "given"})
    assert build.error is None, build.messages
    assert build.result is not None
    text = build.text
    assert (
        steps(text)[0] == "Step 1/8 : FROM busybox"
        and steps(text)[-1] == 'Step 8/8 : CMD ["cat", "/app/a.txt"]'
    )
    assert " ---> Running in " in text and "Removing intermediate container " in text
    assert "\x1b[91mto-stderr\n\x1b[0m" in text
    assert text.endswith(f"Successfully built {build.result.image_id[7:19]}\nSuccessfully tagged app:1\n")
    assert {"aux": {"ID": build.result.image_id}} in build.messages
    assert build.result.names == ["docker.io/library/app:1"]
    image_id = build.result.image_id
    assert env.run(image_id, "cat", "/run.txt") == "run:1:given\n"
    assert (
        env.run(image_id, "sh", "-c", "cat /app/a.txt /app/dir/x /app/dir/y; pwd; echo $B")
        == "hello a\nx\ny\n/app\ntwo words\n"
    )
    state = env.image(image_id)
    cfg = state.run_config
    assert cfg["Cmd"] == ["cat", "/app/a.txt"] and cfg["WorkingDir"] == "/app"
    assert (
        "A=1" in cfg["Env"]
        and "B=two words" in cfg["Env"]
        and not any(e.startswith("V=") for e in cfg["Env"])
    )
    history = state.history
    created_by = [h["created_by"] for h in history]
    assert created_by[-7] == "/bin/sh -c #(nop)  ENV A=1 B=two words"
    assert created_by[-6] == "/bin/sh -c #(nop)  ARG V=dflt"
    assert created_by[-5] == '|1 V=given /bin/sh -c echo "run:$A:$V" > /run.txt && echo to-stderr >&2'
    assert created_by[-4].startswith("/bin/sh -c #(nop) COPY file:") and created_by[-4].endswith(" in /app/ ")
    assert created_by[-3].startswith("/bin/sh -c #(nop) COPY dir:")
    assert created_by[-2] == "/bin/sh -c #(nop) WORKDIR /app"
    assert created_by[-1] == '/bin/sh -c #(nop)  CMD ["cat" "/app/a.txt"]'
    # one layer per step that changed files: busybox's, RUN, two COPYs, WORKDIR made nothing new (/app existed)
    assert len(state.diff_ids) == 4 and sum(not h.get("empty_layer") for h in history) == 4


def test_rebuild_hits_the_cache_for_every_step(env: Env) -> None:
    started = time.monotonic()
    first = env.build(FILES, tags=["app:1"])
    cold = time.monotonic() - started
    started = time.monotonic()
    second = env.build(FILES, tags=["app:1"])
    cached = time.monotonic() - started
    assert first.result and second.result and first.result.image_id == second.result.image_id
    assert second.text.count(" ---> Using cache\n") == 7  # every step but FROM
    assert " ---> Running in" not in second.text
    assert cached < cold / 3, (cold, cached)


def test_changed_file_invalidates_from_its_copy_on(env: Env) -> None:
    first = env.build(FILES)
    changed = dict(FILES, **{"dir/y": "changed\n"})
    second = env.build(changed)
    assert first.result and second.result and first.result.image_id != second.result.image_id
    blocks = second.text.split("Step ")[1:]
    assert [(" ---> Using cache" in b) for b in blocks] == [
        False,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert env.run(second.result.image_id, "cat", "/app/dir/y") == "changed\n"
    # a file's time alone does not count (as in Docker: checksums of content and mode)
    touched = env.builder.build(
        context(changed, mtime=1800000000),
        __import__("dockerd.builder", fromlist=["BuildOptions"]).BuildOptions(),
        lambda m: None,
    )
    assert touched.image_id == second.result.image_id


def test_no_cache_and_source_date_epoch_reproducible(env: Env) -> None:
    files = dict(FILES, Dockerfile=DOCKERFILE + "RUN date > /when && mkdir -p /made/deeper\n")
    args = {"SOURCE_DATE_EPOCH": "1700000000"}
    first = env.build(files, no_cache=True, build_args=args)
    time.sleep(1.1)
    second = env.build(files, no_cache=True, build_args=dict(args))
    assert first.result and second.result
    assert " ---> Using cache" not in second.text
    # `date` prints a different time, so the layers differ ... unless nothing time-dependent is written:
    stable = dict(FILES, Dockerfile=DOCKERFILE + "RUN mkdir -p /made/deeper && echo same > /made/f\n")
    one = env.build(stable, no_cache=True, build_args=args)
    time.sleep(1.1)
    two = env.build(stable, no_cache=True, build_args=args)
    assert one.result and two.result and one.result.image_id == two.result.image_id
    state = env.image(one.result.image_id)
    assert state.config["created"] == "2023-11-14T22:13:20Z"
    assert all(h["created"] == "2023-11-14T22:13:20Z" for h in state.history[-8:])
    # without the epoch two builds differ (the times in config and layers)
    plain_one = env.build(stable, no_cache=True)
    time.sleep(1.1)
    plain_two = env.build(stable, no_cache=True)
    assert plain_one.result and plain_two.result and plain_one.result.image_id != plain_two.result.image_id


def test_multistage_target_args_and_config(env: Env) -> None:
    dockerfile = """\
ARG BASE=busybox
FROM $BASE AS one
ARG BASE
RUN echo "base=$BASE" > /f
FROM busybox AS two
COPY --from=one --chown=7:8 --chmod=640 /f /g
COPY --from=0 /f /h
LABEL a=b "c d"="e f"
EXPOSE 80 53/udp
VOLUME /v
USER 1:2
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD true
ONBUILD RUN echo hi
ENTRYPOINT ["/bin/echo"]
SHELL ["/bin/sh", "-xc"]
ENV U=${UNSET:-dflt} S=${BASE:+set}
FROM busybox AS three
RUN false
"""
    build = env.build({"Dockerfile": dockerfile}, target="two", labels={"extra": "yes"})
    assert build.result is not None, build.messages
    assert len(build.result.stage_ids) == 2 and "three" not in build.text and "RUN false" not in build.text
    assert steps(build.text)[-1] == "Step 18/18 : LABEL extra=yes"
    image_id = build.result.image_id
    assert (
        env.run(image_id, "sh", "-c", "cat /h; stat -c '%u:%g %a' /g /h")
        == "base=busybox\n7:8 640\n0:0 644\n"
    )
    cfg = env.image(image_id).run_config
    assert cfg["Labels"] == {"a": "b", "c d": "e f", "extra": "yes"}
    assert cfg["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}} and cfg["Volumes"] == {"/v": {}}
    assert cfg["User"] == "1:2" and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    assert cfg["OnBuild"] == ["RUN echo hi"] and cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] is None
    assert cfg["Shell"] == ["/bin/sh", "-xc"] and "U=dflt" in cfg["Env"] and "S=" in cfg["Env"]
    # the ONBUILD trigger runs in a build FROM this image
    child = env.build({"Dockerfile": f"FROM {image_id}\n"})
    assert child.result is not None and "# Executing 1 build trigger" in child.text and "hi\n" in child.text


def test_dockerignore_add_archive_and_wildcards(env: Env) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        data = b"inside\n"
        info = tarfile.TarInfo("d/x.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    files: dict[str, str | bytes] = {
        "Dockerfile": "FROM busybox\nADD t.tgz /dst/\nCOPY t.tgz *.log /raw/\nCOPY . /all/\n",
        ".dockerignore": "# comment\n*.log\n!keep.log\nsecret/\n**/tmp\n",
        "t.tgz": inner.getvalue(),
        "drop.log": "x",
        "keep.log": "k",
        "secret/key": "s",
        "a/b/tmp/z": "z",
        "a/b/ok": "o",
    }
    build = env.build(files)
    assert build.result is not None, build.messages
    out = env.run(
        build.result.image_id, "sh", "-c", "cat /dst/d/x.txt; ls /raw; cd /all && find . -type f | sort"
    )
    assert out == "inside\nkeep.log\nt.tgz\n./.dockerignore\n./Dockerfile\n./a/b/ok\n./keep.log\n./t.tgz\n"


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        (
            {"Dockerfile": "FROM busybox\nFOO bar\n"},
            400,
            "dockerfile parse error line 2: unknown instruction: FOO",
        ),
        (
            {"Dockerfile": 'FROM busybox\nCMD ["a", 1]\n'},
            400,
            "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        (
            {"Dockerfile": "FROM busybox\nRUN true\nENV\n"},
            400,
            "dockerfile parse error line 3: ENV requires at least one argument",
        ),
        ({"Dockerfile": "RUN echo\n"}, 400, "no build stage in current context"),
        ({"Dockerfile": ""}, 400, "the Dockerfile (Dockerfile) cannot be empty"),
        ({"a": "x"}, 400, "Cannot locate specified Dockerfile: Dockerfile"),
    ],
)
def test_refused_before_the_stream(
    env: Env, files: dict[str, str | bytes], status: int, message: str
) -> None:
    with pytest.raises(BuildRequestError) as caught:
        env.builder.prepare(
            context(files), __import__("dockerd.builder", fromlist=["BuildOptions"]).BuildOptions()
        )
    assert (caught.value.status, caught.value.message) == (status, message)


def test_not_a_tar_and_unknown_target(env: Env) -> None:
    from dockerd.builder import BuildOptions

    with pytest.raises(BuildRequestError) as caught:
        env.builder.prepare(io.BytesIO(b"not a tar archive " * 100), BuildOptions())
    assert (caught.value.status, caught.value.message) == (400, "archive/tar: invalid tar header")
    with pytest.raises(BuildRequestError) as caught:
        env.builder.prepare(context({"Dockerfile": "FROM busybox AS a\n"}), BuildOptions(target="zzz"))
    assert (caught.value.status, caught.value.message) == (
        400,
        "failed to reach build target zzz in Dockerfile",
    )


@pytest.mark.parametrize(
    ("dockerfile", "message", "code"),
    [
        (
            "FROM busybox\nRUN echo out; exit 3\n",
            "The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3",
            3,
        ),
        (
            "FROM busybox\nCOPY nope /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist",
            None,
        ),
        ("FROM busybox\nCOPY nope* /x\n", "COPY failed: no source files were specified", None),
        (
            "FROM busybox\nCOPY ../x /x\n",
            "COPY failed: forbidden path outside the build context: ../x ()",
            None,
        ),
        (
            "FROM busybox\nCOPY l/passwd /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat l/passwd: file does not exist",
            None,
        ),
        (
            "FROM busybox\nUSER nobodyx\nRUN id\n",
            "unable to find user nobodyx: no matching entries in passwd file",
            None,
        ),
        (
            "FROM busybox\nADD http://127.0.0.1:9/x /x\n",
            "ADD failed: cannot download http://127.0.0.1:9/x: this builder reaches no network for ADD",
            None,
        ),
        (
            "FROM nosuchimage\n",
            "pull access denied for nosuchimage, repository does not exist or may require 'docker login'",
            None,
        ),
    ],
)
def test_failing_steps_leave_nothing(env: Env, dockerfile: str, message: str, code: int | None) -> None:
    files: dict[str, str | bytes] = {"Dockerfile": dockerfile}
    body = context(files)
    if "l/passwd" in dockerfile:  # a symlink out of the context is followed inside it only
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w") as tar:
            raw = dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
            link = tarfile.TarInfo("l")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tar.addfile(link)
        body.seek(0)
    from dockerd.builder import BuildFailed, BuildOptions

    messages: list[dict[str, object]] = []
    with pytest.raises(BuildFailed) as caught:
        env.builder.build(body, BuildOptions(tags=["broken:1"]), messages.append)
    assert caught.value.message == message and caught.value.code == code
    assert caught.value.stream_message()["error"] == message
    if code is not None:
        assert "out\n" in [m.get("stream") for m in messages]
    from containerd.client import list_images

    assert not [i.name for i in list_images(env.client) if "broken" in i.name]
    assert not env.leftovers()


def test_cache_survives_restart_and_prune(env: Env) -> None:
    first = env.build(FILES)
    assert first.result is not None
    env.client.close()
    stop_daemon(env.daemon)
    env.daemon, env.client = start(env.base)
    env.builder = make_builder(env.client, env.base)
    again = env.build(FILES)
    assert again.result is not None and again.text.count(" ---> Using cache\n") == 7
    records = env.builder.cache.records()
    assert len(records) == 7 and sum(env.builder.cache.size(r) for r in records) > 0
    pruned = env.builder.cache.prune()
    assert len(pruned.deleted) == 7 and env.builder.cache.records() == []
    # the image built is still named (an untagged build is kept as a dangling image), so
    # its layers stay; the next build runs every step again
    assert pruned.reclaimed == 0
    third = env.build(FILES)
    assert third.result is not None and " ---> Using cache" not in third.text
