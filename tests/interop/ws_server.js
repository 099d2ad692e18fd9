// Node's `ws` as an echo server for wsflow's client: accepts `chat`, echoes every message
// with its type. Prints `listening on ws://ADDR`.
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 << 20,
  perMessageDeflate: process.argv.includes('--deflate'),
  handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
});
wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
