"""Env images against the real Docker engine: build once, reuse, refuse escapes, fail clearly."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.gateway_agent.fake_reporter import FakeReporter
from unidesk.gateway_agent.envbuild import EnvBuilder, env_tag
from unidesk.gateway_agent.exec_errors import PrepareFailed
from unidesk.gateway_agent.gitcache import GitCache
from unidesk.gateway_agent.images import ENV_REPO, ImageLedger

pytestmark = pytest.mark.usefixtures("env_image_cleanup")


def builder(config) -> EnvBuilder:
    return EnvBuilder(config, GitCache(config), ImageLedger(config.cache_path))


async def test_builds_once_then_reuses_tag(exec_config, make_repo, docker, busybox_image) -> None:
    repo = make_repo("env")
    sha = repo.commit(
        {
            "envs/py/Dockerfile": f"FROM {busybox_image}\nCOPY hello.txt /hello.txt\n"
            "RUN echo built-marker\n",
            "envs/py/hello.txt": "hi\n",
        }
    )
    envs = builder(exec_config)
    reporter = FakeReporter()
    # the context is the whole repository: COPY paths are relative to its root
    with pytest.raises(PrepareFailed, match="build failed"):
        await envs.ensure_image(docker, repo.url, sha, "envs/py/Dockerfile", reporter)
    sha = repo.commit(
        {
            "envs/py/Dockerfile": f"FROM {busybox_image}\nCOPY envs/py/hello.txt /hello.txt\n"
            "RUN echo built-marker\n"
        }
    )
    reporter = FakeReporter()
    first = await envs.ensure_image(docker, repo.url, sha, "envs/py/Dockerfile", reporter)
    assert first.built and first.tag == env_tag(repo.url, sha, "envs/py/Dockerfile")
    assert "built-marker" in reporter.text("build")
    assert reporter.events == ["build_image"]
    info = await docker.images.inspect(first.tag)
    assert info["Config"]["Labels"]["unidesk.env.commit"] == sha
    again_reporter = FakeReporter()
    again = await builder(exec_config).ensure_image(
        docker, repo.url, sha, "envs/py/Dockerfile", again_reporter
    )
    assert not again.built and again.tag == first.tag
    assert again_reporter.events == [] and not again_reporter.logs["build"]
    assert not list((exec_config.cache_path / "envctx").glob("*-*"))  # scratch context removed


async def test_concurrent_dispatches_of_one_env_build_once(
    exec_config, make_repo, docker, busybox_image
) -> None:
    repo = make_repo("env")
    sha = repo.commit({"Dockerfile": f"FROM {busybox_image}\nRUN echo once > /once\n"})
    envs = builder(exec_config)
    results = await asyncio.gather(
        *(envs.ensure_image(docker, repo.url, sha, "Dockerfile", FakeReporter()) for _ in range(3))
    )
    assert [r.built for r in results].count(True) == 1
    assert len({r.tag for r in results}) == 1


@pytest.mark.parametrize(
    "path, why",
    [
        ("../Dockerfile", "contains '..'"),
        ("envs/../../Dockerfile", "contains '..'"),
        ("/etc/passwd", "is absolute"),
        ("", "empty"),
    ],
)
async def test_bad_dockerfile_paths_are_refused_before_any_fetch(
    exec_config, make_repo, docker, path, why
) -> None:
    repo = make_repo("env")
    sha = repo.commit({"Dockerfile": "FROM scratch\n"})
    with pytest.raises(PrepareFailed, match=why):
        await builder(exec_config).ensure_image(docker, repo.url, sha, path, FakeReporter())
    assert not (exec_config.cache_path / "git").exists()


@pytest.mark.parametrize("link", ["/etc/hostname", "../../../../../../etc/hostname"])
async def test_symlink_escaping_the_repo_is_refused(exec_config, make_repo, docker, link) -> None:
    repo = make_repo("env")
    sha = repo.commit({"real": "x"}, symlinks={"envs/Dockerfile": link})
    reporter = FakeReporter()
    with pytest.raises(PrepareFailed, match="resolves outside the env repository"):
        await builder(exec_config).ensure_image(docker, repo.url, sha, "envs/Dockerfile", reporter)
    assert "build_image" not in reporter.events


async def test_symlinked_dir_escape_is_refused(exec_config, make_repo, docker) -> None:
    repo = make_repo("env")
    sha = repo.commit({"real": "x"}, symlinks={"envs": "/etc"})
    with pytest.raises(PrepareFailed, match="resolves outside"):
        await builder(exec_config).ensure_image(
            docker, repo.url, sha, "envs/hostname", FakeReporter()
        )


async def test_failing_dockerfile_reports_the_build_error(
    exec_config, make_repo, docker, busybox_image
) -> None:
    repo = make_repo("env")
    sha = repo.commit({"Dockerfile": f"FROM {busybox_image}\nRUN echo about-to-fail && exit 3\n"})
    reporter = FakeReporter()
    with pytest.raises(PrepareFailed) as info:
        await builder(exec_config).ensure_image(docker, repo.url, sha, "Dockerfile", reporter)
    assert "env image build failed" in str(info.value) and sha in str(info.value)
    assert "returned a non-zero code: 3" in str(info.value)
    assert "about-to-fail" in reporter.text("build")
    tag = env_tag(repo.url, sha, "Dockerfile")
    assert not await builder(exec_config).image_exists(docker, tag)


async def test_missing_env_commit_names_repo(exec_config, make_repo, docker) -> None:
    repo = make_repo("env")
    repo.commit({"Dockerfile": "FROM scratch\n"})
    with pytest.raises(PrepareFailed, match=f"not found in repository file://{repo.path}"):
        await builder(exec_config).ensure_image(
            docker, repo.url, "f" * 40, "Dockerfile", FakeReporter()
        )


async def test_prune_removes_least_recently_used_beyond_budget(
    exec_config, make_repo, docker, busybox_image
) -> None:
    repo = make_repo("env")
    envs = builder(exec_config)
    ledger = ImageLedger(exec_config.cache_path)
    tags = []
    for i in range(3):
        sha = repo.commit({"Dockerfile": f"FROM {busybox_image}\nRUN echo {i} > /n\n"})
        tags.append(
            (await envs.ensure_image(docker, repo.url, sha, "Dockerfile", FakeReporter())).tag
        )
    for age, tag in zip(
        (300, 100, 200), tags, strict=False
    ):  # tags[0] oldest use, then tags[2], tags[1] newest
        stamp = exec_config.cache_path / "images" / tag.split(":")[1]
        os.utime(stamp, (stamp.stat().st_mtime - age,) * 2)
    sizes = {t: (await docker.images.inspect(t))["Size"] for t in tags}
    ours = await docker.images.list(filters={"label": ["unidesk.env"]})
    # the engine's other env images (other tests'), as prune sees them: tagged in ENV_REPO
    # (an untagged, superseded image carries the label too but is no env image of the ledger)
    foreign = [
        i
        for i in ours
        if any(t.startswith(ENV_REPO + ":") for t in i["RepoTags"] or [])
        and not set(i["RepoTags"]) & set(tags)
    ]
    others = sum(i["Size"] for i in foreign)
    foreign_tags = [t for i in foreign for t in i["RepoTags"] or []]  # other tests' images stay
    budget = others + sizes[tags[1]] + sizes[tags[2]]
    result = await ledger.prune(docker, budget, protect=[tags[0], *foreign_tags])
    assert tags[0] not in result.removed  # protected (in use) even though oldest
    assert result.removed == [tags[2]]
    result = await ledger.prune(docker, others + sizes[tags[1]], protect=foreign_tags)
    assert result.removed == [tags[0]]
    assert await envs.image_exists(docker, tags[1])
