"""pycontainerd's CRI plugin: Kubernetes' Container Runtime Interface (runtime.v1) on pycontainerd.

`plugin.py` wires it into the daemon; `service.py` is the gRPC glue; `sandboxes.py`,
`containers.py`, `images.py`, `stats.py` do the work through containerd's API in the `k8s.io`
namespace; `cni.py` and `netns.py` the pod network; `spec.py`, `users.py`, `seccomp.py` the OCI
specs; `logs.py` the CRI log files; `store.py` what survives a restart. See docs/ARCHITECTURE.md.
"""
