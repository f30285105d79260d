#!/usr/bin/env python3
"""Cross-checks docker/k8s/serve-*.yaml (`meshgatectl serve` in the cluster)
against each other, against the serve.yaml they carry, and against the
gateway's Deployment (same image).

    check_serve_manifests.py REPO_ROOT [--meshgate BUILT_BINARY]

Every check returns a list of problems; the unit tests run them on the real
files (no problems) and on broken in-memory copies (the breakage reported).
Kubernetes references: RBAC
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/), Secret and
ConfigMap volumes and subPath
(https://kubernetes.io/docs/concepts/storage/volumes/), Service ports and
protocols (https://kubernetes.io/docs/concepts/services-networking/service/).
"""

import copy
import os
import posixpath
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402

SERVE_FILE_KEY = "serve.yaml"
HEALTH_PATH = "/healthz"
BINARY = "/usr/local/bin/meshgatectl"
# Container port name -> (serve.yaml key, protocol).
PORTS = {"http-serve": ("listen", "TCP"), "dns": ("dns.listen", "UDP"), "dns-tcp": ("dns.listen", "TCP")}
DNS_PORT = 53


def dig(obj, *keys):
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def name_of(obj):
    return dig(obj, "metadata", "name")


class ServeModel:
    """The pieces of serve's manifests the checks look at, found once."""

    def __init__(self, serve_docs, gateway_docs):
        self.problems = []
        self.docs = serve_docs
        self.deployment = self._one(deploylib.of_kind(serve_docs, "Deployment"), "Deployment")
        self.gateway = (deploylib.of_kind(gateway_docs, "Deployment") or [{}])[0]
        self.namespace = dig(self.deployment, "metadata", "namespace")
        self.pod = dig(self.deployment, "spec", "template") or {}
        self.pod_spec = self.pod.get("spec") or {}
        containers = self.pod_spec.get("containers") or []
        self.container = containers[0] if containers else {}
        if len(containers) != 1:
            self.problems.append("serve Deployment: want one container, have %d" % len(containers))
        self.ports = {}  # name -> (number, protocol)
        for port in self.container.get("ports") or []:
            self.ports[port.get("name")] = (port.get("containerPort"), port.get("protocol", "TCP"))
        self.service = self._one(deploylib.of_kind(serve_docs, "Service"), "Service")
        self.volumes = {v.get("name"): v for v in self.pod_spec.get("volumes") or []}
        self.mounts = self.container.get("volumeMounts") or []
        self.configmaps = {name_of(c): c for c in deploylib.of_kind(serve_docs, "ConfigMap")}
        self.config_path = self._config_path()
        self.config = self._serve_yaml()

    def _one(self, found, what):
        if len(found) != 1:
            self.problems.append("serve: expected exactly one %s, found %d" % (what, len(found)))
        return found[0] if found else {}

    def _config_path(self):
        words = [str(w) for w in (self.container.get("command") or []) + (self.container.get("args") or [])]
        if not words or words[0] != BINARY or words[1:2] != ["serve"]:
            self.problems.append("serve Deployment: runs %r, want %s serve --config PATH" % (words, BINARY))
        for i, word in enumerate(words):
            if word == "--config" and i + 1 < len(words):
                return words[i + 1]
        self.problems.append("serve Deployment: no --config")
        return None

    def _serve_yaml(self):
        holders = [c for c in self.configmaps.values() if SERVE_FILE_KEY in (c.get("data") or {})]
        if len(holders) != 1:
            self.problems.append("serve: want one ConfigMap with a %s key, have %d" % (SERVE_FILE_KEY, len(holders)))
            return {}
        self.config_map = holders[0]
        try:
            config = yaml.safe_load(holders[0]["data"][SERVE_FILE_KEY])
        except yaml.YAMLError as e:
            self.problems.append("ConfigMap %s: %s is not YAML: %s" % (name_of(holders[0]), SERVE_FILE_KEY, e))
            return {}
        if not isinstance(config, dict):
            self.problems.append("ConfigMap %s: %s is not a mapping" % (name_of(holders[0]), SERVE_FILE_KEY))
            return {}
        return config

    def address(self, key):
        """(host, port) of serve.yaml's `listen` or `dns.listen`, or None."""
        value = dig(self.config, *key.split("."))
        if value is None:
            self.problems.append("serve.yaml: no %s (the default hides the port from this check)" % key)
            return None
        try:
            return deploylib.parse_address(value)
        except ValueError as e:
            self.problems.append("serve.yaml: %s: %s" % (key, e))
            return None

    def resolve_port(self, port):
        if isinstance(port, int):
            return port
        return (self.ports.get(port) or (None,))[0]

    def mount_of(self, path):
        """(mount, volume) that provides the file `path`, or (None, None)."""
        path = posixpath.normpath(path)
        for mount in self.mounts:
            at = posixpath.normpath(mount.get("mountPath", ""))
            volume = self.volumes.get(mount.get("name")) or {}
            if mount.get("subPath") and at == path:
                return mount, volume
            if not mount.get("subPath") and at == posixpath.dirname(path):
                return mount, volume
        return None, None


# --- the checks -----------------------------------------------------------------

def check_rbac(m):
    """Exactly get/list/watch on deploylib.API_READS, bound to the pod's account."""
    p = []
    roles = deploylib.of_kind(m.docs, "ClusterRole")
    if len(roles) != 1:
        return ["serve: want one ClusterRole, have %d" % len(roles)]
    role = roles[0]
    granted = set()
    for rule in role.get("rules") or []:
        if sorted(rule.get("verbs") or []) != deploylib.READ_VERBS:
            p.append("ClusterRole %s: verbs %r, want exactly get, list, watch" % (name_of(role), rule.get("verbs")))
        for extra in ("resourceNames", "nonResourceURLs"):
            if rule.get(extra):
                p.append("ClusterRole %s: %s %r: serve needs none" % (name_of(role), extra, rule.get(extra)))
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                granted.add((group, resource))
    if granted != deploylib.API_READS:
        p.append("ClusterRole %s: not exactly the resources serve reads: extra %r, missing %r"
                 % (name_of(role), sorted(granted - deploylib.API_READS), sorted(deploylib.API_READS - granted)))
    account = m.pod_spec.get("serviceAccountName")
    if not account:
        p.append("serve Deployment: no serviceAccountName (the namespace's default account has no RBAC here)")
    accounts = [a for a in deploylib.of_kind(m.docs, "ServiceAccount")
                if name_of(a) == account and dig(a, "metadata", "namespace") == m.namespace]
    if account and not accounts:
        p.append("serve Deployment: ServiceAccount %s/%s is not in the manifests" % (m.namespace, account))
    bound = False
    for b in deploylib.of_kind(m.docs, "ClusterRoleBinding"):
        ref = b.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole" or ref.get("name") != name_of(role):
            continue
        for s in b.get("subjects") or []:
            if s.get("kind") == "ServiceAccount" and s.get("name") == account:
                if s.get("namespace") == m.namespace:
                    bound = True
                else:
                    p.append("ClusterRoleBinding %s: ServiceAccount %s in namespace %r, the Deployment runs in %r"
                             % (name_of(b), account, s.get("namespace"), m.namespace))
    if not bound:
        p.append("ClusterRoleBinding: none binds ClusterRole %s to ServiceAccount %s/%s"
                 % (name_of(role), m.namespace, account))
    in_cluster = any(dig(c, "kubernetes", "inCluster") is True for c in m.config.get("clusters") or [])
    automount = m.pod_spec.get("automountServiceAccountToken",
                               dig(accounts, 0, "automountServiceAccountToken") if accounts else None)
    if in_cluster and automount is False:
        p.append("serve Deployment: a cluster uses kubernetes.inCluster but the service account token is not mounted")
    return p


def check_mounts(m):
    """serve.yaml comes from the ConfigMap; every file it names is mounted."""
    p = []
    if m.config_path is None:
        return p
    mount, volume = m.mount_of(m.config_path)
    cm_name = dig(volume, "configMap", "name")
    key = mount.get("subPath") if mount and mount.get("subPath") else posixpath.basename(m.config_path)
    cm = m.configmaps.get(cm_name)
    if mount is None or cm is None or key not in (cm.get("data") or {}):
        p.append("serve: no volumeMount provides %s from a ConfigMap key in the manifests" % m.config_path)
    elif cm is not getattr(m, "config_map", None):
        p.append("serve: %s is mounted from ConfigMap %s, not the one holding serve.yaml" % (m.config_path, cm_name))
    base = posixpath.dirname(m.config_path)
    for cluster in m.config.get("clusters") or []:
        kubeconfig = dig(cluster, "kubernetes", "kubeconfig")
        if kubeconfig:
            p += check_secret_file(m, cluster.get("name"), posixpath.join(base, kubeconfig))
        for entry in cluster.get("mesh") or []:
            if m.mount_of(posixpath.join(base, str(entry)))[0] is None:
                p.append("serve.yaml: cluster %s: mesh %s is not mounted" % (cluster.get("name"), entry))
    allocations = m.config.get("allocations")
    if allocations:
        path = posixpath.normpath(posixpath.join(base, allocations))
        mounts = [x for x in m.mounts if posixpath.normpath(x.get("mountPath", "")) == path]
        volume = m.volumes.get(mounts[0].get("name")) if mounts else None
        if not mounts or mounts[0].get("readOnly") or not any(k in (volume or {}) for k in
                                                               ("emptyDir", "persistentVolumeClaim")):
            p.append("serve.yaml: allocations %s must be a writable emptyDir or PVC mount "
                     "(the root filesystem is read-only)" % path)
    return p


def check_secret_file(m, cluster, path):
    """A remote cluster's kubeconfig: the file of a mounted Secret volume."""
    mount, volume = m.mount_of(path)
    secret = (volume or {}).get("secret")
    if mount is None or secret is None:
        return ["serve.yaml: cluster %s: kubeconfig %s is not mounted from a Secret" % (cluster, path)]
    p = []
    if mount.get("readOnly") is not True:
        p.append("volumeMount %s: a credentials mount should be readOnly" % mount.get("mountPath"))
    if not mount.get("subPath"):
        paths = [i.get("path") for i in secret.get("items") or []]
        if posixpath.basename(path) not in paths:
            p.append("Secret volume %s: items %r do not pin the file %s (name the key explicitly)"
                     % (mount.get("name"), paths, posixpath.basename(path)))
    return p


def check_ports(m):
    """serve.yaml listens where the container ports say; the Service maps 15180
    and DNS 53/UDP+TCP onto them."""
    p = []
    for name, (key, protocol) in PORTS.items():
        have = m.ports.get(name)
        address = m.address(key)
        if have is None:
            p.append("serve Deployment: container port %r is not declared" % name)
            continue
        if have[1] != protocol:
            p.append("serve Deployment: container port %r is %s, want %s" % (name, have[1], protocol))
        if address and address[1] != have[0]:
            p.append("serve.yaml: %s port %s != container port %r (%s)" % (key, address[1], name, have[0]))
        if address and address[0] in ("127.0.0.1", "::1", "localhost"):
            p.append("serve.yaml: %s is on loopback; the Service cannot reach it" % key)
    service_ports = dig(m.service, "spec", "ports") or []
    if dig(m.service, "spec", "type") not in (None, "ClusterIP"):
        p.append("serve Service: type %r, want ClusterIP (in-cluster only)" % dig(m.service, "spec", "type"))
    selector = dig(m.service, "spec", "selector") or {}
    labels = dig(m.pod, "metadata", "labels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        p.append("serve Service: selector %r does not match the pod labels %r" % (selector, labels))
    want = {("http-serve", "TCP"): (m.ports.get("http-serve") or (None,))[0],
            ("dns", "UDP"): DNS_PORT, ("dns-tcp", "TCP"): DNS_PORT}
    for (name, protocol), port in want.items():
        found = [sp for sp in service_ports if sp.get("protocol", "TCP") == protocol and sp.get("port") == port]
        if not found:
            p.append("serve Service: no %s port %s (%s)" % (protocol, port, name))
            continue
        target = m.resolve_port(found[0].get("targetPort", found[0].get("port")))
        if target != (m.ports.get(name) or (None,))[0]:
            p.append("serve Service: %s port %s targets %r, not the container's %r port %s"
                     % (protocol, port, found[0].get("targetPort"), name, (m.ports.get(name) or (None,))[0]))
    return p


def check_probes(m):
    p = []
    listen = (m.ports.get("http-serve") or (None,))[0]
    scheme = "HTTPS" if m.config.get("tls") else "HTTP"
    for kind in ("readinessProbe", "livenessProbe"):
        get = dig(m.container, kind, "httpGet")
        if not isinstance(get, dict):
            p.append("serve %s: must be an httpGet probe" % kind)
            continue
        if get.get("path") != HEALTH_PATH:
            p.append("serve %s: path %r, serve answers health on %s" % (kind, get.get("path"), HEALTH_PATH))
        if m.resolve_port(get.get("port")) != listen:
            p.append("serve %s: port %r is not the serve listen port %s" % (kind, get.get("port"), listen))
        if get.get("scheme", "HTTP") != scheme:
            p.append("serve %s: scheme %r, serve.yaml makes it %s" % (kind, get.get("scheme", "HTTP"), scheme))
    return p


def check_pod(m):
    """Non-root, read-only root, no capabilities, bounded resources, the gateway's image."""
    p = []
    pod_sc = m.pod_spec.get("securityContext") or {}
    sc = m.container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if not isinstance(uid, int) or uid == 0 or sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        p.append("serve securityContext: must run as a non-zero uid with runAsNonRoot: true")
    if sc.get("readOnlyRootFilesystem") is not True:
        p.append("serve securityContext: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False or "ALL" not in (dig(sc, "capabilities", "drop") or []):
        p.append("serve securityContext: allowPrivilegeEscalation false and capabilities drop ALL")
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not dig(m.container, "resources", bound, resource):
                p.append("serve Deployment: no %s %s" % (resource, bound[:-1]))
    image = dig(m.gateway, "spec", "template", "spec", "containers", 0, "image")
    if m.container.get("image") != image:
        p.append("serve Deployment: image %r, the gateway's is %r (serve ships in it)" % (m.container.get("image"), image))
    if m.namespace is None or any(dig(d, "metadata", "namespace") != m.namespace
                                  for _, d in m.docs if d.get("kind") not in ("ClusterRole", "ClusterRoleBinding")):
        p.append("serve: every namespaced object needs the Deployment's namespace %r" % m.namespace)
    return p


CHECKS = [check_rbac, check_mounts, check_ports, check_probes, check_pod]


def check_serve(serve_docs, gateway_docs):
    m = ServeModel(serve_docs, gateway_docs)
    problems = []
    for check in CHECKS:
        problems += check(m)
    return list(dict.fromkeys(m.problems + problems))


# --- tests ----------------------------------------------------------------------

ROOT = None
MESHGATE = None
MESHGATECTL = None


def serve_check(serve_yaml_text):
    """`meshgatectl serve --check` on a serve.yaml text: (exit code, output)."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "serve.yaml")
        with open(path, "w") as f:
            f.write(serve_yaml_text)
        r = subprocess.run([MESHGATECTL, "serve", "--check", "--config", path], capture_output=True, text=True,
                           timeout=30)
        return r.returncode, r.stdout + r.stderr


def k8s_dir():
    return os.path.join(ROOT, "docker", "k8s")


class RealFiles(unittest.TestCase):
    def test_serve_manifests_consistent(self):
        serve = deploylib.serve_manifests(k8s_dir())
        self.assertEqual(sorted({d["kind"] for _, d in serve}),
                         ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service",
                          "ServiceAccount"])
        self.assertEqual(check_serve(serve, deploylib.gateway_manifests(k8s_dir())), [])

    def test_serve_yaml_follows_both_clusters(self):
        config = ServeModel(deploylib.serve_manifests(k8s_dir()), []).config
        kube = [c.get("kubernetes") for c in config["clusters"]]
        self.assertEqual(kube[0], {"inCluster": True})
        self.assertEqual(kube[1], {"kubeconfig": "/etc/meshgatectl/remote/cluster2/kubeconfig"})

    def test_meshgatectl_accepts_the_configmaps_serve_yaml(self):
        if not MESHGATECTL or not os.access(MESHGATECTL, os.X_OK):
            self.skipTest("no built meshgatectl (--meshgatectl)")
        cm = deploylib.of_kind(deploylib.serve_manifests(k8s_dir()), "ConfigMap")[0]
        code, out = serve_check(cm["data"][SERVE_FILE_KEY])
        self.assertEqual(code, 0, out)
        self.assertIn("Kubernetes API server in-cluster", out)
        self.assertIn("kubeconfig /etc/meshgatectl/remote/cluster2/kubeconfig", out)
        # And it can fail: a misspelt key is refused with its field path.
        code, out = serve_check(cm["data"][SERVE_FILE_KEY].replace("inCluster", "inCluser"))
        self.assertEqual(code, 1, out)
        self.assertIn("inCluser", out)

    def test_no_secret_is_shipped(self):
        # A placeholder Secret would overwrite the real one on `kubectl apply -f docker/k8s/`.
        self.assertEqual(deploylib.of_kind(deploylib.load_manifests(k8s_dir()), "Secret"), [])


class BrokenCopies(unittest.TestCase):
    """Each test breaks one thing in a copy and expects it reported."""

    @classmethod
    def setUpClass(cls):
        cls.serve = deploylib.serve_manifests(k8s_dir())
        cls.gateway = deploylib.gateway_manifests(k8s_dir())

    def setUp(self):
        self.d = copy.deepcopy(self.serve)

    def obj(self, kind):
        return [doc for _, doc in self.d if doc.get("kind") == kind][0]

    def pod(self):
        return self.obj("Deployment")["spec"]["template"]["spec"]

    def container(self):
        return self.pod()["containers"][0]

    def rules(self):
        return self.obj("ClusterRole")["rules"]

    def edit_config(self, edit):
        cm = self.obj("ConfigMap")
        config = yaml.safe_load(cm["data"][SERVE_FILE_KEY])
        edit(config)
        cm["data"][SERVE_FILE_KEY] = yaml.safe_dump(config)

    def assertReported(self, fragment):
        problems = check_serve(self.d, self.gateway)
        self.assertTrue(any(fragment in x for x in problems),
                        "expected a problem mentioning %r, got %r" % (fragment, problems))

    def test_baseline_is_clean(self):
        self.assertEqual(check_serve(self.d, self.gateway), [])

    def test_rbac_extra_verb(self):
        self.rules()[0]["verbs"].append("update")
        self.assertReported("verbs ['get', 'list', 'watch', 'update']")

    def test_rbac_wildcard_verb(self):
        self.rules()[1]["verbs"] = ["*"]
        self.assertReported("want exactly get, list, watch")

    def test_rbac_secrets_granted(self):
        self.rules()[0]["resources"].append("secrets")
        self.assertReported("('', 'secrets')")

    def test_rbac_resource_missing(self):
        self.rules()[3]["resources"] = []
        self.assertReported("('security.istio.io', 'authorizationpolicies')")

    def test_rbac_wrong_group(self):
        self.rules()[1]["apiGroups"] = ["extensions"]
        self.assertReported("('extensions', 'endpointslices')")

    def test_rbac_resource_names(self):
        self.rules()[0]["resourceNames"] = ["kubernetes"]
        self.assertReported("resourceNames")

    def test_binding_wrong_namespace(self):
        self.obj("ClusterRoleBinding")["subjects"][0]["namespace"] = "default"
        self.assertReported("in namespace 'default', the Deployment runs in 'istio-system'")

    def test_binding_other_account(self):
        self.obj("ClusterRoleBinding")["subjects"][0]["name"] = "default"
        self.assertReported("none binds ClusterRole meshgatectl-serve to ServiceAccount istio-system/meshgatectl")

    def test_binding_other_role(self):
        self.obj("ClusterRoleBinding")["roleRef"]["name"] = "view"
        self.assertReported("none binds ClusterRole meshgatectl-serve")

    def test_deployment_other_account(self):
        self.pod()["serviceAccountName"] = "meshgate"
        self.assertReported("ServiceAccount istio-system/meshgate is not in the manifests")

    def test_deployment_no_account(self):
        del self.pod()["serviceAccountName"]
        self.assertReported("no serviceAccountName")

    def test_token_not_mounted(self):
        self.pod()["automountServiceAccountToken"] = False
        self.assertReported("service account token is not mounted")

    def test_config_not_mounted(self):
        self.container()["args"][-1] = "/etc/meshgatectl/config.yaml"
        self.assertReported("no volumeMount provides /etc/meshgatectl/config.yaml")

    def test_config_from_missing_configmap(self):
        self.pod()["volumes"][0]["configMap"]["name"] = "meshgatectl"
        self.assertReported("no volumeMount provides /etc/meshgatectl/serve.yaml")

    def test_not_serve(self):
        self.container()["args"][0] = "serviceentries"
        self.assertReported("want /usr/local/bin/meshgatectl serve --config PATH")

    def test_gateway_entrypoint(self):
        del self.container()["command"]
        self.assertReported("want /usr/local/bin/meshgatectl serve")

    def test_kubeconfig_not_mounted(self):
        self.edit_config(lambda c: c["clusters"][1]["kubernetes"].update(
            kubeconfig="/etc/meshgatectl/remote/cluster3/kubeconfig"))
        self.assertReported("cluster cluster2: kubeconfig /etc/meshgatectl/remote/cluster3/kubeconfig is not mounted")

    def test_kubeconfig_from_configmap(self):
        self.pod()["volumes"][1] = {"name": "remote-cluster2", "configMap": {"name": "meshgatectl-serve"}}
        self.assertReported("is not mounted from a Secret")

    def test_kubeconfig_key_not_pinned(self):
        self.pod()["volumes"][1]["secret"]["items"][0]["path"] = "config"
        self.assertReported("do not pin the file kubeconfig")

    def test_kubeconfig_mount_writable(self):
        self.container()["volumeMounts"][1]["readOnly"] = False
        self.assertReported("should be readOnly")

    def test_allocations_not_writable(self):
        self.container()["volumeMounts"] = [v for v in self.container()["volumeMounts"] if v["name"] != "allocations"]
        self.assertReported("allocations /var/lib/meshgatectl must be a writable")

    def test_listen_port_mismatch(self):
        self.edit_config(lambda c: c.update(listen="0.0.0.0:15181"))
        self.assertReported("listen port 15181 != container port 'http-serve'")

    def test_dns_port_mismatch(self):
        self.edit_config(lambda c: c["dns"].update(listen="0.0.0.0:5353"))
        self.assertReported("dns.listen port 5353 != container port 'dns'")

    def test_dns_on_loopback(self):
        self.edit_config(lambda c: c["dns"].update(listen="127.0.0.1:15053"))
        self.assertReported("dns.listen is on loopback")

    def test_dns_container_port_tcp(self):
        for port in self.container()["ports"]:
            if port["name"] == "dns":
                port["protocol"] = "TCP"
        self.assertReported("container port 'dns' is TCP, want UDP")

    def test_service_no_dns_tcp(self):
        svc = self.obj("Service")
        svc["spec"]["ports"] = [x for x in svc["spec"]["ports"] if x["name"] != "dns-tcp"]
        self.assertReported("no TCP port 53 (dns-tcp)")

    def test_service_dns_target(self):
        for port in self.obj("Service")["spec"]["ports"]:
            if port["name"] == "dns":
                port["targetPort"] = 53
        self.assertReported("UDP port 53 targets 53")

    def test_service_serve_port(self):
        for port in self.obj("Service")["spec"]["ports"]:
            if port["name"] == "http-serve":
                port["port"] = 80
        self.assertReported("no TCP port 15180 (http-serve)")

    def test_service_selector(self):
        self.obj("Service")["spec"]["selector"] = {"app": "meshgate"}
        self.assertReported("does not match the pod labels")

    def test_service_load_balancer(self):
        self.obj("Service")["spec"]["type"] = "LoadBalancer"
        self.assertReported("want ClusterIP")

    def test_readiness_path(self):
        self.container()["readinessProbe"]["httpGet"]["path"] = "/healthz/ready"
        self.assertReported("readinessProbe: path '/healthz/ready'")

    def test_liveness_port(self):
        self.container()["livenessProbe"]["httpGet"]["port"] = "dns-tcp"
        self.assertReported("livenessProbe: port 'dns-tcp' is not the serve listen port 15180")

    def test_probe_scheme_with_tls(self):
        self.edit_config(lambda c: c.update(tls={"certChain": "a.pem", "key": "k.pem"}))
        self.assertReported("scheme 'HTTP', serve.yaml makes it HTTPS")

    def test_root(self):
        self.pod()["securityContext"]["runAsUser"] = 0
        self.container()["securityContext"]["runAsUser"] = 0
        self.assertReported("non-zero uid")

    def test_writable_root(self):
        self.container()["securityContext"]["readOnlyRootFilesystem"] = False
        self.assertReported("readOnlyRootFilesystem must be true")

    def test_no_memory_limit(self):
        del self.container()["resources"]["limits"]["memory"]
        self.assertReported("no memory limit")

    def test_other_image(self):
        self.container()["image"] = "meshgatectl:latest"
        self.assertReported("image 'meshgatectl:latest', the gateway's is 'meshgate:latest'")

    def test_namespace_mismatch(self):
        self.obj("ConfigMap")["metadata"]["namespace"] = "default"
        self.assertReported("needs the Deployment's namespace 'istio-system'")

    def test_serve_yaml_not_yaml(self):
        self.obj("ConfigMap")["data"][SERVE_FILE_KEY] = "listen: [unclosed"
        self.assertReported("is not YAML")


if __name__ == "__main__":
    deploylib.run_tests(globals(), "unused (accepted for the same command line as check_manifests.py)")
