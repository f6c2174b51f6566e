#!/usr/bin/env node
const argv = process.argv.slice(2);
const io = { stdout: process.stdout, stderr: process.stderr };

// `adm` is loaded on its own, without the kernel and plugins, so that it answers at once.
const run =
  argv[0] === 'adm'
    ? import('./adm/adm.js').then(({ adm }) => adm(argv.slice(1), io))
    : import('./cli.js').then(({ main }) => main(argv, io));

// Exit explicitly: a plugin that leaves a handle open must not keep a stopped daemon alive.
run.then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fatal: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
