// uWebSockets echo server for `cargo xtask bench`, following the conventions of
// xtask/peers/README.md: `--listen IP:PORT`, one `listening on ws://IP:PORT` line on stdout
// once it accepts connections, runs until killed.
//
// uWebSockets.js is uWebSockets (C++) bound to Node.js: parsing, masking, UTF-8 validation
// and writing happen in C++; each message costs one call into JavaScript and back. Sends made
// inside the message handler are corked: uWebSockets writes them out together after the
// handler returns. The npm registry does not carry uWebSockets.js itself, so this uses
// `uws-pack`, which ships the same prebuilt binaries as uWebSockets.js v20.
import { App, DISABLED, us_listen_socket_close, us_socket_local_port } from 'uws-pack';

function listenAddress(argv) {
  const at = argv.indexOf('--listen');
  const value = at >= 0 ? argv[at + 1] : '127.0.0.1:0';
  const colon = value && value.lastIndexOf(':');
  if (!value || colon <= 0) {
    console.error(`uws_echo: --listen needs IP:PORT, got ${value}`);
    process.exit(2);
  }
  return [value.slice(0, colon), Number(value.slice(colon + 1))];
}

const [host, port] = listenAddress(process.argv.slice(2));
let listenSocket = null;

App()
  .ws('/*', {
    compression: DISABLED,
    // The limits every server of the comparison has: messages of at least 64 MiB.
    maxPayloadLength: 64 * 1024 * 1024,
    maxBackpressure: 256 * 1024 * 1024,
    // No idle timeout and no pings: the memory run holds 10,000 quiet connections.
    idleTimeout: 0,
    sendPingsAutomatically: false,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .listen(host, port, (socket) => {
    if (!socket) {
      console.error(`uws_echo: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
    listenSocket = socket;
    console.log(`listening on ws://${host}:${us_socket_local_port(socket)}`);
  });

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (listenSocket) us_listen_socket_close(listenSocket);
    process.exit(0);
  });
}
