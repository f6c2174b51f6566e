import { fmix32 } from '@fulcrum/kernel';

const encoder = new TextEncoder();

/**
 * FNV-1a (32-bit) over the UTF-8 bytes of `text`, started from `seed` mixed into the FNV
 * offset basis, finished with fmix32. Part of the mh contract: two balancers with the same
 * servers build the same table only if they hash server names alike, so this never changes
 * within a major version.
 */
export function nameHash(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ fmix32(seed)) >>> 0;
  // Server names are ASCII (`10.0.0.1:80`, `[2001:db8::1]:80`): skip the encoder for them.
  let ascii = true;
  for (let i = 0; i < text.length && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
  if (ascii) for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  else for (const b of encoder.encode(text)) h = Math.imul(h ^ b, 0x01000193);
  return fmix32(h);
}
