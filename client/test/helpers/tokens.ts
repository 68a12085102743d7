// HS256 JWTs signed with node:crypto (no JWT library needed).
import crypto from 'node:crypto';

import { SECRET } from './server.js';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export interface TokenOptions {
  username?: string;
  rooms?: string[];
  /** Seconds from now; negative = already expired. Default one hour. */
  ttl?: number;
  secret?: string;
}

export function token(sub: string, { username, rooms, ttl = 3600, secret = SECRET }: TokenOptions = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { sub, iat: now - (ttl < 0 ? 7200 : 0), exp: now + ttl };
  if (username !== undefined) claims.username = username;
  if (rooms !== undefined) claims.rooms = rooms;
  const body = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
  const sig = crypto.createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}
