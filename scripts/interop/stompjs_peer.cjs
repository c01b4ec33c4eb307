// One STOMP.js 7 client session for tests/interop, driven by a JSON job on stdin.
//
// The job: {url, login, passcode, version, timeoutMs,
//           send: [{destination, headers, body | bodyBase64, receipt, skipContentLength}],
//           receive: {destination, count, headers, receipt}}
// It connects offering only `version`, sends (waiting for each asked-for RECEIPT), then
// subscribes and collects `count` messages, disconnects, and prints one JSON line on stdout:
// {ok, version, connected, receipts, messages: [{command, headers, bodyBase64, binary}], error}.
// Bodies travel as base64 so that NUL bytes and non-UTF-8 bytes survive the JSON. Exit code
// 0 when everything asked for happened, 1 otherwise (the JSON says what went wrong), so the
// Python side never has to guess from a hang.
'use strict';

const { Client, Versions } = require('@stomp/stompjs');
const WebSocket = require('ws');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function describeFrame(frame) {
  const body = Buffer.from(frame.binaryBody);
  return {
    command: frame.command,
    headers: frame.headers,
    bodyBase64: body.toString('base64'),
    binary: Boolean(frame.isBinaryBody),
  };
}

async function run(job) {
  const result = { ok: false, version: null, connected: null, receipts: [], messages: [], error: null };
  const versions = new Versions([job.version]);
  const client = new Client({
    // Node 20 has no global WebSocket: the `ws` package is the implementation, offered the
    // STOMP subprotocol of the pinned version as a browser would be.
    webSocketFactory: () => new WebSocket(job.url, versions.protocolVersions()),
    connectHeaders: { login: job.login, passcode: job.passcode },
    stompVersions: versions,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    reconnectDelay: 0, // one session: a lost connection is a failure, not a retry
    debug: process.env.STOMPJS_DEBUG ? (line) => process.stderr.write(line + '\n') : () => {},
  });

  let fail;
  const failed = new Promise((_, reject) => {
    fail = reject;
  });
  client.onStompError = (frame) => fail(new Error('ERROR frame: ' + JSON.stringify(describeFrame(frame))));
  client.onWebSocketError = (event) => fail(new Error('WebSocket error: ' + (event.message || event.type)));
  client.onWebSocketClose = (event) => fail(new Error(`WebSocket closed: ${event.code} ${event.reason}`));

  const timer = setTimeout(() => fail(new Error(`timed out after ${job.timeoutMs} ms`)), job.timeoutMs);
  const race = (promise) => Promise.race([promise, failed]);
  try {
    const connected = await race(
      new Promise((resolve) => {
        client.onConnect = resolve;
        client.activate();
      }),
    );
    result.connected = connected.headers;
    result.version = client.connectedVersion;

    let counter = 0;
    const receipt = () => {
      const id = `stompjs-${process.pid}-${++counter}`;
      const seen = new Promise((resolve) => client.watchForReceipt(id, resolve));
      return { id, seen };
    };

    for (const message of job.send || []) {
      const headers = { ...(message.headers || {}) };
      const params = { destination: message.destination, headers, skipContentLengthHeader: Boolean(message.skipContentLength) };
      if (message.bodyBase64 !== undefined) {
        params.binaryBody = new Uint8Array(Buffer.from(message.bodyBase64, 'base64'));
      } else {
        params.body = message.body;
      }
      if (message.receipt) {
        const { id, seen } = receipt();
        headers.receipt = id;
        client.publish(params);
        result.receipts.push(describeFrame(await race(seen)));
      } else {
        client.publish(params);
      }
    }

    if (job.receive) {
      const spec = job.receive;
      const headers = { ...(spec.headers || {}) };
      let subscribed = Promise.resolve(null);
      if (spec.receipt) {
        const { id, seen } = receipt();
        headers.receipt = id;
        subscribed = seen;
      }
      const all = new Promise((resolve) => {
        client.subscribe(
          spec.destination,
          (message) => {
            result.messages.push(describeFrame(message));
            if (result.messages.length >= spec.count) resolve();
          },
          headers,
        );
      });
      const subscribeReceipt = await race(subscribed);
      if (subscribeReceipt) result.receipts.push(describeFrame(subscribeReceipt));
      if (spec.count > 0) await race(all);
    }
    result.ok = true;
  } catch (error) {
    result.error = String(error && error.message ? error.message : error);
  } finally {
    clearTimeout(timer);
    client.onWebSocketClose = () => {};
    await client.deactivate();
  }
  return result;
}

readStdin()
  .then((text) => run(JSON.parse(text)))
  .then((result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exitCode = result.ok ? 0 : 1;
  })
  .catch((error) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(error) }) + '\n');
    process.exitCode = 1;
  });
