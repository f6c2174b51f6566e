import { createRequire } from 'node:module';

// package.json sits one level above both src/ and dist/.
const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

/** The version of @fulcrum/kernel that plugins' `kernel` ranges are checked against. */
export const KERNEL_VERSION: string = pkg.version;
