#!/usr/bin/env node
const argv = process.argv.slice(2);
const io = { stdout: process.stdout, stderr: process.stderr };

// `adm` is loaded on its own, without the kernel and plugins, so that it answers at once.
// `fulcrum reload` is `fulcrum adm reload`: the daemon re-reads its config, as on SIGHUP.
const admArgv =
  argv[0] === 'adm' ? argv.slice(1) : argv[0] === 'reload' ? ['reload', ...argv.slice(1)] : undefined;
const run = admArgv
  ? import('./adm/adm.js').then(({ adm }) => adm(admArgv, io))
  : import('./cli.js').then(({ main }) => main(argv, io));

// Exit explicitly: a plugin that leaves a handle open must not keep a stopped daemon alive.
run.then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`fatal: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
