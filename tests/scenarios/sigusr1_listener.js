'use strict';
// expect: memlens --js-objects never signals this app (it listens for SIGUSR1 itself); it traces the rest
// An app with its own SIGUSR1 listener (process.on('SIGUSR1')): libuv's handler then holds the signal and
// the app's code runs on it instead of Node's inspector. Every SIGUSR1 it receives is printed as a
// `sigusr1` line; the final line counts them.
const c = require('./lib/common');

let received = 0;
process.on('SIGUSR1', () => {
  received++;
  c.emit({ event: 'sigusr1', count: received });
});

c.runRequestScenario('sigusr1_listener', { rate: 50 }, () => {}, () => ({ sigusr1_received: received }));
