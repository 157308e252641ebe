"""Drives svcnet's API server with the official Kubernetes Python client.

Usage: python_client.py KUBECONFIG. Exits non-zero (with the failed assertion) on any
difference from how a Kubernetes API server behaves for these calls.
"""
import ipaddress
import sys

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()


def expect_error(status, fragment, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        assert fragment in e.body, e.body
        return
    raise AssertionError(f"expected HTTP {status}")


names = [(s.metadata.namespace, s.metadata.name) for s in v1.list_service_for_all_namespaces().items]
assert ("default", "kubernetes") in names, names

spec = client.V1ServiceSpec(
    type="NodePort",
    selector={"app": "web"},
    ports=[client.V1ServicePort(name="http", port=80, target_port=8080)],
)
created = v1.create_namespaced_service("default", client.V1Service(metadata=client.V1ObjectMeta(name="web"), spec=spec))
assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/12"), created.spec.cluster_ip
node_port = created.spec.ports[0].node_port
assert 30000 <= node_port <= 32767, node_port
assert created.spec.session_affinity == "None" and created.spec.ports[0].protocol == "TCP"

got = v1.read_namespaced_service("web", "default")
got.spec.selector = {"app": "web2"}
replaced = v1.replace_namespaced_service("web", "default", got)
assert replaced.spec.ports[0].node_port == node_port, "allocations kept on update"

events = []
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_service, "default", resource_version=created.metadata.resource_version, timeout_seconds=5):
    events.append((ev["type"], ev["object"].metadata.name))
    if ev["type"] == "MODIFIED":
        w.stop()
assert ("MODIFIED", "web") in events, events

collision = client.V1Service(
    metadata=client.V1ObjectMeta(name="collision"),
    spec=client.V1ServiceSpec(type="NodePort", ports=[client.V1ServicePort(port=80, node_port=node_port)]),
)
expect_error(422, f"spec.ports[0].nodePort: Invalid value: {node_port}: provided port is already allocated",
             v1.create_namespaced_service, "default", collision)

stale = v1.read_namespaced_service("web", "default")
stale.metadata.resource_version = created.metadata.resource_version
expect_error(409, "the object has been modified", v1.replace_namespaced_service, "web", "default", stale)

current = v1.read_namespaced_service("web", "default")
current.status = client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(ingress=[client.V1LoadBalancerIngress(ip="1.2.3.4")]))
v1.replace_namespaced_service_status("web", "default", current)
assert v1.read_namespaced_service("web", "default").status.load_balancer.ingress[0].ip == "1.2.3.4"

v1.delete_namespaced_service("web", "default")
expect_error(404, 'services \\"web\\" not found', v1.read_namespaced_service, "web", "default")

unauthenticated = client.CoreV1Api(client.ApiClient(client.Configuration.get_default_copy()))
unauthenticated.api_client.configuration.api_key = {}
unauthenticated.api_client.configuration.api_key_prefix = {}
expect_error(401, "Unauthorized", unauthenticated.list_namespaced_service, "default")

# label and field selectors
v1.create_namespaced_service("default", client.V1Service(
    metadata=client.V1ObjectMeta(name="labelled", labels={"tier": "front"}),
    spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
by_label = [s.metadata.name for s in v1.list_namespaced_service("default", label_selector="tier in (front)").items]
assert by_label == ["labelled"], by_label
by_field = [s.metadata.name for s in v1.list_service_for_all_namespaces(field_selector="metadata.name=kubernetes").items]
assert by_field == ["kubernetes"], by_field
expect_error(400, "unable to parse requirement", v1.list_namespaced_service, "default", label_selector="tier in")
expect_error(400, "field label not supported: spec.nodeName", v1.list_namespaced_service, "default", field_selector="spec.nodeName=x")

# patches: the client sends a strategic merge patch for a dict body
patched = v1.patch_namespaced_service("labelled", "default", {
    "metadata": {"labels": {"env": "test"}},
    "spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "web"}]}})
assert patched.metadata.labels == {"tier": "front", "env": "test"}, patched.metadata.labels
assert [(p.port, p.name) for p in patched.spec.ports] == [(80, "web")], patched.spec.ports
# (the new port goes first, as kube-apiserver orders a strategic merge)
expect_error(422, "spec.ports[0].port: Invalid value: 0", v1.patch_namespaced_service, "labelled", "default",
             {"spec": {"ports": [{"port": 0, "protocol": "TCP"}]}})
assert [p.port for p in v1.read_namespaced_service("labelled", "default").spec.ports] == [80], "a rejected patch loses nothing"
expect_error(409, "the object has been modified", v1.patch_namespaced_service, "labelled", "default",
             {"metadata": {"resourceVersion": "1", "labels": {"stale": "yes"}}})
v1.patch_namespaced_service_status("labelled", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}})
assert v1.read_namespaced_service("labelled", "default").status.load_balancer.ingress[0].ip == "5.6.7.8"

# delete collection removes only what the selector picks
v1.create_namespaced_service("default", client.V1Service(
    metadata=client.V1ObjectMeta(name="labelled-2", labels={"tier": "front"}),
    spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=81)])))
v1.delete_collection_namespaced_service("default", label_selector="tier=front")
left = sorted(s.metadata.name for s in v1.list_namespaced_service("default").items)
assert left == ["kubernetes"], left

# chunked lists: every object exactly once, the first page's revision throughout
for n in range(5):
    v1.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name=f"page-{n}", labels={"paged": "yes"}),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
first = v1.list_namespaced_service("default", label_selector="paged=yes", limit=2)
assert first.metadata.remaining_item_count == 3 and first.metadata._continue, first.metadata
pages, token = [first], first.metadata._continue
while token:
    pages.append(v1.list_namespaced_service("default", label_selector="paged=yes", limit=2, _continue=token))
    token = pages[-1].metadata._continue
assert [s.metadata.name for p in pages for s in p.items] == [f"page-{n}" for n in range(5)], pages
assert {p.metadata.resource_version for p in pages} == {first.metadata.resource_version}
expect_error(400, "continue key is not valid", v1.list_namespaced_service, "default", _continue="garbage")
v1.delete_collection_namespaced_service("default", label_selector="paged=yes")

# a bookmark carries a watch past other resources' writes
services_rv = v1.list_namespaced_service("default").metadata.resource_version
other_rv = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bookmarks"))).metadata.resource_version
assert int(other_rv) > int(services_rv), (other_rv, services_rv)
seen = [(ev["type"], ev["raw_object"]["metadata"]["resourceVersion"]) for ev in watch.Watch().stream(
    v1.list_namespaced_service, "default", resource_version=services_rv, allow_watch_bookmarks=True, timeout_seconds=2)]
# (the namespace's default ServiceAccount may be written after it: the bookmark is at least there)
assert len(seen) == 1 and seen[0][0] == "BOOKMARK" and int(seen[0][1]) >= int(other_rv), seen

# endpoint slices and Endpoints follow pods (pods created with status set through the API)
import time


def wait_for(check, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


disc = client.DiscoveryV1Api()
v1.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="node-1")))
v1.create_namespaced_service("default", client.V1Service(
    metadata=client.V1ObjectMeta(name="demo"),
    spec=client.V1ServiceSpec(selector={"app": "demo"}, ports=[client.V1ServicePort(name="http", port=80, target_port=8080)]),
))
pod = v1.create_namespaced_pod("default", client.V1Pod(
    metadata=client.V1ObjectMeta(name="demo-1", labels={"app": "demo"}),
    spec=client.V1PodSpec(node_name="node-1", containers=[client.V1Container(name="c", image="agnhost")]),
))
pod.status = client.V1PodStatus(phase="Running", pod_ip="10.244.1.5", pod_ips=[client.V1PodIP(ip="10.244.1.5")],
                                conditions=[client.V1PodCondition(type="Ready", status="True")])
v1.replace_namespaced_pod_status("demo-1", "default", pod)


def demo_slices():
    return [s for s in disc.list_namespaced_endpoint_slice("default").items
            if (s.metadata.labels or {}).get("kubernetes.io/service-name") == "demo"]


def slice_with_pod():
    for s in demo_slices():
        for e in s.endpoints or []:
            if e.addresses == ["10.244.1.5"] and e.conditions.ready:
                return s
    return None


s = wait_for(slice_with_pod, "an EndpointSlice with the pod")
assert s.address_type == "IPv4" and s.ports[0].port == 8080 and s.ports[0].name == "http", s
assert s.metadata.owner_references[0].kind == "Service"
ep = wait_for(lambda: v1.read_namespaced_endpoints("demo", "default").subsets, "Endpoints with the pod")
assert ep[0].addresses[0].ip == "10.244.1.5" and ep[0].ports[0].port == 8080, ep

# a pod bound to a node is deleted gracefully: marked, its endpoint terminating, until its
# kubelet (none here) removes it; a wrong uid precondition is refused
v1.delete_namespaced_pod("demo-1", "default", grace_period_seconds=45)
marked = v1.read_namespaced_pod("demo-1", "default")
assert marked.metadata.deletion_timestamp is not None and marked.metadata.deletion_grace_period_seconds == 45, marked.metadata


def terminating_endpoint():
    for s in demo_slices():
        for e in s.endpoints or []:
            if e.addresses == ["10.244.1.5"] and e.conditions.terminating and not e.conditions.ready:
                return e
    return None


wait_for(terminating_endpoint, "the endpoint of the terminating pod marked terminating")
expect_error(409, 'the UID in the precondition (nope) does not match the UID in record (' + marked.metadata.uid + ')',
             v1.delete_namespaced_pod, "demo-1", "default",
             body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid="nope")))
v1.delete_namespaced_pod("demo-1", "default", grace_period_seconds=0)
wait_for(lambda: not slice_with_pod() and len(demo_slices()) == 1 and not demo_slices()[0].endpoints,
         "exactly one empty placeholder slice after the pod is gone")
wait_for(lambda: not v1.read_namespaced_endpoints("demo", "default").subsets, "empty Endpoints")
v1.delete_namespaced_service("demo", "default")
wait_for(lambda: not demo_slices(), "the slices of a deleted Service to go")

print("python client: all checks passed")
