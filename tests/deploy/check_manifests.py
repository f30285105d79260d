#!/usr/bin/env python3
"""Cross-checks the gateway's docker/k8s/*.yaml against each other, against
the meshgate config they carry, and against docker/Dockerfile (serve-*.yaml,
`meshgatectl serve`, are check_serve_manifests.py's).

    check_manifests.py REPO_ROOT [--meshgate BUILT_BINARY]

Every check returns a list of problems (strings); an empty list means
consistent. The unit tests run the checks on the real files (expecting no
problems) and on broken in-memory copies (expecting the breakage reported).
With --meshgate, the ConfigMaps are also validated by `meshgate --check`.
"""

import copy
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402

# Container port names shared by the Deployment and the Service, and the
# meshgate.yaml key that must listen on each.
PORT_KEYS = {"tls": "listen", "status-port": "readiness", "http-metrics": "metrics"}
# Which ports the external LoadBalancer Service carries. tls is the gateway.
# status-port stays on it, as on Istio's east-west gateway Service: cloud load
# balancers health-check a Service port, and a draining pod's 503 takes it out
# of rotation before its listener closes. Metrics are for the cluster's
# Prometheus only: they go on a ClusterIP Service, never to the internet.
EXTERNAL_PORTS = ("tls", "status-port")
READY_PATH = "/healthz/ready"
METRICS_PATH = "/stats/prometheus"
CONFIG_FILE_KEY = "meshgate.yaml"


def dig(obj, *keys):
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def is_subset(labels, of):
    return isinstance(labels, dict) and bool(labels) and all(
        isinstance(of, dict) and of.get(k) == v for k, v in labels.items())


class Model:
    """The pieces of the manifests the checks look at, found once."""

    def __init__(self, docs, dockerfile_text):
        self.problems = []
        self.docs = docs
        deployments = deploylib.of_kind(docs, "Deployment")
        self.deployment = self._one(deployments, "Deployment")
        self.pod = dig(self.deployment, "spec", "template") or {}
        self.pod_spec = self.pod.get("spec") or {}
        self.pod_labels = dig(self.pod, "metadata", "labels") or {}
        containers = self.pod_spec.get("containers") or []
        named = [c for c in containers if c.get("name") == "meshgate"]
        self.container = named[0] if named else (containers[0] if containers else {})
        if not containers:
            self.problems.append("Deployment: no containers")
        self.ports = {}  # container port name -> number
        for port in self.container.get("ports") or []:
            if port.get("name"):
                self.ports[port["name"]] = port.get("containerPort")
        services = [s for s in deploylib.of_kind(docs, "Service")
                    if dig(s, "spec", "type") == "LoadBalancer"]
        self.service = self._one(services, "Service of type LoadBalancer")
        # The other Services of the gateway (same app label), ClusterIP.
        app = self.pod_labels.get("app")
        self.internal_services = [s for s in deploylib.of_kind(docs, "Service")
                                  if s is not self.service and dig(s, "metadata", "labels", "app") == app]
        self.configmaps = {dig(c, "metadata", "name"): c for c in deploylib.of_kind(docs, "ConfigMap")}
        self.hpa = self._one(deploylib.of_kind(docs, "HorizontalPodAutoscaler"), "HorizontalPodAutoscaler")
        self.pdb = self._one(deploylib.of_kind(docs, "PodDisruptionBudget"), "PodDisruptionBudget")

        # The config file path meshgate is started with: the container's args
        # if it sets them, else the image's CMD.
        self.stages = deploylib.parse_dockerfile(dockerfile_text)
        self.runtime = self.stages[-1] if self.stages else None
        if self.runtime is None:
            self.problems.append("Dockerfile: no FROM")
        args = self.container.get("args")
        if args is None and self.runtime is not None:
            args = deploylib.command_words(self.runtime.last("CMD"))
        self.config_path = None
        args = [str(a) for a in args or []]
        for i, arg in enumerate(args):
            if arg == "--config" and i + 1 < len(args):
                self.config_path = args[i + 1]
            elif arg.startswith("--config="):
                self.config_path = arg.split("=", 1)[1]
        if self.config_path is None:
            self.problems.append("meshgate is started without --config (container args / image CMD)")

        # meshgate.yaml: from the ConfigMap the config path is mounted from.
        self.config_map, self.config = None, None
        for name, cm in self.configmaps.items():
            if CONFIG_FILE_KEY in (cm.get("data") or {}):
                self.config_map = cm
        if self.config_map is None:
            self.problems.append("no ConfigMap has a %s key" % CONFIG_FILE_KEY)
        else:
            try:
                self.config = yaml.safe_load(self.config_map["data"][CONFIG_FILE_KEY])
            except yaml.YAMLError as e:
                self.problems.append("ConfigMap %s: %s is not YAML: %s"
                                     % (dig(self.config_map, "metadata", "name"), CONFIG_FILE_KEY, e))
            if not isinstance(self.config, dict):
                self.problems.append("ConfigMap %s: %s is not a YAML mapping"
                                     % (dig(self.config_map, "metadata", "name"), CONFIG_FILE_KEY))
                self.config = None

    def _one(self, found, what):
        if len(found) != 1:
            self.problems.append("expected exactly one %s, found %d" % (what, len(found)))
            return found[0] if found else {}
        return found[0]

    def resolve_port(self, port):
        """A probe/Service port (number or container port name) -> number."""
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            return int(port)
        return self.ports.get(port)

    def config_address(self, key):
        """(host, port) meshgate.yaml gives for key, or None with a problem."""
        if self.config is None:
            return None
        if key not in self.config:
            self.problems.append("meshgate.yaml: no %s (relying on defaults hides the port from this check)" % key)
            return None
        try:
            address = deploylib.parse_address(self.config[key])
        except ValueError as e:
            self.problems.append("meshgate.yaml: %s: %s" % (key, e))
            return None
        if address is None:
            self.problems.append("meshgate.yaml: %s is off" % key)
        return address

    def drain_seconds(self):
        drain = (self.config or {}).get("drain")
        if not isinstance(drain, dict) or "delay" not in drain or "time" not in drain:
            self.problems.append("meshgate.yaml: drain {delay, time} must be set explicitly")
            return None
        try:
            return deploylib.parse_duration(drain["delay"]) + deploylib.parse_duration(drain["time"])
        except ValueError as e:
            self.problems.append("meshgate.yaml: drain: %s" % e)
            return None


# --- the checks -----------------------------------------------------------------

def check_ports(m):
    p = []
    for name in PORT_KEYS:
        if not isinstance(m.ports.get(name), int):
            p.append("Deployment: container port %r is not declared" % name)
    # Service ports target the container port of the same name and number.
    internal_ports = [sp for s in m.internal_services for sp in dig(s, "spec", "ports") or []]
    service_ports = {sp.get("name"): sp for sp in (dig(m.service, "spec", "ports") or []) + internal_ports}
    for name in PORT_KEYS:
        sp = service_ports.get(name)
        if sp is None:
            p.append("Service: no port named %r" % name)
            continue
        target = sp.get("targetPort", sp.get("port"))
        number = m.resolve_port(target)
        if number is None or number not in m.ports.values():
            p.append("Service port %r: targetPort %r is not a container port of the Deployment" % (name, target))
        elif number != m.ports.get(name):
            p.append("Service port %r: targetPort %r is container port %s, not the container's %r port %s"
                     % (name, target, number, name, m.ports.get(name)))
        if sp.get("port") != m.ports.get(name):
            p.append("Service port %r: port %r differs from container port %s (Istio convention: same number)"
                     % (name, sp.get("port"), m.ports.get(name)))
    for sp in dig(m.service, "spec", "ports") or []:
        if sp.get("name") in PORT_KEYS and sp.get("name") not in EXTERNAL_PORTS:
            p.append("Service %s (LoadBalancer): exposes %r outside the cluster; put it on a ClusterIP Service"
                     % (dig(m.service, "metadata", "name"), sp.get("name")))
    for service in m.internal_services:
        if dig(service, "spec", "type") not in (None, "ClusterIP"):
            p.append("Service %s: type %s, want ClusterIP (only %s is the external one)"
                     % (dig(service, "metadata", "name"), dig(service, "spec", "type"), dig(m.service, "metadata", "name")))
    for sp in (dig(m.service, "spec", "ports") or []) + internal_ports:
        if sp.get("name") not in PORT_KEYS:
            number = m.resolve_port(sp.get("targetPort", sp.get("port")))
            if number not in m.ports.values():
                p.append("Service port %r targets %r, which the Deployment does not declare"
                         % (sp.get("name"), sp.get("targetPort")))
    # meshgate.yaml listens where the container ports say.
    for name, key in PORT_KEYS.items():
        address = m.config_address(key)
        if address and address[1] != m.ports.get(name):
            p.append("meshgate.yaml: %s port %s != container port %r (%s)" % (key, address[1], name, m.ports.get(name)))
        if address and address[0] in ("127.0.0.1", "::1", "localhost"):
            p.append("meshgate.yaml: %s is on loopback (%s); the kubelet and the Service cannot reach it"
                     % (key, address[0]))
    admin = m.config_address("admin")
    if admin:
        if admin[0] != "127.0.0.1":
            p.append("meshgate.yaml: admin must be on 127.0.0.1, is on %s" % admin[0])
        if admin[1] in m.ports.values():
            p.append("Deployment: admin port %s is declared as a container port" % admin[1])
        if admin[1] in [sp.get("port") for sp in (dig(m.service, "spec", "ports") or []) + internal_ports]:
            p.append("Service: exposes the admin port %s" % admin[1])
    return p


def check_probes(m):
    p = []
    status = m.ports.get("status-port")
    for kind in ("readinessProbe", "livenessProbe"):
        probe = m.container.get(kind)
        get = dig(probe, "httpGet")
        if not isinstance(get, dict):
            p.append("%s: must be an httpGet probe" % kind)
            continue
        if get.get("path") != READY_PATH:
            p.append("%s: path %r, meshgate serves readiness on %s" % (kind, get.get("path"), READY_PATH))
        port = m.resolve_port(get.get("port"))
        if port is None or port != status:
            p.append("%s: port %r is not the status port %s" % (kind, get.get("port"), status))
        if get.get("scheme", "HTTP") != "HTTP":
            p.append("%s: scheme %r, the status port is plain HTTP" % (kind, get.get("scheme")))
    # A draining pod answers 503 on purpose; liveness must not restart it
    # before the drain can finish.
    liveness = m.container.get("livenessProbe") or {}
    drain = m.drain_seconds()
    window = liveness.get("failureThreshold", 3) * liveness.get("periodSeconds", 10)
    if drain is not None and window <= drain:
        p.append("livenessProbe: fails after %ss, sooner than drain.delay + drain.time (%ss): "
                 "draining pods would be restarted" % (window, drain))
    return p


def check_annotations(m):
    p = []
    annotations = dig(m.pod, "metadata", "annotations") or {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            p.append("pod annotation %s: %r is not a string (the API server rejects it)" % (key, value))
    if annotations.get("prometheus.io/scrape") != "true":
        p.append('pod annotation prometheus.io/scrape must be "true"')
    metrics = m.ports.get("http-metrics")
    if str(annotations.get("prometheus.io/port")) != str(metrics):
        p.append("pod annotation prometheus.io/port %r is not the metrics port %s"
                 % (annotations.get("prometheus.io/port"), metrics))
    if annotations.get("prometheus.io/path") != METRICS_PATH:
        p.append("pod annotation prometheus.io/path %r, meshgate serves %s"
                 % (annotations.get("prometheus.io/path"), METRICS_PATH))
    return p


def check_hpa(m):
    p = []
    ref = dig(m.hpa, "spec", "scaleTargetRef") or {}
    if m.hpa.get("apiVersion") != "autoscaling/v2":
        p.append("HPA: apiVersion %r, want autoscaling/v2" % m.hpa.get("apiVersion"))
    if ref.get("kind") != "Deployment" or ref.get("apiVersion") != "apps/v1" \
            or ref.get("name") != dig(m.deployment, "metadata", "name"):
        p.append("HPA: scaleTargetRef %r is not the Deployment %r" % (ref, dig(m.deployment, "metadata", "name")))
    if dig(m.hpa, "spec", "minReplicas") != 1 or dig(m.hpa, "spec", "maxReplicas") != 5:
        p.append("HPA: replicas %r..%r, want 1..5"
                 % (dig(m.hpa, "spec", "minReplicas"), dig(m.hpa, "spec", "maxReplicas")))
    cpu = [x for x in dig(m.hpa, "spec", "metrics") or []
           if x.get("type") == "Resource" and dig(x, "resource", "name") == "cpu"]
    target = dig(cpu, 0, "resource", "target") or {}
    if target.get("type") != "Utilization" or target.get("averageUtilization") != 80:
        p.append("HPA: want a cpu Utilization target of 80%%, have %r" % target)
    if not dig(m.container, "resources", "requests", "cpu"):
        p.append("Deployment: no CPU request; the HPA's utilisation is relative to it")
    if "replicas" in (m.deployment.get("spec") or {}):
        p.append("Deployment: spec.replicas fights the HPA on every apply; leave it out")
    return p


def check_selectors(m):
    p = []
    name = lambda o: "%s %s" % (o.get("kind"), dig(o, "metadata", "name"))  # noqa: E731
    if not is_subset(dig(m.deployment, "spec", "selector", "matchLabels"), m.pod_labels):
        p.append("Deployment: selector does not match its pod template labels %r" % m.pod_labels)
    for service in [m.service] + m.internal_services:
        if not is_subset(dig(service, "spec", "selector"), m.pod_labels):
            p.append("%s: selector %r does not match the pod labels %r"
                     % (name(service), dig(service, "spec", "selector"), m.pod_labels))
    if not is_subset(dig(m.pdb, "spec", "selector", "matchLabels"), m.pod_labels):
        p.append("%s: selector %r does not match the pod labels %r"
                 % (name(m.pdb), dig(m.pdb, "spec", "selector"), m.pod_labels))
    if m.pdb and m.pdb.get("apiVersion") != "policy/v1":
        p.append("PodDisruptionBudget: apiVersion %r, want policy/v1" % m.pdb.get("apiVersion"))
    namespaces = {dig(doc, "metadata", "namespace") for _, doc in m.docs if doc.get("kind") not in CLUSTER_SCOPED}
    if len(namespaces) != 1 or None in namespaces:
        p.append("manifests: every object needs the same explicit namespace, have %r" % sorted(map(str, namespaces)))
    account = m.pod_spec.get("serviceAccountName")
    if account and account not in [dig(s, "metadata", "name") for s in deploylib.of_kind(m.docs, "ServiceAccount")]:
        p.append("Deployment: serviceAccountName %r is not defined in the manifests" % account)
    return p


def check_security(m):
    p = []
    pod_sc = m.pod_spec.get("securityContext") or {}
    sc = m.container.get("securityContext") or {}
    effective = lambda key: sc.get(key, pod_sc.get(key))  # noqa: E731
    uid = effective("runAsUser")
    if not isinstance(uid, int) or uid == 0:
        p.append("securityContext: runAsUser %r must be a non-zero uid" % uid)
    if effective("runAsNonRoot") is not True:
        p.append("securityContext: runAsNonRoot must be true")
    if sc.get("readOnlyRootFilesystem") is not True:
        p.append("securityContext: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        p.append("securityContext: allowPrivilegeEscalation must be false")
    if "ALL" not in (dig(sc, "capabilities", "drop") or []):
        p.append("securityContext: capabilities must drop ALL")
    if dig(sc, "capabilities", "add"):
        p.append("securityContext: adds capabilities %r" % dig(sc, "capabilities", "add"))
    if m.runtime is not None:
        user = m.runtime.last("USER")
        if user is not None and isinstance(uid, int) and user.args.split(":")[0] != str(uid):
            p.append("Deployment runAsUser %s differs from the image's USER %s" % (uid, user.args))
    env = {e.get("name"): e for e in m.container.get("env") or []}
    if dig(env.get("POD_NAMESPACE"), "valueFrom", "fieldRef", "fieldPath") != "metadata.namespace":
        p.append("Deployment: POD_NAMESPACE must come from the downward API (metadata.namespace)")
    return p


def prestop_seconds(container):
    """How long a preStop hook delays SIGTERM (sleep N / sleep action)."""
    pre = dig(container, "lifecycle", "preStop") or {}
    if dig(pre, "sleep", "seconds") is not None:
        return float(dig(pre, "sleep", "seconds"))
    words = " ".join(map(str, dig(pre, "exec", "command") or []))
    match = re.search(r"\bsleep\s+(\d+(?:\.\d+)?)", words)
    return float(match.group(1)) if match else 0.0


def check_termination(m):
    p = []
    drain = m.drain_seconds()
    grace = m.pod_spec.get("terminationGracePeriodSeconds", 30)
    if drain is not None:
        needed = drain + prestop_seconds(m.container)
        if not isinstance(grace, (int, float)) or grace <= needed:
            p.append("terminationGracePeriodSeconds %r must exceed preStop + drain.delay + drain.time (%gs): "
                     "the kubelet would SIGKILL sessions still draining" % (grace, needed))
    return p


def check_mounts(m):
    """The --config file and every mesh path are served by ConfigMap mounts."""
    p = []
    if m.config_path is None:
        return p
    volumes = {v.get("name"): v for v in m.pod_spec.get("volumes") or []}
    mounts = m.container.get("volumeMounts") or []

    def configmap_of(mount):
        name = dig(volumes.get(mount.get("name")), "configMap", "name")
        if name is None:
            p.append("volumeMount %r: not a ConfigMap volume" % mount.get("mountPath"))
        elif name not in m.configmaps:
            p.append("volume %r: ConfigMap %r is not in the manifests" % (mount.get("name"), name))
        return m.configmaps.get(name)

    def provides_file(path):
        for mount in mounts:
            mount_path = posixpath.normpath(mount.get("mountPath", ""))
            if mount.get("subPath") and mount_path == posixpath.normpath(path):
                cm = configmap_of(mount)
                return cm is not None and mount["subPath"] in (cm.get("data") or {}), cm
            if not mount.get("subPath") and mount_path == posixpath.dirname(posixpath.normpath(path)):
                cm = configmap_of(mount)
                return cm is not None and posixpath.basename(path) in (cm.get("data") or {}), cm
        return False, None

    ok, cm = provides_file(m.config_path)
    if not ok:
        p.append("no volumeMount provides the config file %s from a ConfigMap key" % m.config_path)
    elif m.config_map is not None and cm is not m.config_map:
        p.append("the config file %s is mounted from ConfigMap %r, not the one checked here"
                 % (m.config_path, dig(cm, "metadata", "name")))
    base = posixpath.dirname(m.config_path)
    mesh = (m.config or {}).get("mesh") or []
    if not mesh:
        p.append("meshgate.yaml: no mesh paths")
    for entry in mesh if isinstance(mesh, list) else [mesh]:
        path = posixpath.normpath(posixpath.join(base, str(entry)))
        dirs = [x for x in mounts if not x.get("subPath")
                and posixpath.normpath(x.get("mountPath", "")) == path]
        if not dirs:
            if not provides_file(path)[0]:
                p.append("meshgate.yaml: mesh path %s is not a ConfigMap mounted in the container" % path)
            continue
        mesh_cm = configmap_of(dirs[0])
        if mesh_cm is not None:
            p += check_mesh_configmap(m, mesh_cm)
        if dirs[0].get("readOnly") is not True:
            p.append("volumeMount %s should be readOnly" % path)
    return p


def check_mesh_configmap(m, cm):
    """The mesh ConfigMap parses and has a 15443 AUTO_PASSTHROUGH Gateway for
    these pods."""
    p = []
    name = dig(cm, "metadata", "name")
    gateways = []
    for key, text in (cm.get("data") or {}).items():
        if not re.search(r"\.(ya?ml|json)$", key):
            p.append("ConfigMap %s: key %s is not *.yaml/*.yml/*.json; meshgate would skip it" % (name, key))
        try:
            docs = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as e:
            p.append("ConfigMap %s: %s is not YAML: %s" % (name, key, e))
            continue
        gateways += [d for d in docs if isinstance(d, dict) and d.get("kind") == "Gateway"]
    listen = m.config_address("listen")
    found = False
    for gw in gateways:
        for server in dig(gw, "spec", "servers") or []:
            if dig(server, "tls", "mode") == "AUTO_PASSTHROUGH" and listen \
                    and dig(server, "port", "number") == listen[1]:
                found = True
                if not is_subset(dig(gw, "spec", "selector"), m.pod_labels):
                    p.append("Gateway %s: selector %r does not select the meshgate pods %r"
                             % (dig(gw, "metadata", "name"), dig(gw, "spec", "selector"), m.pod_labels))
    if not found:
        p.append("ConfigMap %s: no Gateway with an AUTO_PASSTHROUGH server on the listen port" % name)
    return p


def check_dockerfile_runtime(m):
    """The image's runtime stage against the manifests."""
    p = []
    if m.runtime is None:
        return p
    user = m.runtime.last("USER")
    if user is None:
        p.append("Dockerfile: runtime stage has no USER (runs as root)")
    else:
        uid = user.args.split(":")[0].strip()
        if not uid.isdigit():
            p.append("Dockerfile: USER %r should be numeric so runAsNonRoot can verify it" % user.args)
        elif uid != "1337":
            p.append("Dockerfile: USER %s, want 1337 (non-root, as Istio's proxies)" % uid)
    exposed = deploylib.exposed_ports(m.runtime)
    for name in PORT_KEYS:
        if m.ports.get(name) not in exposed:
            p.append("Dockerfile: does not EXPOSE the %s port %s" % (name, m.ports.get(name)))
    admin = m.config_address("admin")
    if admin and admin[1] in exposed:
        p.append("Dockerfile: EXPOSEs the loopback-only admin port %s" % admin[1])
    check = deploylib.healthcheck_command(m.runtime)
    status = m.ports.get("status-port")
    if not check:
        p.append("Dockerfile: no HEALTHCHECK")
    elif "--probe" not in check:
        p.append("Dockerfile: HEALTHCHECK %r does not use meshgate --probe" % check)
    else:
        # `meshgate --probe` reads the readiness address from the config the
        # gateway runs with, so it follows `readiness:`; a fixed address (a
        # word after --probe, or --readiness) goes stale when readiness moves
        # and, on a host network, probes whichever process holds that port.
        rest = check[check.index("--probe") + 1:]
        config = rest[rest.index("--config") + 1] if "--config" in rest[:-1] else None
        if "--readiness" in rest or (rest and not rest[0].startswith("-")):
            p.append("Dockerfile: HEALTHCHECK %r hard-codes the readiness address; let --probe read it from "
                     "--config" % check)
        if config != m.config_path:
            p.append("Dockerfile: HEALTHCHECK probes with --config %s, but meshgate runs with --config %s"
                     % (config, m.config_path))
        if not check[0].endswith("meshgate"):
            p.append("Dockerfile: HEALTHCHECK runs %s, not meshgate" % check[0])
    entry = deploylib.command_words(m.runtime.last("ENTRYPOINT"))
    if not entry or entry[0] != "/usr/local/bin/meshgate":
        p.append("Dockerfile: ENTRYPOINT %r is not /usr/local/bin/meshgate (exec form)" % entry)
    return p


CHECKS = [check_ports, check_probes, check_annotations, check_hpa, check_selectors,
          check_security, check_termination, check_mounts, check_dockerfile_runtime]


# Kinds without a namespace (kubectl api-resources --namespaced=false).
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace"}

GATEWAY_READS = deploylib.API_READS


def check_rbac(m):
    """The gateway's ClusterRole grants exactly get/list/watch on GATEWAY_READS,
    and its binding names the Deployment's service account."""
    p = []
    roles = deploylib.of_kind(m.docs, "ClusterRole")
    bindings = deploylib.of_kind(m.docs, "ClusterRoleBinding")
    if not roles:
        return ["ClusterRole: none: a gateway watching its cluster needs get/list/watch"]
    granted = set()
    for role in roles:
        for rule in role.get("rules") or []:
            if sorted(rule.get("verbs") or []) != ["get", "list", "watch"]:
                p.append("ClusterRole %s: verbs %r, want exactly get, list, watch"
                         % (dig(role, "metadata", "name"), rule.get("verbs")))
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    granted.add((group, resource))
    if granted != GATEWAY_READS:
        p.append("ClusterRole: grants %r, want exactly %r" % (sorted(granted), sorted(GATEWAY_READS)))
    account = dig(m.deployment, "spec", "template", "spec", "serviceAccountName")
    role_names = {dig(r, "metadata", "name") for r in roles}
    if not any(dig(b, "roleRef", "name") in role_names and
               any(s.get("kind") == "ServiceAccount" and s.get("name") == account and
                   s.get("namespace") == dig(m.deployment, "metadata", "namespace")
                   for s in b.get("subjects") or [])
               for b in bindings):
        p.append("ClusterRoleBinding: none binds the ClusterRole to ServiceAccount %r" % account)
    return p


CHECKS.append(check_rbac)


def check_manifests(docs, dockerfile_text):
    m = Model(docs, dockerfile_text)
    problems = []
    for check in CHECKS:
        problems += check(m)
    return list(dict.fromkeys(m.problems + problems))  # keep order, drop repeats


def write_downward_api(target, items, labels):
    """Writes a downwardAPI volume's metadata.labels items as the kubelet does:
    key="value" lines, sorted, values quoted like Go's %q (kubernetes
    pkg/fieldpath FormatMap)."""
    os.makedirs(target, exist_ok=True)
    for item in items:
        if dig(item, "fieldRef", "fieldPath") != "metadata.labels":
            continue
        with open(os.path.join(target, item["path"]), "w", encoding="utf-8") as f:
            for key in sorted(labels):
                f.write('%s="%s"\n' % (key, str(labels[key]).replace("\\", "\\\\").replace('"', '\\"')))


def meshgate_check(binary, docs):
    """Runs `meshgate --check` on the ConfigMaps laid out as in the pod.
    Returns problems; an empty list when meshgate accepts them."""
    configmaps = {dig(c, "metadata", "name"): c for c in deploylib.of_kind(docs, "ConfigMap")}
    deployment = (deploylib.of_kind(docs, "Deployment") or [{}])[0]
    pod_volumes = dig(deployment, "spec", "template", "spec", "volumes") or []
    volumes = {v["name"]: dig(v, "configMap", "name") for v in pod_volumes}
    downward = {v["name"]: dig(v, "downwardAPI", "items") for v in pod_volumes if "downwardAPI" in v}
    pod_labels = dig(deployment, "spec", "template", "metadata", "labels") or {}
    container = (dig(deployment, "spec", "template", "spec", "containers") or [{}])[0]
    with tempfile.TemporaryDirectory() as root:
        config_path = None
        for mount in container.get("volumeMounts") or []:
            if mount["name"] in downward:
                write_downward_api(os.path.join(root, mount["mountPath"].lstrip("/")),
                                   downward[mount["name"]] or [], pod_labels)
                continue
            cm = configmaps.get(volumes.get(mount["name"]))
            if cm is None:
                continue
            target = os.path.join(root, mount["mountPath"].lstrip("/"))
            if mount.get("subPath"):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(cm["data"][mount["subPath"]])
                if mount["subPath"] == CONFIG_FILE_KEY:
                    config_path = target
            else:
                os.makedirs(target, exist_ok=True)
                for key, text in (cm.get("data") or {}).items():
                    with open(os.path.join(target, key), "w", encoding="utf-8") as f:
                        f.write(text)
                    if key == CONFIG_FILE_KEY:
                        config_path = os.path.join(target, key)
        if config_path is None:
            return ["meshgate --check: no mounted %s" % CONFIG_FILE_KEY]
        run = subprocess.run([binary, "--check", "--config", config_path],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, POD_NAMESPACE="istio-system"))
        if run.returncode != 0:
            return ["meshgate --check rejects the ConfigMaps (exit %d):\n%s%s"
                    % (run.returncode, run.stdout, run.stderr)]
    return []


# --- tests ----------------------------------------------------------------------

ROOT = None
MESHGATE = None


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


class RealFiles(unittest.TestCase):
    def test_manifests_consistent(self):
        docs = deploylib.gateway_manifests(os.path.join(ROOT, "docker", "k8s"))
        self.assertEqual(check_manifests(docs, read("docker", "Dockerfile")), [])

    def test_every_manifest_parses_and_is_namespaced(self):
        # The gateway's and serve's (serve-*.yaml) alike.
        docs = deploylib.load_manifests(os.path.join(ROOT, "docker", "k8s"))
        kinds = sorted(d["kind"] for _, d in docs)
        for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"):
            self.assertIn(kind, kinds)
        for source, doc in docs:
            self.assertIn("apiVersion", doc, source)
            if doc["kind"] in CLUSTER_SCOPED:
                self.assertIsNone(dig(doc, "metadata", "namespace"), source)
            else:
                self.assertEqual(dig(doc, "metadata", "namespace"), "istio-system", source)

    def test_meshgate_accepts_configmaps(self):
        if not MESHGATE or not os.access(MESHGATE, os.X_OK):
            self.skipTest("no meshgate binary (pass --meshgate)")
        docs = deploylib.gateway_manifests(os.path.join(ROOT, "docker", "k8s"))
        self.assertEqual(meshgate_check(MESHGATE, docs), [])

    def test_meshgate_rejects_broken_configmaps(self):
        if not MESHGATE or not os.access(MESHGATE, os.X_OK):
            self.skipTest("no meshgate binary (pass --meshgate)")
        docs = deploylib.gateway_manifests(os.path.join(ROOT, "docker", "k8s"))
        for name, key, old, new in (("meshgate", CONFIG_FILE_KEY, "delay: 5s", "delay: 5"),
                                    ("meshgate-mesh", "cross-network-gateway.yaml",
                                     "AUTO_PASSTHROUGH", "AUTO_PASS")):
            broken = copy.deepcopy(docs)
            cm = [d for _, d in broken if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name][0]
            self.assertIn(old, cm["data"][key])
            cm["data"][key] = cm["data"][key].replace(old, new)
            problems = meshgate_check(MESHGATE, broken)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn("rejects", problems[0])


class BrokenCopies(unittest.TestCase):
    """Each test breaks one thing in a copy and expects it reported."""

    @classmethod
    def setUpClass(cls):
        cls.docs = deploylib.gateway_manifests(os.path.join(ROOT, "docker", "k8s"))
        cls.dockerfile = read("docker", "Dockerfile")

    def setUp(self):
        self.d = copy.deepcopy(self.docs)

    def obj(self, kind, name=None):
        for _, doc in self.d:
            if doc.get("kind") == kind and (name is None or dig(doc, "metadata", "name") == name):
                return doc
        self.fail("no %s %s" % (kind, name))

    def container(self):
        return self.obj("Deployment")["spec"]["template"]["spec"]["containers"][0]

    def config(self):
        cm = self.obj("ConfigMap", "meshgate")
        return yaml.safe_load(cm["data"][CONFIG_FILE_KEY]), cm

    def set_config(self, **changes):
        config, cm = self.config()
        config.update(changes)
        cm["data"][CONFIG_FILE_KEY] = yaml.safe_dump(config)

    def assertReported(self, fragment, dockerfile=None):
        problems = check_manifests(self.d, dockerfile if dockerfile is not None else self.dockerfile)
        self.assertTrue(any(fragment in x for x in problems),
                        "expected a problem mentioning %r, got %r" % (fragment, problems))

    def edit_dockerfile(self, old, new):
        self.assertIn(old, self.dockerfile)
        return self.dockerfile.replace(old, new)

    def test_baseline_is_clean(self):
        self.assertEqual(check_manifests(self.d, self.dockerfile), [])

    def test_service_target_port_changed(self):
        for port in self.obj("Service")["spec"]["ports"]:
            if port["name"] == "tls":
                port["targetPort"] = 8443
        self.assertReported("Service port 'tls': targetPort 8443")

    def test_service_target_port_swapped(self):
        for port in self.obj("Service")["spec"]["ports"]:
            if port["name"] == "tls":
                port["targetPort"] = 15021
        self.assertReported("not the container's 'tls' port")

    def metrics_service(self):
        return self.obj("Service", "meshgate-metrics")

    def test_service_port_missing(self):
        svc = self.metrics_service()
        svc["spec"]["ports"] = [p for p in svc["spec"]["ports"] if p["name"] != "http-metrics"]
        self.assertReported("Service: no port named 'http-metrics'")

    def test_metrics_on_the_load_balancer(self):
        # The shipped Service once did this: Prometheus metrics on the internet.
        port = dict(self.metrics_service()["spec"]["ports"][0])
        self.obj("Service", "meshgate")["spec"]["ports"].append(port)
        self.assertReported("exposes 'http-metrics' outside the cluster")

    def test_metrics_service_not_cluster_ip(self):
        self.metrics_service()["spec"]["type"] = "NodePort"
        self.assertReported("type NodePort, want ClusterIP")

    def test_metrics_service_selector(self):
        self.metrics_service()["spec"]["selector"] = {"app": "other"}
        self.assertReported("Service meshgate-metrics: selector")

    def test_container_port_renamed(self):
        for port in self.container()["ports"]:
            if port["name"] == "status-port":
                port["name"] = "status"
        self.assertReported("container port 'status-port' is not declared")

    def test_config_listen_port_mismatch(self):
        self.set_config(listen="0.0.0.0:15444")
        self.assertReported("listen port 15444")

    def test_config_metrics_port_mismatch(self):
        self.set_config(metrics="0.0.0.0:9090")
        self.assertReported("metrics port 9090")

    def test_config_readiness_on_loopback(self):
        self.set_config(readiness="127.0.0.1:15021")
        self.assertReported("readiness is on loopback")

    def test_config_admin_exposed(self):
        self.set_config(admin="0.0.0.0:15000")
        self.assertReported("admin must be on 127.0.0.1")

    def test_config_not_yaml(self):
        self.obj("ConfigMap", "meshgate")["data"][CONFIG_FILE_KEY] = "listen: [unclosed"
        self.assertReported("is not YAML")

    def test_readiness_probe_path(self):
        self.container()["readinessProbe"]["httpGet"]["path"] = "/ready"
        self.assertReported("readinessProbe: path '/ready'")

    def test_liveness_probe_port(self):
        self.container()["livenessProbe"]["httpGet"]["port"] = "http-metrics"
        self.assertReported("livenessProbe: port 'http-metrics'")

    def test_liveness_probe_tcp(self):
        self.container()["livenessProbe"] = {"tcpSocket": {"port": 15021}}
        self.assertReported("livenessProbe: must be an httpGet probe")

    def test_liveness_kills_draining_pod(self):
        self.container()["livenessProbe"]["failureThreshold"] = 1
        self.assertReported("draining pods would be restarted")

    def test_prometheus_port_annotation(self):
        self.obj("Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "15020"
        self.assertReported("prometheus.io/port '15020'")

    def test_prometheus_annotation_not_string(self):
        self.obj("Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] = True
        self.assertReported("is not a string")

    def test_prometheus_path_annotation(self):
        self.obj("Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] = "/stats"
        self.assertReported("prometheus.io/path '/stats'")

    def test_hpa_wrong_target(self):
        self.obj("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "istio-ingressgateway"
        self.assertReported("HPA: scaleTargetRef")

    def test_hpa_cpu_target(self):
        self.obj("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 50
        self.assertReported("cpu Utilization target of 80%")

    def test_hpa_replicas(self):
        self.obj("HorizontalPodAutoscaler")["spec"]["maxReplicas"] = 10
        self.assertReported("HPA: replicas 1..10")

    def test_no_cpu_request(self):
        del self.container()["resources"]["requests"]["cpu"]
        self.assertReported("no CPU request")

    def test_pdb_selector(self):
        self.obj("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] = {"app": "istio-ingressgateway"}
        self.assertReported("PodDisruptionBudget meshgate: selector")

    def test_service_selector(self):
        self.obj("Service")["spec"]["selector"]["istio"] = "ingressgateway"
        self.assertReported("Service meshgate: selector")

    def test_run_as_root(self):
        self.obj("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
        self.container()["securityContext"]["runAsUser"] = 0
        self.assertReported("runAsUser 0 must be a non-zero uid")

    def test_run_as_non_root_off(self):
        self.obj("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
        self.container()["securityContext"].pop("runAsNonRoot", None)
        self.assertReported("runAsNonRoot must be true")

    def test_writable_root(self):
        self.container()["securityContext"]["readOnlyRootFilesystem"] = False
        self.assertReported("readOnlyRootFilesystem must be true")

    def test_capabilities_kept(self):
        self.container()["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}
        self.assertReported("must drop ALL")

    def test_grace_period_too_short(self):
        self.obj("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 35
        self.assertReported("terminationGracePeriodSeconds 35")

    def test_grace_period_vs_longer_drain(self):
        self.set_config(drain={"delay": "5s", "time": "1m"})
        self.assertReported("terminationGracePeriodSeconds 45")

    def test_grace_period_vs_prestop_sleep(self):
        self.container()["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "15"]}}}
        self.assertReported("(50s)")

    def test_config_mount_moved(self):
        for mount in self.container()["volumeMounts"]:
            if mount.get("subPath"):
                mount["mountPath"] = "/etc/meshgate/config.yaml"
        self.assertReported("no volumeMount provides the config file /etc/meshgate/meshgate.yaml")

    def test_mesh_not_mounted(self):
        for mount in self.container()["volumeMounts"]:
            if mount["mountPath"] == "/etc/meshgate/mesh":
                mount["mountPath"] = "/etc/meshgate/istio"
        self.assertReported("mesh path /etc/meshgate/mesh is not a ConfigMap")

    def test_mesh_gateway_missing(self):
        self.obj("ConfigMap", "meshgate-mesh")["data"] = {"empty.yaml": "---\n"}
        self.assertReported("no Gateway with an AUTO_PASSTHROUGH server")

    def test_mesh_key_skipped(self):
        data = self.obj("ConfigMap", "meshgate-mesh")["data"]
        data["gateway.txt"] = data.popitem()[1]
        self.assertReported("meshgate would skip it")

    def test_pod_namespace_env(self):
        self.container()["env"] = [e for e in self.container()["env"] if e["name"] != "POD_NAMESPACE"]
        self.assertReported("POD_NAMESPACE")

    def test_dockerfile_user_root(self):
        self.assertReported("USER 0", self.edit_dockerfile("USER 1337", "USER 0"))

    def test_dockerfile_user_name(self):
        self.assertReported("should be numeric", self.edit_dockerfile("USER 1337", "USER meshgate"))

    def test_dockerfile_no_user(self):
        self.assertReported("has no USER", self.edit_dockerfile("USER 1337", ""))

    def test_dockerfile_expose_missing(self):
        self.assertReported("EXPOSE the http-metrics port 15090",
                            self.edit_dockerfile("EXPOSE 15443 15021 15090", "EXPOSE 15443 15021"))

    HEALTHCHECK_CMD = 'CMD ["/usr/local/bin/meshgate", "--probe", "--config", "/etc/meshgate/meshgate.yaml"]'

    def test_dockerfile_healthcheck_no_probe(self):
        self.assertReported("does not use meshgate --probe", self.edit_dockerfile(
            self.HEALTHCHECK_CMD, 'CMD ["curl", "-f", "http://127.0.0.1:15021/healthz/ready"]'))

    def test_dockerfile_healthcheck_fixed_address(self):
        # The bug a real build showed: the probe ignored where readiness is.
        self.assertReported("hard-codes the readiness address", self.edit_dockerfile(
            self.HEALTHCHECK_CMD, 'CMD ["/usr/local/bin/meshgate", "--probe", "127.0.0.1:15021"]'))
        self.assertReported("hard-codes the readiness address", self.edit_dockerfile(
            '"--probe", "--config"', '"--probe", "--readiness", "127.0.0.1:15021", "--config"'))

    def test_dockerfile_healthcheck_other_config(self):
        self.assertReported("HEALTHCHECK probes with --config /etc/other.yaml", self.edit_dockerfile(
            '"--probe", "--config", "/etc/meshgate/meshgate.yaml"', '"--probe", "--config", "/etc/other.yaml"'))
        self.assertReported("HEALTHCHECK probes with --config None", self.edit_dockerfile(
            '"--probe", "--config", "/etc/meshgate/meshgate.yaml"', '"--probe"'))


class Loader(unittest.TestCase):
    def test_duplicate_keys_rejected(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "x.yaml"), "w", encoding="utf-8") as f:
                f.write("kind: Service\nspec:\n  ports: []\n  ports: [{port: 1}]\n")
            with self.assertRaises(yaml.YAMLError):
                deploylib.load_manifests(d)


class Durations(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(deploylib.parse_duration("5s"), 5)
        self.assertEqual(deploylib.parse_duration("1m30s"), 90)
        self.assertAlmostEqual(deploylib.parse_duration("250ms"), 0.25)
        self.assertAlmostEqual(deploylib.parse_duration("1.5h"), 5400)
        for bad in ("", "5", "s", "-5s", "5 s", "5x"):
            with self.assertRaises(ValueError, msg=bad):
                deploylib.parse_duration(bad)


if __name__ == "__main__":
    deploylib.run_tests(globals(), "built meshgate binary, to run --check on the ConfigMaps")
