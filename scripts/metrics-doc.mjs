// `npm run docs:metrics`: writes docs/metrics.md from the metrics a running kernel with the
// built-in plugins registers (test/metrics-doc.test.ts fails when the file falls behind).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './lib.mjs';
import { collectMetrics } from './metrics-inventory.mjs';

export function renderMetricsDoc(metrics) {
  const rows = metrics.map(
    (m) => `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ')} | ${m.help} |`,
  );
  return `# Metrics

Every metric Fulcrum's built-in packages register, on the admin listener's \`/metrics\`
(Prometheus text format). Names start with \`fulcrum_\`; \`service\` and \`server\` label the
virtual service and the real server (\`address:port\`). This file is generated from a running
kernel (\`npm run docs:metrics\`); a test fails when a metric is missing from it. The DPDK
dataplane's own counters are listed in its README.

| metric | type | labels | meaning |
| --- | --- | --- | --- |
${rows.join('\n')}
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(join(root, 'docs', 'metrics.md'), renderMetricsDoc(await collectMetrics()));
  console.log('wrote docs/metrics.md');
}
