"""Snapshots of docker sandboxes (a mixin of ``DockerRuntime``).

The container is paused, its directory tree copied and its own changes committed to the local image
``rock-envs-snapshot:<snapshot id>`` (labelled ``rock-envs.snapshot``), then it runs on; a sandbox
made from the snapshot runs that image over a copy of the tree. Deleting a snapshot untags its
image; an untagged snapshot image is removed as soon as no container uses it (checked when a
container made from a snapshot is removed, and at each delete).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import SandboxError
from ..models import SandboxSnapshot, SandboxSpec
from ..snapshots import copy_tree
from . import containers
from .base import Placement, SandboxDirs

SNAPSHOT_REPOSITORY = "rock-envs-snapshot"


class DockerSnapshots:
    """Needs the runtime's ``client`` (a ``docker.DockerClient``) and ``_run`` (its thread pool)."""

    client: Any
    _run: Any

    async def snapshot(self, placement: Placement, dirs: SandboxDirs, snapshot_id: str, dest: str) -> dict[str, Any]:
        cid = str(placement.extra.get("container"))
        await self._run(self._container_call, cid, "pause")
        try:  # paused: the tree and the container's changes are of one moment
            size = await copy_tree(dirs.root, os.path.join(dest, "root"))
            image = await self._run(self._commit, cid, snapshot_id)
        finally:
            await self._run(self._container_call, cid, "unpause")
        return {"size": size, "image": image}

    def _container_call(self, cid: str, method: str) -> None:
        import docker.errors

        try:
            getattr(self.client.containers.get(cid), method)()
        except docker.errors.APIError as exc:
            raise SandboxError(f"`snapshot`: docker could not {method} container {cid[:12]}: {exc}") from exc

    def _commit(self, cid: str, snapshot_id: str) -> str:
        labels = {containers.label("snapshot"): snapshot_id}
        self.client.containers.get(cid).commit(
            repository=SNAPSHOT_REPOSITORY, tag=snapshot_id, pause=False, conf={"Labels": labels}
        )
        return f"{SNAPSHOT_REPOSITORY}:{snapshot_id}"

    async def prepare(self, snapshot: SandboxSnapshot, files: str, dirs: SandboxDirs, spec: SandboxSpec) -> SandboxSpec:
        await copy_tree(files, dirs.root)
        return spec.model_copy(update={"image": snapshot.image}) if snapshot.image else spec

    async def delete_snapshot(self, snapshot: SandboxSnapshot) -> None:
        if snapshot.image:
            await self._run(self._untag, snapshot.image)

    def _untag(self, image: str) -> None:
        import docker.errors

        try:
            self.client.images.remove(image, force=True)  # in use: untagged now, removed with its last container
        except docker.errors.NotFound:
            pass
        self._prune_snapshot_images()

    def _prune_snapshot_images(self) -> None:
        """Remove untagged snapshot images that no container uses any more."""
        import docker.errors

        filters = {"dangling": True, "label": containers.label("snapshot")}
        for image in self.client.api.images(filters=filters, quiet=True):
            try:
                self.client.api.remove_image(image)
            except docker.errors.APIError:  # 409: a container still runs it; NotFound: gone already
                pass
