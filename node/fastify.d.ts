import type { FastifyPluginAsync } from 'fastify'
import type { Engine, EngineOptions } from './index'
export { SwitchboardError } from './index'

declare module 'fastify' {
  interface FastifyInstance {
    /** The engine serving Socket.IO on this app's server. */
    switchboard: Engine
  }
}

/**
 * Serves Socket.IO (WebSocket, long-polling, upgrade), SSE, the server API, Yjs, `/metrics` and
 * `/healthz` on the app's own server and port, as Fastify routes under `prefix`.
 */
declare const switchboard: FastifyPluginAsync<EngineOptions>
export default switchboard
export { switchboard }
