"""One Elasticsearch node (the integ-test distribution from Maven Central), security off, data in the state dir.

Elasticsearch refuses to run as root. When the stack is started by root, the node runs in a user namespace
as `nobody` (``unshare --user --map-user=65534``): it is not root inside, while the files it writes stay
owned by the invoking user outside, so the state directory needs no chown and no system user is created.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import httpx

from ray_app.es_indices import ensure_indices
from ray_app.jvm_artifacts import Java, elasticsearch_home, ensure_bundle
from ray_app.stack.processes import StackError
from ray_app.stack.service import Launch, Listener, Service

_NOBODY = 65534


class ElasticsearchService(Service):
    name = "elasticsearch"

    @property
    def address(self) -> str:
        return self.settings.elasticsearch.url

    def listeners(self) -> list[Listener]:
        url = urlsplit(self.settings.elasticsearch.url)
        if url.scheme != "http":
            raise StackError("the local stack serves Elasticsearch over plain http: elasticsearch.url must be http://")
        return [
            Listener(url.hostname or "127.0.0.1", url.port or 9200, "Elasticsearch HTTP"),
            Listener(
                url.hostname or "127.0.0.1", self.settings.stack.elasticsearch_transport_port, "Elasticsearch transport"
            ),
        ]

    def _elasticsearch_yml(self) -> str:
        http, transport = self.listeners()
        return "\n".join(
            [
                "cluster.name: ray-app-local",
                "node.name: local",
                "discovery.type: single-node",
                f"network.host: {http.host}",
                f"http.port: {http.port}",
                f"transport.port: {transport.port}",
                f"path.data: {self.data_dir}",
                f"path.logs: {self.settings.logs_dir / 'elasticsearch'}",
                "xpack.security.enabled: false",
                # a small local disk must not turn the indices read-only behind the user's back
                "cluster.routing.allocation.disk.threshold_enabled: false",
                "action.destructive_requires_name: true",
                "",
            ]
        )

    def launch(self, java: Java) -> Launch:
        bundle, _ = ensure_bundle(self.settings, "elasticsearch")
        home = elasticsearch_home(bundle)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name in ("jvm.options", "log4j2.properties"):
            shutil.copyfile(home / "config" / name, self.config_dir / name)
        heap_dir = self.config_dir / "jvm.options.d"
        heap_dir.mkdir(exist_ok=True)
        heap = self.settings.stack.elasticsearch_heap
        (heap_dir / "heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        (self.config_dir / "elasticsearch.yml").write_text(self._elasticsearch_yml())
        for folder in (self.data_dir, self.settings.logs_dir / "elasticsearch", self.settings.state_dir / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ES_", "JAVA_TOOL_OPTIONS"))}
        tmp = self.settings.state_dir / "tmp"
        # CLI_JAVA_OPTS: the launcher JVM's scratch files go to the state dir too, not /tmp
        env.update(
            ES_JAVA_HOME=str(java.home),
            ES_PATH_CONF=str(self.config_dir),
            ES_TMPDIR=str(tmp),
            CLI_JAVA_OPTS=f"-Djava.io.tmpdir={tmp}",
        )
        argv = [str(home / "bin" / "elasticsearch")]
        if os.geteuid() == 0:
            unshare = shutil.which("unshare")
            if not unshare:
                raise StackError(
                    "Elasticsearch cannot run as root and `unshare` (util-linux) is missing: "
                    "run the stack as a regular user or install util-linux"
                )
            argv = [unshare, "--user", f"--map-user={_NOBODY}", f"--map-group={_NOBODY}", *argv]
        return Launch(argv=argv, env=env)

    def healthy(self) -> bool:
        try:
            response = httpx.get(
                f"{self.settings.elasticsearch.url}/_cluster/health", params={"timeout": "1s"}, timeout=2
            )
            return response.status_code == 200 and response.json().get("status") in {"green", "yellow"}
        except (httpx.HTTPError, ValueError):
            return False

    def after_start(self) -> list[str]:
        return ensure_indices(self.settings)
