// The messages every interop peer exchanges with wsflow, and how to compare them.
'use strict';

function messages() {
  const binary = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) binary[i] = i;
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  return [
    'hello',
    'κόσμε 𝄞 日本語',
    '',
    binary,
    big,
    'x'.repeat(70000),
  ];
}

function same(sent, received, isBinary) {
  if (Buffer.isBuffer(sent)) return isBinary && Buffer.compare(sent, Buffer.from(received)) === 0;
  return !isBinary && sent === received.toString();
}

function fail(message) {
  console.error(`interop: ${message}`);
  process.exit(1);
}

module.exports = { messages, same, fail };
