import { connect, type ConnectOptions, type SwitchboardClient } from '../../src/index.js';
import { token, type TokenOptions } from './tokens.js';
import { waitFor } from './wait.js';

/** Fast reconnects so that the recovery tests stay short. */
export const FAST_RECONNECT: ConnectOptions['socketOptions'] = {
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
};

/** Makes clients for one test file and closes them all in `closeAll`. */
export class Clients {
  private readonly all: SwitchboardClient[] = [];
  constructor(private readonly url: () => string) {}

  /** A client for user `sub` (username = sub with a capital unless given). */
  make(sub: string, options: ConnectOptions & { tokenOptions?: TokenOptions } = {}): SwitchboardClient {
    const { tokenOptions, ...rest } = options;
    const opts: ConnectOptions = { ...rest };
    if (!opts.getToken && opts.token === undefined) {
      opts.token = token(sub, { username: sub[0]!.toUpperCase() + sub.slice(1), ...tokenOptions });
    }
    opts.socketOptions = { ...FAST_RECONNECT, ...opts.socketOptions };
    const client = connect(this.url(), opts);
    this.all.push(client);
    return client;
  }

  /** Like `make`, resolving once connected. */
  async connected(sub: string, options: ConnectOptions & { tokenOptions?: TokenOptions } = {}): Promise<SwitchboardClient> {
    const client = this.make(sub, options);
    await waitFor(() => client.connected, `${sub} to connect`);
    return client;
  }

  closeAll(): void {
    for (const c of this.all.splice(0)) c.close();
  }
}
