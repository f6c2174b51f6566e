#!/usr/bin/env node
import { main } from './cli.js';

// Exit explicitly: a plugin that leaves a handle open must not keep a stopped daemon alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fatal: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
