#!/usr/bin/env python3
"""Turns docker/k8s/deployment.yaml and its ConfigMaps into a `podman run`
that runs the image the way the kubelet would (used by scripts/image-test.sh).

    pod_to_podman.py K8S_DIR OUT_DIR [--add-key CONFIGMAP KEY FILE]...
                     [--edit CONFIGMAP KEY OLD NEW]...

Writes, under OUT_DIR:
  volumes/NAME/   each configMap and downwardAPI volume, laid out as the
                  kubelet's atomic writer does: the files in a timestamped
                  "..<ts>" directory, a "..data" symlink to it, and one
                  symlink per key to "..data/KEY"
                  (kubernetes pkg/volume/util/atomic_writer.go); subPath
                  mounts bind the one resolved file, as the kubelet does.
  run-args        `podman run` options, one per line: user, groups,
                  read-only root, capabilities, no-new-privileges, env and
                  the volume mounts at the Deployment's mountPaths.
  command-args    the container's args.
  ports           NAME=PORT for each containerPort.
  grace-seconds   terminationGracePeriodSeconds (30, the default, if unset).

Fields the translation does not know are refused rather than ignored, so a
Deployment change that the test would not reproduce fails it loudly.
Kubernetes API: https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/
"""

import os
import sys

import yaml

TIMESTAMP = "..2026_01_01_00_00_00.000000001"
KNOWN_CONTAINER_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "allowPrivilegeEscalation", "privileged",
                            "readOnlyRootFilesystem", "capabilities"}


def die(message):
    sys.exit("pod_to_podman: " + message)


def load_all(k8s_dir):
    docs = []
    for name in sorted(os.listdir(k8s_dir)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(k8s_dir, name), encoding="utf-8") as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def one(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        die("want exactly one %s %s, found %d" % (kind, name or "", len(found)))
    return found[0]


def atomic_write(directory, files, fs_group):
    """files: {relative path: text}. The kubelet's layout, readable by fsGroup."""
    data = os.path.join(directory, TIMESTAMP)
    os.makedirs(data, exist_ok=True)
    for path, text in files.items():
        full = os.path.join(data, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(full, 0o644)  # defaultMode 0644
        if fs_group is not None and os.geteuid() == 0:
            os.chown(full, 0, fs_group)
        top = path.split("/")[0]
        link = os.path.join(directory, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", top), link)
    if not os.path.lexists(os.path.join(directory, "..data")):
        os.symlink(TIMESTAMP, os.path.join(directory, "..data"))
    for root, dirs, _ in os.walk(directory):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(directory, 0o755)


def downward_labels(labels):
    # The Downward API's format for metadata.labels: key="value", one a line,
    # sorted (kubernetes pkg/fieldpath FormatMap).
    return "".join('%s="%s"\n' % (k, labels[k]) for k in sorted(labels))


def volume_files(volume, docs, namespace, pod_labels, extra, edits):
    if "configMap" in volume:
        name = volume["configMap"]["name"]
        cm = one([d for d in docs if d["metadata"].get("namespace") == namespace], "ConfigMap", name)
        if volume["configMap"].get("items"):
            die("configMap volume %s: items are not supported here" % volume["name"])
        files = dict(cm.get("data") or {})
        for key, text in extra.get(name, {}).items():
            files[key] = text
        for key, old, new in edits.get(name, []):
            if files.get(key, "").count(old) != 1:
                die("--edit %s %s: %r is not in it exactly once" % (name, key, old))
            files[key] = files[key].replace(old, new)
        return files
    if "downwardAPI" in volume:
        files = {}
        for item in volume["downwardAPI"]["items"]:
            if item.get("fieldRef", {}).get("fieldPath") != "metadata.labels":
                die("downwardAPI item %r is not supported here" % item)
            files[item["path"]] = downward_labels(pod_labels)
        return files
    die("volume %s: only configMap and downwardAPI volumes are supported" % volume["name"])


def security_args(pod_sc, sc):
    unknown = set(sc) - KNOWN_CONTAINER_SECURITY
    if unknown:
        die("container securityContext fields not reproduced: %s" % sorted(unknown))
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if uid is None or uid == 0:
        die("the Deployment does not set a non-root runAsUser")
    args = ["--user=%d:%d" % (uid, gid if gid is not None else uid)]
    if pod_sc.get("fsGroup") is not None:
        args.append("--group-add=%d" % pod_sc["fsGroup"])
    if sc.get("readOnlyRootFilesystem"):
        # Kubernetes mounts no tmpfs of its own; podman would add /tmp, /run.
        args += ["--read-only", "--read-only-tmpfs=false"]
    for cap in (sc.get("capabilities") or {}).get("drop") or []:
        args.append("--cap-drop=%s" % cap)
    for cap in (sc.get("capabilities") or {}).get("add") or []:
        args.append("--cap-add=%s" % cap)
    if sc.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    if sc.get("privileged"):
        die("a privileged container is not reproduced")
    return args


def main(argv):
    if len(argv) < 3:
        die("usage: pod_to_podman.py K8S_DIR OUT_DIR [--add-key CM KEY FILE]... [--edit CM KEY OLD NEW]...")
    k8s_dir, out = argv[1], argv[2]
    extra, edits, rest = {}, {}, argv[3:]
    while rest:
        if rest[0] == "--add-key" and len(rest) >= 4:
            with open(rest[3], encoding="utf-8") as f:
                extra.setdefault(rest[1], {})[rest[2]] = f.read()
            rest = rest[4:]
        elif rest[0] == "--edit" and len(rest) >= 5:
            edits.setdefault(rest[1], []).append((rest[2], rest[3], rest[4]))
            rest = rest[5:]
        else:
            die("unknown argument %r" % rest[0])

    docs = load_all(k8s_dir)
    deployment = one(docs, "Deployment", "meshgate")
    namespace = deployment["metadata"]["namespace"]
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    labels = dict(pod["metadata"]["labels"], **{"pod-template-hash": "image-test"})
    pod_sc = spec.get("securityContext") or {}

    args = security_args(pod_sc, container.get("securityContext") or {})
    for env in container.get("env") or []:
        field = ((env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        value = {"metadata.namespace": namespace, "metadata.name": "meshgate-image-test"}.get(field, env.get("value"))
        if value is None:
            die("env %s: source not reproduced" % env["name"])
        args.append("--env=%s=%s" % (env["name"], value))

    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for name, volume in volumes.items():
        files = volume_files(volume, docs, namespace, labels, extra, edits)
        atomic_write(os.path.join(out, "volumes", name), files, pod_sc.get("fsGroup"))
    for mount in container.get("volumeMounts") or []:
        source = os.path.join(out, "volumes", mount["name"])
        if mount.get("subPath"):
            source = os.path.join(source, TIMESTAMP, mount["subPath"])
        options = "ro" if mount.get("readOnly") else "rw"
        args.append("--volume=%s:%s:%s" % (os.path.abspath(source), mount["mountPath"], options))

    with open(os.path.join(out, "run-args"), "w", encoding="utf-8") as f:
        f.write("".join(a + "\n" for a in args))
    with open(os.path.join(out, "command-args"), "w", encoding="utf-8") as f:
        f.write("".join(a + "\n" for a in container.get("args") or []))
    with open(os.path.join(out, "grace-seconds"), "w", encoding="utf-8") as f:
        f.write("%d\n" % spec.get("terminationGracePeriodSeconds", 30))
    with open(os.path.join(out, "ports"), "w", encoding="utf-8") as f:
        f.write("".join("%s=%d\n" % (p["name"], p["containerPort"]) for p in container.get("ports") or []))


if __name__ == "__main__":
    main(sys.argv)
