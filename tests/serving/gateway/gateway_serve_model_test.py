"""A real Python gRPC client (grpcio) against a real `atrium serve`: the
gateway process, its per-tenant atrium-worker processes and the real models,
each started here on temporary directories and ports.

Checks what issue 5 asks the product to show: models listed; greedy streams
of each installed model equal to `atrium generate` (exactly equal to the
batching engine: gateway_model_test.cc);
UNAUTHENTICATED without or with a bad key; tenant isolation (NOT_FOUND, worded
as for a missing name); a revoked key stops at once; a quota refuses one
tenant only; cancel mid-stream; a short deadline; malformed requests; kill -9
of one tenant's worker during two tenants' streams; health and reflection;
the first-run admin key; the `atrium admin` CLI; the audit log holds no
prompt text; metrics; SIGTERM drains.

Run by ctest with ATRIUM_GRPC_PYTHON (Debian's /usr/bin/python3 with
python3-grpcio). Needs the models of scripts/setup.sh.
"""
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.environ["ATRIUM_PROTO_PYTHON_DIR"])

import grpc  # noqa: E402
from atrium.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from atrium.v1 import error_pb2, inference_pb2, inference_pb2_grpc  # noqa: E402
from atrium.v1 import plaza_pb2, plaza_pb2_grpc  # noqa: E402

BIN = os.environ["ATRIUM_BINARY_DIR"]
ATRIUM = os.path.join(BIN, "atrium")
SMOL = "models/smollm2-135m-instruct"
GEMMA = "models/gemma-3-270m"
MODELS_HOME = os.environ.get("ATRIUM_MODELS_DIR") or os.path.expanduser("~/.cache/atrium/models")
MODEL_FILES = {SMOL: "SmolLM2-135M-Instruct.Q4_1.gguf", GEMMA: "gemma-3-270m-q4_k_m.gguf"}
Code = grpc.StatusCode


def require_models():
    missing = [f for f in MODEL_FILES.values() if not os.path.exists(os.path.join(MODELS_HOME, f))]
    if missing:
        if os.environ.get("ATRIUM_REQUIRE_MODELS") == "1":
            raise RuntimeError("models not installed: %s (run scripts/setup.sh)" % missing)
        raise unittest.SkipTest("models not installed: %s (run scripts/setup.sh)" % missing)


class Server:
    """One `atrium serve` process on a fresh data directory and free ports."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="atrium-gw-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "serve.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ATRIUM, "serve", "--data-dir", self.data, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
             "-t", "1", *extra],
            stdout=subprocess.PIPE, stderr=self.log)
        self.banner = ""
        deadline = time.time() + 60
        fd = self.proc.stdout.fileno()
        while "atrium: listening on" not in self.banner:
            left = deadline - time.time()
            if left <= 0 or self.proc.poll() is not None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("atrium serve did not start:\n%s\n%s" % (self.banner, self.read_log()))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                self.banner += os.read(fd, 65536).decode()
        self.port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", self.banner).group(1))
        self.metrics_port = int(re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", self.banner).group(1))
        self.address = "127.0.0.1:%d" % self.port
        self.key_file = os.path.join(self.data, "admin.key")
        with open(self.key_file) as f:
            self.admin_key = f.read().strip()
        self.channel = grpc.insecure_channel(self.address, options=[("grpc.max_send_message_length", 64 << 20)])
        self.plaza = plaza_pb2_grpc.ModelPlazaStub(self.channel)
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10) as r:
            return r.read().decode()

    def new_tenant(self, tenant_id):
        self.admin.CreateTenant(admin_pb2.CreateTenantRequest(tenant_id=tenant_id), metadata=auth(self.admin_key),
                                timeout=10)
        return self.new_key(tenant_id)

    def new_key(self, tenant_id):
        r = self.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(parent="tenants/" + tenant_id),
                                    metadata=auth(self.admin_key), timeout=10)
        return r.secret

    def worker_pids(self, tenant_id):
        """The pids of this server's atrium-worker processes for a tenant."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    args = f.read().split(b"\0")
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if (ppid == self.proc.pid and args and args[0].endswith(b"atrium-worker")
                    and ("tenants/" + tenant_id).encode() in args):
                pids.append(int(entry))
        return pids

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def auth(key):
    return [("authorization", "Bearer " + key)]


def details(error):
    """(ErrorInfo reason, RetryInfo delay in s or None, [QuotaFailure subjects], [BadRequest fields])."""
    reason, delay, subjects, fields = "", None, [], []
    for k, v in error.trailing_metadata() or ():
        if k != "grpc-status-details-bin":
            continue
        status = error_pb2.Status.FromString(v)
        for any_ in status.details:
            for cls in (error_pb2.ErrorInfo, error_pb2.RetryInfo, error_pb2.QuotaFailure, error_pb2.BadRequest):
                msg = cls()
                if any_.Unpack(msg):
                    if cls is error_pb2.ErrorInfo:
                        reason = msg.reason
                    elif cls is error_pb2.RetryInfo:
                        delay = msg.retry_delay.seconds + msg.retry_delay.nanos / 1e9
                    elif cls is error_pb2.QuotaFailure:
                        subjects += [v.subject for v in msg.violations]
                    else:
                        fields += [f.field for f in msg.field_violations]
    return reason, delay, subjects, fields


def greedy(max_tokens, **kw):
    return inference_pb2.GenerationConfig(temperature=0, max_tokens=max_tokens, **kw)


def cli_generate(model, prompt, n, chat=False):
    args = [ATRIUM, "generate", "-m", model.split("/", 1)[1], "--prompt", prompt, "--temperature", "0", "-n", str(n),
            "-q", "-t", "1"]
    if chat:
        args.append("--chat")
    return subprocess.run(args, check=True, capture_output=True, timeout=300).stdout.decode()


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_models()
        cls.server = Server("--idle-timeout", "600", "--drain-timeout", "10")
        s = cls.server
        cls.acme = s.new_tenant("acme")
        cls.globex = s.new_tenant("globex")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def call_error(self, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            r = fn(*args, **kw)
            if hasattr(r, "__iter__") and not hasattr(r, "SerializeToString"):
                list(r)
        return cm.exception

    # -- first run, health, reflection -------------------------------------

    def test_first_run_prints_the_admin_key_and_writes_it_for_the_user_only(self):
        s = self.server
        self.assertIn(s.admin_key, s.banner)
        self.assertIn("atrium admin", s.banner)
        self.assertIn("InferenceStub", s.banner)
        mode = stat.S_IMODE(os.stat(s.key_file).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(s.data).st_mode), 0o700)

    def test_health_and_reflection(self):
        ch = self.server.channel
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        # HealthCheckResponse{status: SERVING (1)}: field 1, varint.
        self.assertEqual(check(b"", timeout=10), b"\x08\x01")
        reflect = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        # ServerReflectionRequest{list_services: ""}: field 7, length 0.
        answer = b"".join(reflect(iter([b"\x3a\x00"]), timeout=10))
        for service in (b"atrium.v1.Inference", b"atrium.v1.ModelPlaza", b"atrium.v1.Admin", b"grpc.health.v1.Health"):
            self.assertIn(service, answer)

    # -- the plaza ------------------------------------------------------------

    def test_list_models_pages_and_get_model(self):
        s = self.server
        all_models = s.plaza.ListModels(plaza_pb2.ListModelsRequest(), metadata=auth(self.acme), timeout=10)
        names = [m.name for m in all_models.models]
        self.assertIn(SMOL, names)
        self.assertIn(GEMMA, names)
        self.assertEqual(names, sorted(names))
        smol = next(m for m in all_models.models if m.name == SMOL)
        self.assertEqual(smol.architecture, "llama")
        self.assertEqual(smol.quantization, "Q4_1")
        self.assertEqual(smol.context_length, 8192)
        self.assertGreater(smol.parameter_count, 100_000_000)
        self.assertTrue(smol.provider)
        self.assertTrue(smol.family)
        self.assertEqual(smol.license, "apache-2.0")
        self.assertIn(plaza_pb2.CAPABILITY_CHAT, smol.capabilities)
        paged, token = [], ""
        while True:
            page = s.plaza.ListModels(plaza_pb2.ListModelsRequest(page_size=1, page_token=token),
                                      metadata=auth(self.acme), timeout=10)
            paged += [m.name for m in page.models]
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(paged, names)
        self.assertEqual(s.plaza.GetModel(plaza_pb2.GetModelRequest(name=SMOL), metadata=auth(self.acme),
                                          timeout=10), smol)
        e = self.call_error(s.plaza.GetModel, plaza_pb2.GetModelRequest(name="models/no-such-model"),
                            metadata=auth(self.acme), timeout=10)
        self.assertEqual(e.code(), Code.NOT_FOUND)
        e = self.call_error(s.plaza.ListModels, plaza_pb2.ListModelsRequest(page_token="bogus"),
                            metadata=auth(self.acme), timeout=10)
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)

    # -- generation -------------------------------------------------------------

    def test_greedy_streams_equal_the_engine_for_each_model(self):
        s = self.server
        prompt = "The capital of France is"
        question = "What is the capital of France?"
        for model in (SMOL, GEMMA):
            messages = list(s.inference.Generate(
                inference_pb2.GenerateRequest(model=model, prompt=prompt, config=greedy(16)),
                metadata=auth(self.acme), timeout=300))
            self.assertGreater(len(messages), 1, "%s: the text streams in pieces" % model)
            text = "".join(m.text for m in messages)
            self.assertEqual(text, cli_generate(model, prompt, 16), model)
            last = messages[-1]
            self.assertIn(last.finish_reason, (inference_pb2.FINISH_REASON_STOP, inference_pb2.FINISH_REASON_LENGTH))
            self.assertGreater(last.usage.prompt_tokens, 0)
            self.assertEqual(last.usage.completion_tokens, sum(len(m.token_ids) for m in messages))

            # Chat: the batching engine's exact output is checked in
            # gateway_model_test.cc (C++ runs the engine in-process). The CLI
            # runs the single-sequence Session, whose last bits differ from
            # the batched engine's: on SmolLM2 the chat below parts after 12
            # tokens at a near-tie. Here: the stream and the unary form agree,
            # and the prompt is the one CountTokens counts.
            conversation = [inference_pb2.ChatMessage(role="user", content=question)]
            chat = list(s.inference.Chat(inference_pb2.ChatRequest(model=model, messages=conversation,
                                                                   config=greedy(16)),
                                         metadata=auth(self.acme), timeout=300))
            unary = s.inference.ChatUnary(inference_pb2.ChatRequest(model=model, messages=conversation,
                                                                    config=greedy(16)),
                                          metadata=auth(self.acme), timeout=300)
            chat_text = "".join(m.text for m in chat)
            self.assertTrue(chat_text, model)
            self.assertEqual(chat_text, unary.text, model)
            count = s.inference.CountTokens(inference_pb2.CountTokensRequest(model=model, messages=conversation),
                                            metadata=auth(self.acme), timeout=60)
            self.assertEqual(chat[-1].usage.prompt_tokens, count.total_tokens, model)
            self.assertEqual(chat_text[:8], cli_generate(model, question, 16, chat=True)[:8], model)

    def test_unary_and_token_calls(self):
        s = self.server
        r = s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="The capital of France is",
                                                                    config=greedy(8)),
                                      metadata=auth(self.acme), timeout=120)
        self.assertIn("Paris", r.text)
        self.assertEqual(r.usage.completion_tokens, len(r.token_ids))
        tok = s.inference.Tokenize(inference_pb2.TokenizeRequest(model=SMOL, text="Hello world"),
                                   metadata=auth(self.acme), timeout=60)
        self.assertGreater(len(tok.token_ids), 1)
        detok = s.inference.Detokenize(inference_pb2.DetokenizeRequest(model=SMOL, token_ids=tok.token_ids),
                                       metadata=auth(self.acme), timeout=60)
        self.assertIn("Hello world", detok.text)
        count = s.inference.CountTokens(inference_pb2.CountTokensRequest(model=SMOL, prompt="Hello world"),
                                        metadata=auth(self.acme), timeout=60)
        self.assertEqual(count.total_tokens, len(tok.token_ids))

    # -- authentication and isolation -----------------------------------------

    def test_no_key_or_a_bad_key_is_unauthenticated(self):
        s = self.server
        req = inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(2))
        bad = "atr_key-000000000000_" + "0" * 64
        for md in ([], auth(bad), auth("garbage"), [("authorization", "Basic Zm9vOmJhcg==")]):
            for call in (lambda: list(s.inference.Generate(req, metadata=md, timeout=10)),
                         lambda: s.plaza.ListModels(plaza_pb2.ListModelsRequest(), metadata=md, timeout=10),
                         lambda: s.admin.ListTenants(admin_pb2.ListTenantsRequest(), metadata=md, timeout=10)):
                with self.assertRaises(grpc.RpcError) as cm:
                    call()
                self.assertEqual(cm.exception.code(), Code.UNAUTHENTICATED, md)
                self.assertEqual(details(cm.exception)[0][:8], "API_KEY_", cm.exception.details())

    def test_admin_methods_need_an_admin_key(self):
        s = self.server
        e = self.call_error(s.admin.CreateTenant, admin_pb2.CreateTenantRequest(tenant_id="intruder"),
                            metadata=auth(self.acme), timeout=10)
        self.assertEqual(e.code(), Code.PERMISSION_DENIED)
        e = self.call_error(s.admin.ListTenants, admin_pb2.ListTenantsRequest(), metadata=auth(self.acme), timeout=10)
        self.assertEqual(e.code(), Code.PERMISSION_DENIED)
        e = self.call_error(s.admin.SetQuota, admin_pb2.SetQuotaRequest(
            quota=admin_pb2.Quota(name="tenants/acme/quota", requests_per_minute=1000000)),
            metadata=auth(self.acme), timeout=10)
        self.assertEqual(e.code(), Code.PERMISSION_DENIED)

    def test_a_tenant_cannot_see_another_tenants_resources(self):
        s = self.server
        md = auth(self.acme)
        # Its own: visible.
        self.assertEqual(s.admin.GetTenant(admin_pb2.GetTenantRequest(name="tenants/acme"), metadata=md,
                                           timeout=10).name, "tenants/acme")
        s.admin.GetQuota(admin_pb2.GetQuotaRequest(name="tenants/acme/quota"), metadata=md, timeout=10)
        s.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(parent="tenants/acme"), metadata=md, timeout=10)
        # Another tenant's: exactly the answer for one that does not exist.
        calls = [
            lambda t: s.admin.GetTenant(admin_pb2.GetTenantRequest(name="tenants/" + t), metadata=md, timeout=10),
            lambda t: s.admin.GetQuota(admin_pb2.GetQuotaRequest(name="tenants/%s/quota" % t), metadata=md,
                                       timeout=10),
            lambda t: s.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(parent="tenants/" + t), metadata=md,
                                          timeout=10),
        ]
        for call in calls:
            answers = []
            for tenant in ("globex", "nosuchtenant"):
                with self.assertRaises(grpc.RpcError) as cm:
                    call(tenant)
                e = cm.exception
                self.assertEqual(e.code(), Code.NOT_FOUND)
                answers.append((e.details().replace(tenant, "<t>"), details(e)[0]))
            self.assertEqual(answers[0], answers[1])
        # The admin sees it.
        s.admin.GetTenant(admin_pb2.GetTenantRequest(name="tenants/globex"), metadata=auth(s.admin_key), timeout=10)

    def test_a_revoked_key_stops_at_once(self):
        s = self.server
        key = s.new_key("acme")
        md = auth(key)
        s.plaza.ListModels(plaza_pb2.ListModelsRequest(), metadata=md, timeout=10)
        name = next(k.name for k in s.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(parent="tenants/acme"),
                                                        metadata=auth(s.admin_key), timeout=10).api_keys
                    if k.name.endswith(key.split("_")[1]))
        revoked = s.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(name=name), metadata=auth(s.admin_key),
                                       timeout=10)
        self.assertEqual(revoked.state, admin_pb2.ApiKey.REVOKED)
        e = self.call_error(s.plaza.ListModels, plaza_pb2.ListModelsRequest(), metadata=md, timeout=10)
        self.assertEqual(e.code(), Code.UNAUTHENTICATED)
        self.assertIn("revoked", e.details())
        e = self.call_error(s.inference.Generate, inference_pb2.GenerateRequest(model=SMOL, prompt="Hi"),
                            metadata=md, timeout=10)
        self.assertEqual(e.code(), Code.UNAUTHENTICATED)
        # The tenant's other key still works.
        s.plaza.ListModels(plaza_pb2.ListModelsRequest(), metadata=auth(self.acme), timeout=10)
        # Another tenant's key under this tenant's name: not found.
        e = self.call_error(s.admin.RevokeApiKey, admin_pb2.RevokeApiKeyRequest(
            name=name.replace("tenants/acme", "tenants/globex")), metadata=auth(s.admin_key), timeout=10)
        self.assertEqual(e.code(), Code.NOT_FOUND)

    # -- quotas -------------------------------------------------------------------

    def test_quota_refuses_one_tenant_only(self):
        s = self.server
        limited = s.new_tenant("limited")
        q = s.admin.SetQuota(admin_pb2.SetQuotaRequest(quota=admin_pb2.Quota(name="tenants/limited/quota",
                                                                              requests_per_minute=2)),
                             metadata=auth(s.admin_key), timeout=10)
        self.assertEqual(q.requests_per_minute, 2)
        req = inference_pb2.TokenizeRequest(model=SMOL, text="Hello")
        for _ in range(2):
            s.inference.Tokenize(req, metadata=auth(limited), timeout=60)
        e = self.call_error(s.inference.Tokenize, req, metadata=auth(limited), timeout=60)
        self.assertEqual(e.code(), Code.RESOURCE_EXHAUSTED)
        reason, delay, subjects, _ = details(e)
        self.assertEqual(reason, "QUOTA_EXCEEDED")
        self.assertIsNotNone(delay)
        self.assertGreater(delay, 0)
        self.assertEqual(subjects, ["tenants/limited/quota"])
        self.assertIn("limited", e.details())
        # Every other tenant is untouched.
        for _ in range(3):
            s.inference.Tokenize(req, metadata=auth(self.globex), timeout=60)
        # A tenant over its token budget is refused after the call that spent it.
        s.admin.SetQuota(admin_pb2.SetQuotaRequest(
            quota=admin_pb2.Quota(name="tenants/limited/quota", requests_per_minute=0, tokens_per_minute=10)),
            metadata=auth(s.admin_key), timeout=10)
        r = s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Count to ten:",
                                                                    config=greedy(12, ignore_eos=True)),
                                      metadata=auth(limited), timeout=120)
        self.assertEqual(r.usage.completion_tokens, 12, "a call is never cut off by the token budget")
        e = self.call_error(s.inference.GenerateUnary, inference_pb2.GenerateRequest(model=SMOL, prompt="Hi"),
                            metadata=auth(limited), timeout=60)
        self.assertEqual(e.code(), Code.RESOURCE_EXHAUSTED)
        self.assertIn("tokens per minute", e.details())

    # -- cancel and deadlines -----------------------------------------------------

    def metric(self, text, name, **labels):
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + ("{" + want + "}" if want else "") + " ") or (
                    not want and line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return None

    def test_cancel_mid_stream_frees_the_request(self):
        s = self.server
        call = s.inference.Generate(inference_pb2.GenerateRequest(model=SMOL, prompt="Tell me a long story.",
                                                                  config=greedy(4000, ignore_eos=True)),
                                    metadata=auth(self.acme), timeout=300)
        got = 0
        for m in call:
            got += len(m.token_ids)
            if got >= 3:
                break
        call.cancel()
        self.assertEqual(call.code(), Code.CANCELLED)
        # The gateway's stream ends at once, and the worker's engine lets the
        # request go (the worker's load reaches the gauges within a poll).
        deadline = time.time() + 6
        while True:
            text = s.metrics()
            streams = self.metric(text, "atrium_streams_active")
            running = self.metric(text, "atrium_num_requests_running", tenant="acme")
            if streams == 0 and running == 0:
                break
            self.assertLess(time.time(), deadline, "still open: streams %s, running %s" % (streams, running))
            time.sleep(0.2)
        cancelled = self.metric(text, "atrium_requests_total", code="CANCELLED",
                                method="/atrium.v1.Inference/Generate")
        self.assertGreaterEqual(cancelled or 0, 1)

    def test_a_short_deadline_is_deadline_exceeded(self):
        s = self.server
        start = time.time()
        e = self.call_error(s.inference.Generate,
                            inference_pb2.GenerateRequest(model=SMOL, prompt="Tell me a long story.",
                                                          config=greedy(4000, ignore_eos=True)),
                            metadata=auth(self.acme), timeout=0.5)
        self.assertEqual(e.code(), Code.DEADLINE_EXCEEDED)
        self.assertLess(time.time() - start, 5)
        # The tenant's worker is free again for the next call.
        r = s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(2)),
                                      metadata=auth(self.acme), timeout=60)
        self.assertGreater(r.usage.completion_tokens, 0)

    # -- malformed requests ---------------------------------------------------------

    def test_malformed_requests_get_clear_errors_and_the_server_keeps_serving(self):
        s = self.server
        md = auth(self.acme)

        def gen(**kw):
            return self.call_error(lambda: list(s.inference.Generate(inference_pb2.GenerateRequest(**kw),
                                                                     metadata=md, timeout=60)))
        e = gen(model=SMOL, prompt="")
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        self.assertEqual(details(e)[3], ["prompt"])
        e = gen(model=SMOL, prompt="Hi", config=inference_pb2.GenerationConfig(max_tokens=-1))
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        self.assertIn("config.max_tokens", e.details())
        e = gen(model=SMOL, prompt="Hi", config=inference_pb2.GenerationConfig(temperature=float("nan")))
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        self.assertIn("config.temperature", e.details())
        e = gen(model="models/no-such-model", prompt="Hi")
        self.assertEqual(e.code(), Code.NOT_FOUND)
        self.assertIn(SMOL, e.details(), "the message lists what is installed")
        e = gen(model="no-slash", prompt="Hi")
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        e = gen(model=SMOL, prompt="a" * (10 << 20))
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        self.assertEqual(details(e)[0], "PROMPT_TOO_LONG")
        self.assertIn("10485760", e.details())
        e = gen(model=SMOL, prompt="a" * (20 << 20))  # over the 16 MiB message limit
        self.assertEqual(e.code(), Code.RESOURCE_EXHAUSTED)
        self.assertIn("larger than max", e.details())
        e = self.call_error(lambda: list(s.inference.Chat(inference_pb2.ChatRequest(model=SMOL), metadata=md,
                                                          timeout=60)))
        self.assertEqual(e.code(), Code.INVALID_ARGUMENT)
        r = s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(2)),
                                      metadata=md, timeout=60)
        self.assertGreater(r.usage.completion_tokens, 0)

    # -- a worker killed during two tenants' streams -------------------------------

    def test_workers_share_one_mapped_copy_of_the_packed_weights(self):
        """Two tenants' workers map the same packed-weight file read-only
        (one copy in the page cache), and the second did not write it."""
        s = self.server
        keys = [s.new_tenant("share-a"), s.new_tenant("share-b")]
        for key in keys:
            s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(1)),
                                      metadata=auth(key), timeout=120)
        packed_dir = os.path.join(s.data, "packed")
        files = [f for f in os.listdir(packed_dir) if f.startswith(MODEL_FILES[SMOL]) and f.endswith(".packed")]
        self.assertEqual(len(files), 1, os.listdir(packed_dir))
        path = os.path.realpath(os.path.join(packed_dir, files[0]))
        for tenant in ("share-a", "share-b"):
            pids = s.worker_pids(tenant)
            self.assertEqual(len(pids), 1, pids)
            with open("/proc/%d/maps" % pids[0]) as f:
                maps = [line.split() for line in f if line.rstrip().endswith(path)]
            self.assertTrue(maps, "worker of %s does not map %s" % (tenant, path))
            # Read-only, shared: "r--s".
            self.assertTrue(all(m[1] == "r--s" for m in maps), maps)

    def test_kill_9_of_one_tenants_worker(self):
        s = self.server
        victim_key, other_key = s.new_tenant("victim"), s.new_tenant("bystander")
        # Warm both workers (their model loaded), so the streams below start at once.
        for key in (victim_key, other_key):
            s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(1)),
                                      metadata=auth(key), timeout=120)
        results = {}
        first_token = {}

        def stream(name, key, n):
            got, text = 0, ""
            try:
                for m in s.inference.Generate(inference_pb2.GenerateRequest(
                        model=SMOL, prompt="Write a long essay about the sea.", config=greedy(n, ignore_eos=True)),
                        metadata=auth(key), timeout=300):
                    got += len(m.token_ids)
                    text += m.text
                    if got > 0:
                        first_token.setdefault(name, time.time())
                    last = m
                results[name] = ("ok", got, last.finish_reason, time.time())
            except grpc.RpcError as e:
                results[name] = (e.code(), got, details(e)[0], time.time())

        threads = [threading.Thread(target=stream, args=("victim%d" % i, victim_key, 4000)) for i in range(2)]
        threads += [threading.Thread(target=stream, args=("other%d" % i, other_key, 40)) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.time() + 120
        while len(first_token) < 4 and time.time() < deadline and not results:
            time.sleep(0.05)
        self.assertEqual(len(first_token), 4, "all four streams started: %s %s" % (first_token, results))
        pids = s.worker_pids("victim")
        self.assertEqual(len(pids), 1, pids)
        killed_at = time.time()
        os.kill(pids[0], signal.SIGKILL)
        for t in threads:
            t.join(timeout=300)
        for i in range(2):
            code, got, reason, at = results["victim%d" % i]
            self.assertEqual(code, Code.UNAVAILABLE, results)
            self.assertEqual(reason, "WORKER_UNAVAILABLE")
            self.assertLess(at - killed_at, 2.0, "the victim's stream failed within 2 s")
            code, got, finish, _ = results["other%d" % i]
            self.assertEqual(code, "ok", results)
            self.assertEqual(got, 40)
            self.assertEqual(finish, inference_pb2.FINISH_REASON_LENGTH)
        # The victim's next call succeeds on a new worker.
        r = s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(2)),
                                      metadata=auth(victim_key), timeout=120)
        self.assertGreater(r.usage.completion_tokens, 0)
        new_pids = s.worker_pids("victim")
        self.assertEqual(len(new_pids), 1)
        self.assertNotEqual(new_pids, pids)
        self.assertIn("was killed by signal 9", s.read_log())

    # -- the admin CLI, the audit log, metrics ----------------------------------------

    def test_admin_cli(self):
        s = self.server

        def admin(*args):
            out = subprocess.run([ATRIUM, "admin", "--address", s.address, "--key-file", s.key_file, *args],
                                 check=True, capture_output=True, timeout=60).stdout.decode()
            return json.loads(out)
        self.assertEqual(admin("create-tenant", "cli-tenant")["name"], "tenants/cli-tenant")
        key = admin("create-key", "cli-tenant")
        self.assertTrue(key["secret"].startswith("atr_key-"))
        s.plaza.ListModels(plaza_pb2.ListModelsRequest(), metadata=auth(key["secret"]), timeout=10)
        quota = admin("set-quota", "cli-tenant", "--requests-per-minute", "60", "--concurrent-streams", "2")
        self.assertEqual(quota["requests_per_minute"], 60)
        self.assertEqual(quota["concurrent_streams"], 2)
        quota = admin("set-quota", "cli-tenant", "--tokens-per-minute", "1000")
        self.assertEqual(quota["requests_per_minute"], 60, "fields not given stay")
        self.assertEqual(quota["tokens_per_minute"], "1000")  # int64 is a string in JSON
        tenants = [t["name"] for t in admin("list-tenants")["tenants"]]
        self.assertIn("tenants/cli-tenant", tenants)
        self.assertIn("tenants/admin", tenants)
        revoked = admin("revoke-key", key["api_key"]["name"])
        self.assertEqual(revoked["state"], "REVOKED")
        e = self.call_error(s.plaza.ListModels, plaza_pb2.ListModelsRequest(), metadata=auth(key["secret"]),
                            timeout=10)
        self.assertEqual(e.code(), Code.UNAUTHENTICATED)
        audit = subprocess.run([ATRIUM, "admin", "audit", "--data-dir", s.data, "--tenant", "cli-tenant"],
                               check=True, capture_output=True, timeout=60).stdout.decode().splitlines()
        records = [json.loads(line) for line in audit]
        self.assertTrue(records)
        self.assertTrue(all(r["tenant"] == "cli-tenant" for r in records), records)
        self.assertIn("/atrium.v1.ModelPlaza/ListModels", [r["method"] for r in records])
        bad = subprocess.run([ATRIUM, "admin", "--address", s.address, "--key", self.acme, "list-tenants"],
                             capture_output=True, timeout=60)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"PERMISSION_DENIED", bad.stderr)

    def test_audit_log_records_calls_without_prompt_text(self):
        s = self.server
        secret_prompt = "zebra-unicorn-%d says" % os.getpid()
        s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt=secret_prompt, config=greedy(3)),
                                  metadata=auth(self.acme), timeout=60)
        time.sleep(0.5)  # appended by the audit thread
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(s.data, "atrium.db"), uri=True)
        rows = db.execute("SELECT tenant_id, key_id, method, model, prompt_tokens, completion_tokens, status_code "
                          "FROM audit_log WHERE method = '/atrium.v1.Inference/GenerateUnary' AND tenant_id = 'acme'"
                          ).fetchall()
        db.close()
        self.assertTrue(any(r[3] == SMOL and r[4] > 0 and r[5] == 3 and r[6] == 0 for r in rows), rows)
        for name in os.listdir(s.data):
            path = os.path.join(s.data, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self.assertNotIn(secret_prompt.encode(), f.read(), name)

    def test_metrics_endpoint(self):
        s = self.server
        s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(3)),
                                  metadata=auth(self.acme), timeout=60)
        text = s.metrics()
        for name in ("atrium_requests_total", "atrium_time_to_first_token_seconds_bucket",
                     "atrium_inter_token_latency_seconds_bucket", "atrium_e2e_request_latency_seconds_bucket",
                     "atrium_prompt_tokens_total", "atrium_generation_tokens_total", "atrium_streams_active",
                     "atrium_workers"):
            self.assertIn(name, text)

    def test_prefix_cache_hits_reach_the_metrics(self):
        # The same long prompt (~330 tokens) twice: the second takes its full
        # blocks from the tenant's prefix cache, and the worker's count
        # reaches the gauge within a health poll (other tests' hits are a few
        # dozen tokens, so the gauge must grow by far more than they could
        # add); the preemption gauge is there, at 0.
        s = self.server
        before = self.metric(s.metrics(), "atrium_prefix_cache_hit_tokens", tenant="acme") or 0
        prompt = "Summarize the following. " + " ".join("item %d is on shelf %d;" % (i, i % 7) for i in range(40))
        for _ in range(2):
            s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt=prompt, config=greedy(2)),
                                      metadata=auth(self.acme), timeout=60)
        deadline = time.time() + 6
        while True:
            text = s.metrics()
            hits = self.metric(text, "atrium_prefix_cache_hit_tokens", tenant="acme") or 0
            if hits - before >= 256:
                break
            self.assertLess(time.time(), deadline, "prefix-cache hits %s -> %s:\n%s" % (before, hits, text))
            time.sleep(0.2)
        self.assertEqual(self.metric(text, "atrium_num_preemptions", tenant="acme"), 0)
        # The same poll's engine figures: steps ran, the prompt's full blocks
        # stay cached for later hits, and the worker has been up a while.
        self.assertGreater(self.metric(text, "atrium_engine_steps", tenant="acme") or 0, 0)
        self.assertGreaterEqual(self.metric(text, "atrium_kv_cache_blocks_cached", tenant="acme") or 0, 16)
        self.assertGreater(self.metric(text, "atrium_worker_uptime_seconds", tenant="acme") or 0, 0)


class DrainTest(unittest.TestCase):
    """SIGTERM: health NOT_SERVING, new calls refused, the stream in flight finishes, exit 0."""

    def test_sigterm_drains(self):
        require_models()
        s = Server("--drain-timeout", "60")
        try:
            key = s.new_tenant("drainer")
            s.inference.GenerateUnary(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(1)),
                                      metadata=auth(key), timeout=120)
            call = s.inference.Generate(inference_pb2.GenerateRequest(model=SMOL, prompt="Write about the sea.",
                                                                      config=greedy(48, ignore_eos=True)),
                                        metadata=auth(key), timeout=300)
            it = iter(call)
            first = next(it)
            s.proc.send_signal(signal.SIGTERM)
            check = s.channel.unary_unary("/grpc.health.v1.Health/Check")
            deadline = time.time() + 10
            while True:
                try:
                    if check(b"", timeout=5) == b"\x08\x02":  # NOT_SERVING
                        break
                except grpc.RpcError:
                    break  # already shut down: the stream below must still have finished
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            try:
                list(s.inference.Generate(inference_pb2.GenerateRequest(model=SMOL, prompt="Hi", config=greedy(2)),
                                          metadata=auth(key), timeout=10))
                self.fail("a new call was admitted during the drain")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), Code.UNAVAILABLE)
            got = len(first.token_ids) + sum(len(m.token_ids) for m in it)
            self.assertEqual(got, 48, "the stream in flight finished")
            self.assertEqual(s.proc.wait(timeout=60), 0)
            self.assertEqual(s.worker_pids("drainer"), [])
        finally:
            s.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
