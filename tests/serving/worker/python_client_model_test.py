"""A real Python gRPC client (grpcio) against a real atrium-worker: the stubs
generated at build time load, a greedy stream arrives in pieces with usage in
its last message, and an error's details decode with atrium.v1.error_pb2.

Run by ctest with the interpreter of ATRIUM_GRPC_PYTHON (Debian's
/usr/bin/python3 with python3-grpcio). Needs SmolLM2 (scripts/setup.sh).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ["ATRIUM_PROTO_PYTHON_DIR"])

import grpc  # noqa: E402
from atrium.v1 import error_pb2, inference_pb2  # noqa: E402
from internal import worker_pb2, worker_pb2_grpc  # noqa: E402

MODEL = "models/smollm2-135m-instruct"
MODEL_FILE = os.path.join(os.environ.get("ATRIUM_MODELS_DIR") or os.path.expanduser("~/.cache/atrium/models"),
                          "SmolLM2-135M-Instruct.Q4_1.gguf")


class WorkerClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MODEL_FILE):
            if os.environ.get("ATRIUM_REQUIRE_MODELS") == "1":
                raise RuntimeError("model not installed: %s (run scripts/setup.sh)" % MODEL_FILE)
            raise unittest.SkipTest("model not installed: %s (run scripts/setup.sh)" % MODEL_FILE)
        cls.dir = tempfile.mkdtemp(prefix="atrium-py-", dir="/tmp")
        cls.socket = os.path.join(cls.dir, "w.sock")
        binary = os.path.join(os.environ["ATRIUM_BINARY_DIR"], "atrium-worker")
        cls.proc = subprocess.Popen([binary, "--socket", cls.socket, "--tenant", "tenants/py", "--threads", "2"])
        cls.channel = grpc.insecure_channel("unix:" + cls.socket)
        grpc.channel_ready_future(cls.channel).result(timeout=30)
        cls.stub = worker_pb2_grpc.WorkerStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.proc.terminate()  # SIGTERM: drains, then exits
        cls.proc.wait(timeout=30)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_tokenize_round_trips(self):
        ids = self.stub.Tokenize(inference_pb2.TokenizeRequest(model=MODEL, text="Hello world",
                                                               add_special_tokens=False), timeout=10).token_ids
        self.assertGreater(len(ids), 0)
        text = self.stub.Detokenize(inference_pb2.DetokenizeRequest(model=MODEL, token_ids=ids), timeout=10).text
        self.assertEqual(text, "Hello world")

    def test_greedy_stream_has_usage_last(self):
        req = inference_pb2.GenerateRequest(
            model=MODEL, prompt="The capital of France is",
            config=inference_pb2.GenerationConfig(temperature=0, max_tokens=12, ignore_eos=True))
        messages = list(self.stub.Generate(req, timeout=60))
        self.assertGreater(len(messages), 2)
        text = "".join(m.text for m in messages)
        self.assertIn("Paris", text)
        last = messages[-1]
        self.assertEqual(last.finish_reason, inference_pb2.FINISH_REASON_LENGTH)
        self.assertEqual(last.usage.completion_tokens, 12)
        self.assertEqual(sum(len(m.token_ids) for m in messages), 12)
        # The same request again gives the same text: greedy is deterministic.
        again = "".join(m.text for m in self.stub.Generate(req, timeout=60))
        self.assertEqual(again, text)

    def test_error_details_decode(self):
        req = inference_pb2.GenerateRequest(model=MODEL, prompt="hi",
                                            config=inference_pb2.GenerationConfig(temperature=float("nan")))
        with self.assertRaises(grpc.RpcError) as caught:
            list(self.stub.Generate(req, timeout=10))
        err = caught.exception
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        raw = dict(err.trailing_metadata())["grpc-status-details-bin"]
        status = error_pb2.Status.FromString(raw)
        self.assertEqual(status.code, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        info, bad = error_pb2.ErrorInfo(), error_pb2.BadRequest()
        self.assertTrue(status.details[0].Unpack(info))
        self.assertEqual(info.domain, "atrium.dev")
        self.assertEqual(info.reason, "INVALID_GENERATION_CONFIG")
        self.assertTrue(status.details[1].Unpack(bad))
        self.assertEqual(bad.field_violations[0].field, "config.temperature")

    def test_cancel_frees_the_request(self):
        req = inference_pb2.GenerateRequest(
            model=MODEL, prompt="Count to a thousand:",
            config=inference_pb2.GenerationConfig(temperature=0, max_tokens=4000, ignore_eos=True))
        call = self.stub.Generate(req, timeout=60)
        next(call)
        call.cancel()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            health = self.stub.Health(worker_pb2.HealthRequest(), timeout=5)
            if health.streams == 0 and all(e.running == 0 and e.waiting == 0 for e in health.engines):
                break
            time.sleep(0.01)
        else:
            self.fail("the cancelled request still runs: %s" % health)


if __name__ == "__main__":
    unittest.main(verbosity=2)
