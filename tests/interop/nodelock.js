// node-redlock (with ioredis), for tests/sharing.rs: the application's side of a key shared
// with `redlock run --key`, over one server or several (node-redlock's own quorum). One line on
// stdout per step.
//
//   node nodelock.js PORTS KEY TTL_MS try    one attempt: prints acquired (then unlocks) or busy
//   node nodelock.js PORTS KEY TTL_MS hold   locks (retrying), prints held, unlocks on a line on
//                                            stdin, prints released BEFORE AFTER (ns: around the unlock)
// PORTS: comma-separated loopback ports.
'use strict';
const Redis = require('ioredis');
const Redlock = require('redlock');

async function main() {
  const [ports, key, ttl, mode] = process.argv.slice(2);
  const clients = ports.split(',').map((port) => new Redis({ port: Number(port), host: '127.0.0.1' }));
  const attempts = mode === 'try' ? 0 : 600;
  const redlock = new Redlock(clients, { retryCount: attempts, retryDelay: 10, retryJitter: 5 });
  let lock;
  try {
    lock = await redlock.lock(key, Number(ttl));
  } catch (e) {
    if (!(e instanceof Redlock.LockError)) throw e;
    console.log('busy');
    return clients.forEach((c) => c.disconnect());
  }
  if (mode === 'try') {
    console.log('acquired');
  } else {
    console.log('held');
    await new Promise((resolve) => process.stdin.once('data', resolve));
    process.stdin.destroy();
  }
  const releasing = BigInt(Date.now()) * 1000000n;
  await lock.unlock();
  if (mode !== 'try') console.log(`released ${releasing} ${BigInt(Date.now()) * 1000000n}`);
  clients.forEach((c) => c.disconnect());
}

main().catch((e) => {
  console.error(`nodelock.js: ${e}`);
  process.exit(2);
});
