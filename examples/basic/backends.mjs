// Starts the three demo backends of fulcrum.yaml, each in a process of its own so that one
// can be stopped to watch the balancer route around it:
//   node backends.mjs            (Ctrl-C stops all three)
//   kill <pid printed below>     (stops one)
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./backend.mjs', import.meta.url));
const backends = [
  ['one', 9001],
  ['two', 9002],
  ['three', 9003],
];
const children = backends.map(([name, port]) => {
  const child = spawn(process.execPath, [script, name, String(port)], { stdio: 'inherit' });
  child.on('exit', (code, signal) => console.log(`backend ${name} stopped (${signal ?? `exit ${code}`})`));
  return child;
});
const stop = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('exit', stop);
