// Two headless Chromium pages chat through the chat example: each page sends a message and
// both pages must show both messages (and the join notices). Usage:
//   node chat_browser.js http://127.0.0.1:PORT/
'use strict';
const { chromium } = require('playwright-core');

const url = process.argv[2];

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  try {
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    for (const page of [alice, bob]) {
      await page.goto(url);
      await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'));
    }
    const status = await alice.textContent('#status');
    if (!status.includes('subprotocol: chat')) throw new Error(`unexpected status: ${status}`);
    // Chromium offers permessage-deflate; the chat example accepts it without context
    // takeover both ways (its connections share zlib state).
    if (!status.includes('permessage-deflate')) throw new Error(`no compression: ${status}`);
    for (const param of ['server_no_context_takeover', 'client_no_context_takeover']) {
      if (!status.includes(param)) throw new Error(`no ${param}: ${status}`);
    }
    await alice.fill('#name', 'alice');
    await alice.fill('#text', 'hello from alice ☕');
    await alice.click('button');
    await bob.fill('#name', 'bob');
    await bob.fill('#text', 'hi alice, bob here');
    await bob.click('button');
    // Longer than the compression threshold (1 KiB): the server sends it compressed too.
    const song = 'la '.repeat(500).trim();
    await bob.fill('#text', song);
    await bob.click('button');
    const expected = ['alice: hello from alice ☕', 'bob: hi alice, bob here', `bob: ${song}`];
    for (const [name, page] of [['alice', alice], ['bob', bob]]) {
      await page.waitForFunction((lines) => {
        const shown = [...document.querySelectorAll('#log li')].map((li) => li.textContent);
        return lines.every((line) => shown.includes(line));
      }, expected, { timeout: 10000 }).catch(async () => {
        const shown = await page.$$eval('#log li', (items) => items.map((li) => li.textContent));
        throw new Error(`${name}'s page shows ${JSON.stringify(shown)}`);
      });
    }
    const bobSees = await bob.$$eval('#log li', (items) => items.map((li) => li.textContent));
    if (!bobSees.some((line) => line.endsWith('joined'))) throw new Error('no join notice');
    console.log(JSON.stringify({ status, lines: bobSees.length }));
    console.log('ok');
  } finally {
    await browser.close();
  }
}

main().catch((err) => { console.error(`chat_browser: ${err.message}`); process.exit(1); });
