// A gRPC-Web client of the Workspace gateway, for tests/test_grpcweb.py: Connect's gRPC-Web transport
// (@connectrpc/connect-web, over Node's fetch) with stubs built at run time from generated/descriptor.binpb,
// so no generated JavaScript is needed.
//
//   node tests/grpcweb/client.mjs login  --base-url URL --username U --password P [--origin O]
//   node tests/grpcweb/client.mjs stream --base-url URL --username U --password P
//
// It prints one JSON object per line on stdout:
//   {"step":"login","user":...,"user_id":...,"access_token":...,"refresh_token":...}  after Login
//   {"step":"whoami","user":...,"user_id":...}                                          after WhoAmI (login)
//   {"step":"headers","method":...,"headers":{...}}           content type and CORS headers of each answer
//   {"step":"event","event":{...}}         each StreamEvents event, in protobuf JSON (stream; "live" after
//                                          the first heartbeat); the stream is cancelled when stdin closes
//   {"step":"end"}                         the scenario is over
//   {"step":"error","code":16,"name":"unauthenticated","message":...,"details":[...]}  a call failed
// Exit code 0 when the scenario ran (even if a call failed: the error line says how), 2 for bad arguments.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { create, createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

const DESCRIPTOR_SET = new URL("../../generated/descriptor.binpb", import.meta.url);
const CALL_TIMEOUT_MS = 10_000;

const { positionals, values: options } = parseArgs({
  allowPositionals: true,
  options: {
    "base-url": { type: "string" },
    username: { type: "string" },
    password: { type: "string" },
    origin: { type: "string" },
  },
});
const scenario = positionals[0];
if (!["login", "stream"].includes(scenario) || !options["base-url"] || !options.username) {
  process.stderr.write("usage: client.mjs login|stream --base-url URL --username U --password P [--origin O]\n");
  process.exit(2);
}

// Every message and service of the descriptor set (ours, google.protobuf and google.rpc), by full name.
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET)));
const message = (name, init = {}) => create(registry.getMessage(name), init);

function print(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// Show the headers of each answer that say which protocol it is in and what CORS allows. With --origin,
// send it as a browser sends its page's Origin on every cross-origin call.
const ANSWER_HEADERS = ["content-type", "access-control-allow-origin", "access-control-expose-headers"];
const headersInterceptor = (next) => async (request) => {
  if (options.origin) request.header.set("origin", options.origin);
  const response = await next(request);
  const headers = Object.fromEntries(ANSWER_HEADERS.map((name) => [name, response.header.get(name)]));
  print({ step: "headers", method: request.method.name, headers });
  return response;
};

const transport = createGrpcWebTransport({
  baseUrl: options["base-url"],
  interceptors: [headersInterceptor],
});
const auth = createClient(registry.getService("workspace.v1.AuthService"), transport);
const chat = createClient(registry.getService("workspace.v1.ChatService"), transport);

async function login() {
  const request = message("workspace.v1.LoginRequest", {
    username: options.username,
    password: options.password ?? "",
  });
  const reply = await auth.login(request, { timeoutMs: CALL_TIMEOUT_MS });
  print({
    step: "login",
    user: reply.user.username,
    user_id: Number(reply.user.id),
    access_token: reply.tokens.accessToken,
    refresh_token: reply.tokens.refreshToken,
  });
  return { authorization: `Bearer ${reply.tokens.accessToken}` };
}

async function whoami(headers) {
  const reply = await auth.whoAmI(message("workspace.v1.WhoAmIRequest"), { headers, timeoutMs: CALL_TIMEOUT_MS });
  print({ step: "whoami", user: reply.user.username, user_id: Number(reply.user.id) });
}

async function stream(headers) {
  // Closing stdin (the test does) cancels the stream, as a page being closed would.
  const abort = new AbortController();
  process.stdin.on("end", () => abort.abort());
  process.stdin.resume();
  const eventSchema = registry.getMessage("workspace.v1.Event");
  const request = message("workspace.v1.StreamEventsRequest", { afterEventId: 0n });
  try {
    for await (const reply of chat.streamEvents(request, { headers, signal: abort.signal })) {
      print({ step: "event", event: toJson(eventSchema, reply.event, { registry }) });
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  }
  process.stdin.pause();
}

function describe(error) {
  const e = ConnectError.from(error);
  const details = e.details.map((detail) => {
    const schema = registry.getMessage(detail.type);
    const value = "value" in detail && schema ? toJson(schema, fromBinary(schema, detail.value)) : {};
    return { "@type": detail.type, ...value };
  });
  return { step: "error", code: e.code, name: codeToString(e.code), message: e.rawMessage, details };
}

try {
  const headers = await login();
  if (scenario === "login") await whoami(headers);
  if (scenario === "stream") await stream(headers);
} catch (error) {
  print(describe(error));
}
print({ step: "end" });
