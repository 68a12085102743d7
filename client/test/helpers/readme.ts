import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLIENT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The first ```tsx block of client/README.md: the chat component. */
export function readmeChat(): string {
  const readme = fs.readFileSync(path.join(CLIENT_ROOT, 'README.md'), 'utf8');
  const m = /```tsx\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('client/README.md has no ```tsx block');
  return m[1]!;
}
