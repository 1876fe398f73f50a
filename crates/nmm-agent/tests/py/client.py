"""PodResources v1 client in Python grpcio, over a unix socket with :authority localhost.

Prints "python.<call>\t<json>" lines for the Rust test to check."""
import json
import sys

import grpc
from google.protobuf.json_format import MessageToDict

import podresources_v1_pb2 as pb
import podresources_v1_pb2_grpc as pbg

sock = sys.argv[1]


def emit(name, value):
    print(f"python.{name}\t{json.dumps(value)}", flush=True)


def as_dict(msg):
    return MessageToDict(msg, preserving_proto_field_name=True)


def error(e):
    return {"code": e.code().name, "details": e.details()}


options = [("grpc.default_authority", "localhost")]
with grpc.insecure_channel(f"unix://{sock}", options=options) as ch:
    stub = pbg.PodResourcesListerStub(ch)
    emit("List", as_dict(stub.List(pb.ListPodResourcesRequest(), timeout=10)))
    emit(
        "GetAllocatableResources",
        as_dict(stub.GetAllocatableResources(pb.AllocatableResourcesRequest(), timeout=10)),
    )
    emit(
        "Get",
        as_dict(stub.Get(pb.GetPodResourcesRequest(pod_name="db", pod_namespace="prod"), timeout=10)),
    )
    try:
        stub.Get(pb.GetPodResourcesRequest(pod_name="nope", pod_namespace="default"), timeout=10)
        emit("GetMissing", {"code": "OK"})
    except grpc.RpcError as e:
        emit("GetMissing", error(e))
    # Bytes that are not a GetPodResourcesRequest.
    raw = ch.unary_unary("/v1.PodResourcesLister/Get")
    try:
        raw(b"\xff\xff\xff\xff", timeout=10)
        emit("BadProtobuf", {"code": "OK"})
    except grpc.RpcError as e:
        emit("BadProtobuf", error(e))
    # Over the server's 4 MiB limit.
    try:
        stub.Get(pb.GetPodResourcesRequest(pod_name="x" * (5 << 20), pod_namespace="default"), timeout=10)
        emit("Oversized", {"code": "OK"})
    except grpc.RpcError as e:
        emit("Oversized", error(e))
    emit("ListAfter", {"pods": len(stub.List(pb.ListPodResourcesRequest(), timeout=10).pod_resources)})
