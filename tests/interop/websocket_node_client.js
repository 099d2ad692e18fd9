// WebSocket-Node (npm `websocket`) as a client of a wsflow echo server.
'use strict';
const { client: WebSocketClient } = require('websocket');
const { messages, same, fail } = require('./messages');

const url = process.argv[2];
const pending = messages();
let index = 0;
const timer = setTimeout(() => fail('timed out'), 20000);
const client = new WebSocketClient({ maxReceivedFrameSize: 64 << 20, maxReceivedMessageSize: 64 << 20 });

client.on('connectFailed', (err) => fail(`connect failed: ${err}`));
client.on('connect', (connection) => {
  if (connection.protocol !== 'chat') fail(`protocol ${connection.protocol}`);
  const send = (m) => (Buffer.isBuffer(m) ? connection.sendBytes(m) : connection.sendUTF(m));
  connection.on('pong', (data) => {
    if (data.toString() !== 'ping from websocket-node') fail('pong payload');
    send(pending[0]);
  });
  connection.on('message', (message) => {
    const isBinary = message.type === 'binary';
    const data = isBinary ? message.binaryData : message.utf8Data;
    if (!same(pending[index], data, isBinary)) fail(`message ${index} differs`);
    index += 1;
    if (index < pending.length) send(pending[index]);
    else connection.close(4000, 'interop done');
  });
  connection.on('close', (code) => {
    clearTimeout(timer);
    if (index !== pending.length) fail(`closed after ${index} messages`);
    if (code !== 4000) fail(`close code ${code}`);
    console.log('ok');
  });
  connection.on('error', (err) => fail(err.message));
  connection.ping(Buffer.from('ping from websocket-node'));
});
client.connect(url, 'chat');
