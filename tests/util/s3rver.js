// Starts an S3-compatible server (@20minutes/s3rver, which checks SigV4
// signatures) on 127.0.0.1 for the S3 result sink's tests. Everything comes
// from the environment, so that no secret is in argv:
//   S3RVER_PORT        port to listen on (0: any free one)
//   S3RVER_DIR         where objects are kept (survives a restart)
//   S3RVER_BUCKETS     comma-separated buckets to create
//   S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY  the only key pair accepted
// Prints "listening PORT" on stdout once serving; logs each request on stdout.
// Usage: node tests/util/s3rver.js (with .tools/node_modules from
// scripts/install-deps.sh --test, found through NODE_PATH or the repo).
'use strict';

const path = require('node:path');

const modules = path.join(__dirname, '..', '..', '.tools', 'node_modules');
const S3rver = require(path.join(modules, '@20minutes', 's3rver'));
const AWSAccount = require(path.join(modules, '@20minutes', 's3rver', 'lib', 'models', 'account'));

const env = process.env;
for (const name of ['S3RVER_DIR', 'S3RVER_ACCESS_KEY_ID', 'S3RVER_SECRET_ACCESS_KEY']) {
  if (!env[name]) {
    console.error(`s3rver.js: ${name} must be set`);
    process.exit(2);
  }
}
// Only the key pair the test made accepts; the built-in S3RVER/S3RVER does not.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(env.S3RVER_ACCESS_KEY_ID, env.S3RVER_SECRET_ACCESS_KEY);

const server = new S3rver({
  port: Number(env.S3RVER_PORT || 0),
  address: '127.0.0.1',
  directory: env.S3RVER_DIR,
  configureBuckets: (env.S3RVER_BUCKETS || '')
    .split(',')
    .filter((b) => b)
    .map((name) => ({ name })),
  vhostBuckets: false,
});
server.run().then(
  (address) => console.log(`listening ${address.port}`),
  (err) => {
    console.error(`s3rver.js: ${err.message}`);
    process.exit(1);
  },
);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close().finally(() => process.exit(0)));
}
