import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectMetrics } from '../scripts/metrics-inventory.mjs';
import { renderMetricsDoc } from '../scripts/metrics-doc.mjs';

interface Metric {
  name: string;
  type: string;
  help: string;
  labels: string[];
}

const root = new URL('..', import.meta.url).pathname;

describe('metrics documentation and dashboard', () => {
  let metrics: Metric[] = [];
  beforeAll(async () => {
    metrics = (await collectMetrics()) as Metric[];
  }, 30_000);

  it('docs/metrics.md lists exactly the metrics a running kernel registers (npm run docs:metrics)', () => {
    expect(metrics.length).toBeGreaterThan(15);
    for (const m of metrics) expect(m.name).toMatch(/^fulcrum_[a-z0-9_]+$/);
    expect(readFileSync(`${root}docs/metrics.md`, 'utf8')).toBe(renderMetricsDoc(metrics));
  });

  it('the Grafana dashboard is well-formed and queries only metrics that exist', () => {
    const dash = JSON.parse(readFileSync(`${root}examples/grafana/fulcrum-dashboard.json`, 'utf8'));
    expect(dash).toMatchObject({
      title: 'Fulcrum',
      uid: expect.any(String),
      schemaVersion: expect.any(Number),
    });
    const ids = dash.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const names = new Set(metrics.map((m) => m.name));
    const variables = new Set(dash.templating.list.map((v: { name: string }) => v.name));
    expect(variables).toEqual(new Set(['datasource', 'service']));
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource.uid).toBe('${datasource}');
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) {
        const used = [...t.expr.matchAll(/\bfulcrum_[a-z0-9_]+/g)].map((m) =>
          m[0].replace(/_(bucket|sum|count)$/, ''),
        );
        expect(used.length, t.expr).toBeGreaterThan(0);
        for (const u of used) expect(names.has(u), `${p.title}: ${u}`).toBe(true);
        for (const v of t.expr.matchAll(/\$(\w+)/g)) expect(variables.has(v[1]), t.expr).toBe(true);
      }
    }
  });
});
