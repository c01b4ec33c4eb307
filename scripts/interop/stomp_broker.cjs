// Runs stomp-broker-js (a STOMP 1.1 broker over WebSocket) for tests/interop.
//
// Listens on 127.0.0.1 and a free port (or the port given as the first argument), WebSocket
// path /stomp, and prints one JSON line {"port": N, "path": "/stomp"} once it accepts
// connections. It exits when its stdin closes, so that a test run that dies cannot leave
// it running.
'use strict';

const http = require('http');
const StompServer = require('stomp-broker-js');

const server = http.createServer((request, response) => {
  response.writeHead(404);
  response.end();
});
// The broker attaches its WebSocket server to this HTTP server; heart-beats stay off (its
// default), so a test sees only the frames it caused.
const broker = new StompServer({ server, path: '/stomp' });
broker.on('error', (error) => process.stderr.write(`stomp-broker-js: ${error}\n`));

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port, path: '/stomp' }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
