'use strict';
// HTTP hello-world server for the throughput benchmark (bench/run.sh drives it with wrk on 127.0.0.1).
// Usage: node bench/http_server.js [--port N] [--ready-file PATH]
// Listens on 127.0.0.1 (port 0 = any free port); when listening, writes {"pid":N,"port":N} to the ready
// file. Exits 0 on SIGTERM/SIGINT after closing the server.
const http = require('http');
const fs = require('fs');

let port = 0;
let readyFile = '';
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--port') port = Number(process.argv[++i]);
  else if (process.argv[i] === '--ready-file') readyFile = process.argv[++i];
  else throw new Error(`unknown argument ${process.argv[i]}`);
}

const body = 'Hello, World!\n';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});

server.listen(port, '127.0.0.1', () => {
  const info = JSON.stringify({ pid: process.pid, port: server.address().port });
  if (readyFile) {
    fs.writeFileSync(`${readyFile}.tmp`, info);
    fs.renameSync(`${readyFile}.tmp`, readyFile);
  } else {
    console.log(info);
  }
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
