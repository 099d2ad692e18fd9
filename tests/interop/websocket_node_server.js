// WebSocket-Node (npm `websocket`) as an echo server for wsflow's client: accepts `chat`.
// Prints `listening on ws://ADDR`.
'use strict';
const http = require('http');
const { server: WebSocketServer } = require('websocket');

const httpServer = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wsServer = new WebSocketServer({
  httpServer,
  autoAcceptConnections: false,
  maxReceivedFrameSize: 64 << 20,
  maxReceivedMessageSize: 64 << 20,
});
wsServer.on('request', (request) => {
  const protocol = request.requestedProtocols.includes('chat') ? 'chat' : null;
  const connection = request.accept(protocol, request.origin);
  connection.on('message', (message) => {
    if (message.type === 'utf8') connection.sendUTF(message.utf8Data);
    else connection.sendBytes(message.binaryData);
  });
});
httpServer.listen(0, '127.0.0.1', () => console.log(`listening on ws://127.0.0.1:${httpServer.address().port}`));
