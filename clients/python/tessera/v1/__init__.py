"""The gRPC stubs of Tessera's API (``tessera.v1``), generated from ``proto/``.

``jobs_pb2`` (messages) and ``jobs_pb2_grpc`` (``JobServiceStub``) are made by
the build (CMake, or ``pip install``: see the package README) with ``protoc``
and the gRPC Python plugin; they are never written by hand or committed.
"""
