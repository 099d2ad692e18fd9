// Node's `ws` as a client of a wsflow echo server: subprotocol, every message echoed with its
// type, a ping answered, then a close with 4000 echoed back.
'use strict';
const WebSocket = require('ws');
const { messages, same, fail } = require('./messages');

const url = process.argv[2];
const options = { maxPayload: 64 << 20 };
// wss://: trust the test's certificate authority (a PEM file named by WSFLOW_CA).
if (process.env.WSFLOW_CA) options.ca = require('fs').readFileSync(process.env.WSFLOW_CA);
const ws = new WebSocket(url, ['chat'], options);
const pending = messages();
let index = 0;
const timer = setTimeout(() => fail('timed out'), 20000);

ws.on('open', () => {
  if (ws.protocol !== 'chat') fail(`protocol ${ws.protocol}`);
  ws.ping(Buffer.from('are you there'));
});
ws.on('pong', (data) => {
  if (data.toString() !== 'are you there') fail('pong payload');
  ws.send(pending[0]);
});
ws.on('message', (data, isBinary) => {
  if (!same(pending[index], data, isBinary)) fail(`message ${index} differs`);
  index += 1;
  if (index < pending.length) ws.send(pending[index]);
  else ws.close(4000, 'interop done');
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  if (index !== pending.length) fail(`closed after ${index} messages`);
  if (code !== 4000) fail(`close code ${code} ${reason}`);
  console.log('ok');
});
ws.on('error', (err) => fail(err.message));
