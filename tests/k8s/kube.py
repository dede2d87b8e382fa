"""Talks to the Kubernetes API server that scripts/kube_up.sh started.

Tests import it (stdlib only, Debian's python3):

    sys.path.insert(0, "<source>/tests/k8s")
    import kube
    cluster = kube.cluster_or_skip(kube_dir)      # exits 77 when none runs
    status, pod = cluster.request("GET", "/api/v1/namespaces/x/pods/y")

The cluster is an API server and etcd only: no kubelet (pods stay Pending and
never start), no controller-manager (no default ServiceAccounts, no garbage
collection, no namespace controller: delete_namespace() does its work).
"""

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

SKIP = 77  # the exit code ctest's SKIP_RETURN_CODE expects


class KubeCluster:
    """The cluster described by the files kube_up.sh wrote into `dir`.

    Attributes (read-only): dir, server (https URL), admin_token,
    limited_token (a user RBAC grants nothing), ca (CA certificate path),
    kubeconfig and kubeconfig_limited (paths).
    """

    def __init__(self, dir):
        self.dir = os.path.abspath(dir)
        self.server = self._read("server")
        self.admin_token = self._read("admin.token")
        self.limited_token = self._read("limited.token")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.kubeconfig_limited = os.path.join(self.dir, "kubeconfig-limited")
        self._ssl = ssl.create_default_context(cafile=self.ca)
        self._collections = None

    def _read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read().strip()

    def _open(self, method, path, body, token, content_type, timeout):
        data = None
        headers = {"Accept": "application/json"}
        token = self.admin_token if token is None else token
        if token:
            headers["Authorization"] = "Bearer " + token
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if content_type is None:
                # A PATCH with a JSON object is a JSON merge patch unless
                # told otherwise (strategic-merge-patch+json, json-patch+json).
                content_type = ("application/merge-patch+json" if method == "PATCH"
                                else "application/json")
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers=headers)
        return urllib.request.urlopen(req, context=self._ssl, timeout=timeout)

    def request(self, method, path, body=None, token=None, content_type=None, timeout=30):
        """Sends one request; returns (status, decoded JSON body or None).

        `body` is a dict (sent as JSON) or bytes; `token` defaults to the
        admin token ("" sends none: anonymous). HTTP errors are returned, not raised: a 404 gives
        (404, the Status object); only transport failures raise.
        """
        try:
            with self._open(method, path, body, token, content_type, timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read())

    def watch(self, path, resource_version, timeout=10, token=None):
        """Yields (type, object) events of a watch on the collection `path`
        (which may carry a query such as ?labelSelector=...) from
        `resource_version`, until the server ends it after `timeout` s or the
        caller stops iterating. Raises urllib.error.HTTPError when refused."""
        sep = "&" if "?" in path else "?"
        query = urllib.parse.urlencode({"watch": "1", "resourceVersion": resource_version,
                                        "timeoutSeconds": str(timeout)})
        with self._open("GET", path + sep + query, None, token, None, timeout + 5) as resp:
            for line in resp:
                if line.strip():
                    ev = json.loads(line)
                    yield ev["type"], ev["object"]

    def create_namespace(self, name=None, labels=None):
        """Creates a namespace (a fresh "outpost-test-<hex>" by default) and
        returns its name. Raises RuntimeError on any answer but 201."""
        name = name or "outpost-test-" + uuid.uuid4().hex[:8]
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}}}
        status, obj = self.request("POST", "/api/v1/namespaces", body)
        if status != 201:
            raise RuntimeError(f"creating namespace {name}: {status} {obj}")
        return name

    def delete_namespace(self, name):
        """Deletes a namespace and everything in it, at once.

        With no controller-manager nothing empties a deleted namespace, so
        this does what its namespace controller would: delete every
        namespaced collection the server lists, then clear the namespace's
        finalizer so that it goes away. Returns when it is gone (a missing
        namespace is fine); raises RuntimeError on failure."""
        for version, resource, at_once in self._namespaced_collections():
            path = f"{version}/namespaces/{name}/{resource}"
            if at_once:
                self.request("DELETE", path + "?gracePeriodSeconds=0")
                continue
            _, items = self.request("GET", path)
            for item in (items or {}).get("items", []):
                self.request("DELETE", f"{path}/{item['metadata']['name']}")
        status, obj = self.request("DELETE", f"/api/v1/namespaces/{name}")
        if status == 404:
            return
        if status not in (200, 202):
            raise RuntimeError(f"deleting namespace {name}: {status} {obj}")
        status, obj = self.request("GET", f"/api/v1/namespaces/{name}")
        if status == 200:
            obj["spec"]["finalizers"] = []
            status, obj = self.request("PUT", f"/api/v1/namespaces/{name}/finalize", obj)
            if status != 200:
                raise RuntimeError(f"finalizing namespace {name}: {status} {obj}")
        status, obj = self.request("GET", f"/api/v1/namespaces/{name}")
        if status != 404:
            raise RuntimeError(f"namespace {name} still there: {status} {obj}")

    def _namespaced_collections(self):
        """(group-version path, resource, has deletecollection) of every
        namespaced resource that can be deleted (pods, services...), cached."""
        if self._collections is None:
            versions = ["/api/v1"]
            _, groups = self.request("GET", "/apis")
            for g in groups.get("groups", []):
                versions.append("/apis/" + g["preferredVersion"]["groupVersion"])
            self._collections = []
            for v in versions:
                _, res = self.request("GET", v)
                for r in res.get("resources", []):
                    verbs = r.get("verbs", [])
                    if r["namespaced"] and "/" not in r["name"] and "delete" in verbs \
                            and "list" in verbs:
                        self._collections.append((v, r["name"], "deletecollection" in verbs))
        return self._collections


def _decode(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def cluster_or_skip(dir):
    """The KubeCluster in `dir`, or exit 77 (skip) with a message when
    kube_up.sh did not start one there (not built, not root, skipped)."""
    if not os.path.exists(os.path.join(dir, "apiserver.pid")) \
            or not os.path.exists(os.path.join(dir, "server")):
        print(f"kube: no API server running for {dir} (scripts/kube_up.sh skipped "
              "or not run): skipped", file=sys.stderr)
        sys.exit(SKIP)
    return KubeCluster(dir)
