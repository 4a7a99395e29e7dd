// Sends records with Node's fluent-logger, as an application would, and exits 0 once the
// router has acked every one; otherwise prints the client's error and exits non-zero.
// Usage: node send.js '{"host":..,"port":..,"count":..,"security":{..},"tls":{"ca":path}}'
'use strict';
const fs = require('fs');
const { createFluentSender, EventTime } = require('fluent-logger');

const cfg = JSON.parse(process.argv[2]);
const opts = {
  host: cfg.host,
  port: cfg.port,
  timeout: 5.0,
  reconnectInterval: 600000,
  requireAckResponse: true,
  ackResponseTimeout: 5000,
  eventMode: cfg.eventMode || 'Message',
};
if (cfg.security) opts.security = cfg.security;
if (cfg.tls) {
  opts.tls = true;
  opts.tlsOptions = { ca: fs.readFileSync(cfg.tls.ca), servername: 'localhost' };
  if (cfg.tls.cert) {
    opts.tlsOptions.cert = fs.readFileSync(cfg.tls.cert);
    opts.tlsOptions.key = fs.readFileSync(cfg.tls.key);
  }
}
const logger = createFluentSender(cfg.tag || 'node', opts);
const fail = (why) => {
  console.error('error: ' + why);
  process.exit(2);
};
logger.on('error', (e) => fail(e.message));
setTimeout(() => fail('timed out'), 15000);

let acked = 0;
for (let i = 0; i < cfg.count; i++) {
  logger.emit('web', { seq: i, msg: 'hello from node' }, new EventTime(1700000000, 250000000), (err) => {
    if (err) fail(err.message);
    if (++acked === cfg.count) {
      logger.end();
      process.exit(0);
    }
  });
}
