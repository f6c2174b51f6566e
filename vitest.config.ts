import { defineConfig } from 'vitest/config';

// Tests import workspace packages by name; the "@fulcrum/source" export condition points
// them at src/ so a test never runs against a stale dist/.
export default defineConfig({
  resolve: { conditions: ['@fulcrum/source'] },
  ssr: { resolve: { conditions: ['@fulcrum/source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
