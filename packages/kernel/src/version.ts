import { createRequire } from 'node:module';

// Set by the single-binary build (esbuild `define`), where no package.json is on disk.
declare const __FULCRUM_KERNEL_VERSION__: string | undefined;

/** The version of @fulcrum/kernel that plugins' `kernel` ranges are checked against. */
export const KERNEL_VERSION: string =
  typeof __FULCRUM_KERNEL_VERSION__ === 'string'
    ? __FULCRUM_KERNEL_VERSION__
    : // package.json sits one level above both src/ and dist/.
      (createRequire(import.meta.url)('../package.json') as { version: string }).version;
